"""Where team knowledge comes from: the target repository at its base commit, the operator's
local directories, and the operator's git repositories (fetched read-only).

Each source file comes with a cheap stamp of its content (a git blob id, or a file's size and
mtime) and a reader that is called only when the stamp changed, so an unchanged document is
never read again. Git is driven through its command line here: the index needs blob ids and
shallow read-only fetches of other repositories, which the run's Workspace (the GitPython
seam, codebot.workspace) does not offer. A bad source is a one-line warning, never an error:
the run goes on without it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from codebot import repomap
from codebot.knowledge_split import KINDS, kind_of

MAX_BYTES = 1_000_000  # a larger document is left out (said as a warning)
_SKIPPED_DIRS = {"node_modules", "__pycache__", "venv", "site-packages"}
_GIT_TIMEOUT_S = 300


@dataclass(frozen=True)
class SourceFile:
    """One document. `read` raises OSError or ValueError when it cannot give text. A "note"
    (a review comment) is one passage under `heading`, found at `path` (its URL)."""

    path: str
    stamp: str
    read: Callable[[], str]
    kind: str
    heading: str = ""


@dataclass(frozen=True)
class SourceSet:
    """The documents of one origin, the index's unit of update. `label` goes before each
    path when a passage is shown ("" for the target repository); `named_by` is the setting
    that named them, for warnings; with `prune`, documents not listed leave the index."""

    origin: str
    label: str
    named_by: str
    files: tuple[SourceFile, ...]
    prune: bool = True


class GitFailed(Exception):
    """A git command failed; the message is git's last line, without credentials."""


def warning(cause: str, fix: str) -> str:
    """The one-line form every knowledge problem takes (like CodebotError.one_line)."""
    return f"knowledge: {cause} — {fix}"


def repo_sources(
    root: Path, commit: str, patterns: Sequence[str], origin: str
) -> tuple[SourceSet | None, list[str]]:
    """The files of the repository at `root` that `.codebot.yml` `knowledge:` names, as
    committed at `commit` (never as a run has edited them)."""
    if not patterns:
        return None, []
    try:
        tree = _tree(root, commit)
    except GitFailed as exc:
        fix = "check that the repository and the commit exist"
        return None, [warning(f"cannot list the files of {root} at {commit[:12]} ({exc})", fix)]
    files: dict[str, SourceFile] = {}
    problems: list[str] = []
    for pattern in patterns:
        hits = [p for p in tree if repomap._globs((pattern,)).match(p)]
        readable = [p for p in hits if kind_of(p) or p == pattern.strip("/")]
        for path in readable:
            blob, size = tree[path]
            kind = kind_of(path) or "text"
            files.setdefault(path, SourceFile(path, blob, _blob_reader(root, blob, size), kind))
        if not readable:
            problems.append(_unmatched(pattern, bool(hits)))
    return SourceSet(origin, "", "`.codebot.yml` `knowledge:`", tuple(files.values())), problems


def _unmatched(pattern: str, other_types: bool) -> str:
    types = ", ".join(sorted(KINDS))
    if other_types:
        return warning(
            f"`{pattern}` in .codebot.yml `knowledge:` names no document the index reads",
            f"point it at {types} files",
        )
    return warning(
        f"`{pattern}` in .codebot.yml `knowledge:` matches no file at the base commit",
        "fix the path (relative to the repository root) or remove it from `knowledge:`",
    )


