"""Path safety: the one rule for which paths the bot may write, shared by every edit format.

Kept apart from applying so the rule reads on one screen and can be reviewed on its own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from fnmatch import fnmatchcase
from pathlib import Path


def refuse_path(root: Path, path: str, protected: Sequence[str]) -> str | None:
    """Why the bot must not write `path` (control characters, absolute, escaping, .git,
    protected), or None."""
    control = refuse_control(path)
    if control:
        return control
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
            # Case-blind: on a case-insensitive file system `.GITHUB/...` is `.github/...`.
            if fnmatchcase(candidate.casefold(), glob.casefold()):
                return f"refused: {path} is protected by the bot's configuration ({glob})"
    return None


def refuse_control(path: str) -> str | None:
    """Refuse control and invisible format characters (Cc, Cf): they can make a path look
    like another one to a reviewer (U+202E reverses text) or a terminal (ESC sequences)."""
    bad = next((ch for ch in path if _is_control(ch)), None)
    if bad is None:
        return None
    label = "NUL byte" if bad == "\x00" else unicodedata.name(bad, "a control character")
    plain = "".join(ch for ch in path if not _is_control(ch))
    hint = f", such as `{plain}`" if plain.strip("/. ") else ""
    return (
        f"refused: the path '{escape_controls(path)}' contains U+{ord(bad):04X} ({label}); "
        f"file paths may not contain control or invisible formatting characters, so name the "
        f"file with visible characters only{hint}"
    )


def escape_controls(path: str) -> str:
    """`path` with every control or format character as an escape (`\\x1b`), never raw."""
    return "".join(ascii(ch)[1:-1] if _is_control(ch) else ch for ch in path)


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in ("Cc", "Cf")


def normalise(path: str) -> str:
    """Drop `.` and empty parts, so `./src//a.py` and `src/a.py` are one file in outcomes."""
    return "/".join(part for part in path.split("/") if part not in ("", "."))
