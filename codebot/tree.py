"""What a sync puts into the sandbox workspace: the files of a tree, as a tar or as a script.

Pure (no SDK): which paths go in (never `.git/`, never a symlink leading out of the tree),
which are to be deleted, and the archive with every member owned by the sandbox user so it
can write its own workspace. A few changed files also go as a shell script the sandbox user
runs before its next command, in that command's exec (`script`): the engine's archive copy
costs a round trip and a helper process of its own, ~40-90 ms here.
"""

from __future__ import annotations

import base64
import io
import os
import posixpath
import shlex
import tarfile
from collections.abc import Sequence
from pathlib import Path

from codebot.errors import SandboxError


def safe_relpath(path: str) -> str:
    norm = posixpath.normpath(path.replace(os.sep, "/"))
    if norm.startswith("/") or norm in (".", "..") or norm.startswith("../"):
        raise SandboxError(f"refusing to sync {path!r}: not inside the workspace", "")
    return norm


def collect(root: Path, paths: Sequence[str] | None) -> tuple[dict[str, str], list[str]]:
    """Tar member kinds (file/dir/link) by relative path, and paths to delete."""
    members: dict[str, str] = {}
    missing: list[str] = []
    if paths is None:
        _walk(root, root, members)
    for rel in paths or ():
        full = root / rel
        if ".git" in rel.split("/") or not _inside(root, full.parent):
            continue
        if not os.path.lexists(full):
            missing.append(rel)
            continue
        if full.is_dir() and not full.is_symlink():
            _walk(root, full, members)
        else:
            _add(root, full, members)
        _add_parents(rel, members)
    members.pop(".", None)
    return members, missing


def _walk(root: Path, top: Path, members: dict[str, str]) -> None:
    for dirpath, dirnames, filenames in os.walk(top):
        here = Path(dirpath)
        members[here.relative_to(root).as_posix()] = "dir"
        links = [d for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and d not in links)
        for name in [*links, *filenames]:
            if name != ".git":
                _add(root, here / name, members)


def _add(root: Path, full: Path, members: dict[str, str]) -> None:
    rel = full.relative_to(root).as_posix()
    if full.is_symlink():
        target = os.readlink(full)
        if not os.path.isabs(target) and _inside(root, Path(os.path.realpath(full))):
            members[rel] = "link"
    elif full.is_file():
        members[rel] = "file"


def _add_parents(rel: str, members: dict[str, str]) -> None:
    parent = posixpath.dirname(rel)
    while parent:
        members.setdefault(parent, "dir")
        parent = posixpath.dirname(parent)


def _inside(root: Path, path: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(root)


def tar(root: Path, members: dict[str, str], uid: int) -> bytes:
    """An archive owned by the sandbox user, so it can write its own workspace."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for rel in sorted(members):
            full = root / rel
            info = tarfile.TarInfo(rel)
            info.uid = info.gid = uid
            info.mtime = int(full.lstat().st_mtime)
            kind = members[rel]
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
                archive.addfile(info)
            else:
                data = full.read_bytes()
                info.size = len(data)
                info.mode = 0o755 if full.stat().st_mode & 0o100 else 0o644
                archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def script(root: Path, members: dict[str, str], missing: Sequence[str], limit: int) -> str | None:
    """A POSIX shell script (sh, mkdir, rm, ln, chmod and coreutils `base64`) that makes
    the workspace hold what `tar` would put there, with `missing` deleted: run from the
    workspace, as the sandbox user, with nothing else running. Each path is replaced, never
    written through (a link planted there is removed first). None when it would be over
    `limit` characters (one exec argument is at most 128 KiB)."""
    lines = ["set -e", *(f"rm -rf -- {shlex.quote(rel)}" for rel in missing)]
    size = sum(map(len, lines))
    for rel in sorted(members):
        full = root / rel
        if members[rel] == "file":
            size += full.stat().st_size * 4 // 3  # over the limit: the file is never read
        line = "" if size > limit else _script_line(full, rel, members[rel])
        size += len(line)
        if size > limit:
            return None
        lines.append(line)
    return "\n".join(lines) + "\n"


def _script_line(full: Path, rel: str, kind: str) -> str:
    path = shlex.quote(rel)
    if kind == "dir":
        return f"[ -d {path} ] && [ ! -h {path} ] || {{ rm -rf -- {path}; mkdir -- {path}; }}"
    if kind == "link":
        return f"rm -rf -- {path}; ln -s -- {shlex.quote(os.readlink(full))} {path}"
    mode = "755" if full.stat().st_mode & 0o100 else "644"
    data = base64.b64encode(full.read_bytes()).decode() or "''"
    return f"rm -rf -- {path}; printf %s {data} | base64 -d > {path}; chmod {mode} -- {path}"
