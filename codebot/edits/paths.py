"""Path safety: the one rule for which paths the bot may write, shared by every edit format.

Kept apart from applying so the rule reads on one screen and can be reviewed on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path


def refuse_path(root: Path, path: str, protected: Sequence[str]) -> str | None:
    """Why the bot must not write `path` (absolute, escaping, .git, protected), or None."""
    if "\x00" in path:
        return f"refused: {path!r} contains a NUL byte"
    rel = normalise(path)
    if not rel or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", path):
        return f"refused: {path!r} is not a relative path inside the repository"
    if ".." in rel.split("/"):
        return f"refused: {path} escapes the repository (`..`)"
    real_root = root.resolve()
    resolved = (real_root / rel).resolve()
    if resolved != real_root and real_root not in resolved.parents:
        return f"refused: {path} resolves through a symlink to {resolved}, outside the repository"
    for candidate in dict.fromkeys((rel, resolved.relative_to(real_root).as_posix())):
        if any(part.lower() == ".git" for part in candidate.split("/")):
            return f"refused: {path} is inside git's own data (.git); edit tracked files only"
        for glob in protected:
            if fnmatchcase(candidate, glob):
                return f"refused: {path} is protected by the bot's configuration ({glob})"
    return None


def normalise(path: str) -> str:
    """Drop `.` and empty parts, so `./src//a.py` and `src/a.py` are one file in outcomes."""
    return "/".join(part for part in path.split("/") if part not in ("", "."))