def dir_sources(directory: str) -> tuple[SourceSet | None, list[str]]:
    """The documents under an operator's directory, stamped by size and mtime."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        return None, [
            warning(
                f"{directory} (in CODEBOT_KNOWLEDGE_DIRS) is not a directory",
                "fix the path or remove it from CODEBOT_KNOWLEDGE_DIRS",
            )
        ]
    root = root.resolve()
    problems: list[str] = []
    files: list[SourceFile] = []
    for top, dirs, names in os.walk(root, onerror=lambda e: problems.append(_unreadable(e))):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(top) / name
            kind = kind_of(name)
            if kind is None or name.startswith(".") or path.is_symlink():
                continue
            try:
                stat = path.stat()
            except OSError as exc:
                problems.append(_unreadable(exc))
                continue
            stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
            rel = path.relative_to(root).as_posix()
            files.append(SourceFile(rel, stamp, _file_reader(path), kind))
    return SourceSet(f"dir:{root}", str(root), "CODEBOT_KNOWLEDGE_DIRS", tuple(files)), problems


def _unreadable(exc: OSError) -> str:
    return warning(
        f"cannot read {exc.filename} ({exc.strerror or exc})",
        "check its permissions or remove it from CODEBOT_KNOWLEDGE_DIRS",
    )


def git_sources(entry: str, cache: Path) -> tuple[SourceSet | None, list[str]]:
    """The documents of an operator's repository `url@ref`, fetched shallow into a bare
    repository kept under `cache` (so the next fetch brings only what changed)."""
    url, ref = split_entry(entry)
    shown = display_url(url) + (f"@{ref}" if ref else "")
    repo = cache / hashlib.sha256(entry.encode()).hexdigest()[:16]
    try:
        if not (repo / "HEAD").exists():
            repo.mkdir(parents=True, exist_ok=True)
            _git(["init", "--bare", "-q", str(repo)], repo)
        _git(["fetch", "--depth=1", "--no-tags", "-q", url, ref or "HEAD"], repo)
        commit = _git(["rev-parse", "FETCH_HEAD^{commit}"], repo).decode().strip()
        tree = _tree(repo, commit)
    except (GitFailed, OSError) as exc:
        said = str(exc).replace(url, display_url(url))
        fix = "check the URL, the ref and the network, or remove it from CODEBOT_KNOWLEDGE_REPOS"
        return None, [warning(f"cannot fetch {shown} ({said})", fix)]
    files = tuple(
        SourceFile(path, blob, _blob_reader(repo, blob, size), kind)
        for path, (blob, size) in tree.items()
        if (kind := kind_of(path))
    )
    return SourceSet(f"git:{shown}", shown, "CODEBOT_KNOWLEDGE_REPOS", files), []


def split_entry(entry: str) -> tuple[str, str]:
    """`url@ref` as (url, ref); without a ref, the remote's HEAD. The last `@` is not a ref's
    when it belongs to the address: `user@host` of a URL or of `git@host:org/repo`."""
    url, at, ref = entry.rpartition("@")
    in_netloc = "://" in url and "/" not in url.split("://", 1)[1]
    if not at or not url or ":" in ref or in_netloc or ("://" not in url and "/" not in url):
        return entry, ""
    return url, ref


def display_url(url: str) -> str:
    """`url` without any user:password part, as it may be shown."""
    parts = urlsplit(url)
    if parts.scheme and parts.hostname and (parts.username or parts.password):
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return url


def _tree(repo: Path, commit: str) -> dict[str, tuple[str, int]]:
    """Each regular file at `commit`: path -> (blob id, size)."""
    out = _git(["ls-tree", "-r", "-z", "-l", "--full-tree", commit], repo)
    files: dict[str, tuple[str, int]] = {}
    for record in out.decode("utf-8", "surrogateescape").split("\0"):
        meta, _, path = record.partition("\t")
        fields = meta.split()
        if len(fields) == 4 and fields[0] in ("100644", "100755") and fields[1] == "blob":
            files[path] = (fields[2], int(fields[3]))
    return files


def _blob_reader(repo: Path, blob: str, size: int) -> Callable[[], str]:
    def read() -> str:
        if size > MAX_BYTES:
            raise ValueError(f"{size:,} bytes, over the {MAX_BYTES:,}-byte limit")
        try:
            return _text(_git(["cat-file", "blob", blob], repo))
        except GitFailed as exc:
            raise OSError(str(exc)) from None

    return read


def _file_reader(path: Path) -> Callable[[], str]:
    def read() -> str:
        if path.stat().st_size > MAX_BYTES:
            raise ValueError(f"over the {MAX_BYTES:,}-byte limit")
        return _text(path.read_bytes())

    return read


def _text(data: bytes) -> str:
    if repomap.looks_binary(data):
        raise ValueError("binary, not text")
    return data.decode("utf-8", errors="replace")


def _git(args: Sequence[str], cwd: Path) -> bytes:
    """git's output, or GitFailed with its last line of complaint. Never prompts."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, timeout=_GIT_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise GitFailed(f"git {args[0]} took over {_GIT_TIMEOUT_S}s") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitFailed(lines[-1] if lines else f"git {args[0]} exited {done.returncode}")
    return done.stdout
