"""Apply edits to files: exact, then whitespace-insensitive, then fuzzy matching.

Every refusal is written for the model to read and correct itself (the closest lines, similar
paths, "already applied"), and an edit that would change no byte is never reported as applied.
The test policy (`policy`) sees each file's new content before it is written, so a refused
edit leaves the file as it was.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codebot.edits.paths import escape_controls, normalise, refuse_path
from codebot.edits.policy import IntegrityRules
from codebot.records import Edit, EditOutcome, EditStatus
from codebot.spec import TestsPolicy

FUZZY_MIN_RATIO = 0.9  # below this a near match is shown to the model, never applied
SIMILAR_PATH_CUTOFF = 0.6  # how alike a path must be to be suggested for a missing file
MAX_SHOWN_LINES = 10  # closest-lines excerpt in a refusal
MAX_LISTED_FILES = 20_000  # stop walking huge trees when suggesting similar paths
MAX_FUZZY_CANDIDATES = 50  # windows that get the exact (slow) similarity ratio

NO_CHANGE = "the edit changes nothing: REPLACE is identical to the lines it matched"
SAME_CONTENT = "the file already has exactly this content"


@dataclass(frozen=True)
class _Text:
    """A file as lines, remembering the newline style and final newline to write it back."""

    lines: tuple[str, ...]
    crlf: bool
    final_newline: bool


@dataclass(frozen=True)
class _Match:
    start: int
    length: int
    how: str
    reindent: bool = False

    @property
    def end(self) -> int:
        return self.start + self.length


def apply_edits(
    root: Path,
    edits: Sequence[Edit],
    protected: Sequence[str],
    tests: TestsPolicy = "may_add",
    base_files: Iterable[str] = frozenset(),
) -> tuple[EditOutcome, ...]:
    """Apply in order; each outcome stands alone so the caller decides what to undo.

    `tests` and `base_files` (the files tracked at the base commit, which make a test file
    "existing") decide which changes to tests and their configuration are refused.
    """
    rules = IntegrityRules.of(tests, base_files)
    return tuple(_apply_one(root, edit, protected, rules) for edit in edits)


def _apply_one(
    root: Path, edit: Edit, protected: Sequence[str], rules: IntegrityRules
) -> EditOutcome:
    reason = refuse_path(root, edit.path, protected)
    if reason:
        return EditOutcome(
            escape_controls(edit.path), edit.block, "refused", f"block {edit.block}: {reason}"
        )
    rel = normalise(edit.path)
    guard = _Guard(rules, _names(root, rel))
    reason = guard.refuse_target(edit.delete)
    if reason:
        return EditOutcome(rel, edit.block, "refused", f"block {edit.block}: {reason}")
    try:
        status, detail = _change_file(root, rel, edit, guard)
    except OSError as exc:  # e.g. a parent is a file, or a permission problem
        status, detail = "refused", f"block {edit.block}: cannot write {rel}: {exc.strerror}"
    return EditOutcome(rel, edit.block, status, detail)


def _names(root: Path, rel: str) -> tuple[str, ...]:
    """`rel` and, if a symlink leads elsewhere in the tree, the path it really writes."""
    real_root = root.resolve()
    return tuple(
        dict.fromkeys((rel, (real_root / rel).resolve().relative_to(real_root).as_posix()))
    )


@dataclass(frozen=True)
class _Guard:
    """The test policy applied to every name one edit writes through."""

    rules: IntegrityRules
    names: tuple[str, ...]

    def refuse_target(self, delete: bool) -> str | None:
        reasons = (self.rules.refuse_target(name, delete) for name in self.names)
        return next((reason for reason in reasons if reason), None)

    def refuse_change(self, before: str, after: str | None) -> str | None:
        reasons = (self.rules.refuse_change(name, before, after) for name in self.names)
        return next((reason for reason in reasons if reason), None)


def _change_file(root: Path, rel: str, edit: Edit, guard: _Guard) -> tuple[EditStatus, str]:
    """Work out the new content, let the guard veto it, and only then touch the disk."""
    target = root / rel
    if target.is_dir():
        return "refused", f"block {edit.block}: {rel} is a directory, not a file"
    if not target.exists():
        if edit.delete or edit.search.strip():
            return "refused", _missing(root, rel, edit)
        created = edit.replace.replace("\r\n", "\n")
        if why := guard.refuse_change("", created):
            return "refused", f"block {edit.block}: {why}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(created.encode("utf-8"))
        return "applied", "created new file"
    if edit.delete:
        if why := guard.refuse_change(target.read_bytes().decode("utf-8", "replace"), None):
            return "refused", f"block {edit.block}: {why}"
        target.unlink()
        return "applied", "deleted file"
    try:
        text = _load(target)
    except UnicodeDecodeError:
        return "refused", f"block {edit.block}: {rel} is not a UTF-8 text file"
    status, detail, new = _edit_text(text, edit, rel)
    if new is not None:
        if why := guard.refuse_change(_body(text), _body(new)):
            return "refused", f"block {edit.block}: {why}"
        _dump(target, new)
    return status, detail


def _edit_text(text: _Text, edit: Edit, rel: str) -> tuple[EditStatus, str, _Text | None]:
    """Decide what one edit does to one file's text: (status, detail, new text or None)."""
    search, replace = _split(edit.search), _split(edit.replace)
    if not "".join(search).strip():
        return _fill(text, edit, replace, rel)
    match = _find(text.lines, search, edit.hint_line)
    if isinstance(match, _Match) and not _inside_replace(text.lines, search, replace, match):
        return _changed(text, match, search, replace)
    # Checked before fuzzy matching, so a resent edit is not applied on top of itself.
    present = match is None and "".join(replace).strip() and _find(text.lines, replace, None)
    if isinstance(match, _Match) or present:
        return "already_applied", "the REPLACE text is already in the file; nothing to do", None
    match = _fuzzy(text.lines, search, edit.hint_line) if match is None else match
    if isinstance(match, str):
        why = f"block {edit.block}: {match} in {rel}"
        return "refused", f"{why}; add more context lines so it matches exactly one place", None
    if match is None:
        return "refused", _not_found(text.lines, search, edit.block, rel), None
    return _changed(text, match, search, replace)


def _changed(
    text: _Text, match: _Match, search: list[str], replace: list[str]
) -> tuple[EditStatus, str, _Text | None]:
    """Applied only if some line changes: reporting a no-op as applied would tell the loop, and
    the model, that the tree changed when it did not."""
    new = _replaced(text, match, search, replace)
    if new == text:
        return "already_applied", NO_CHANGE, None
    return "applied", match.how, new


def _replaced(text: _Text, match: _Match, search: list[str], replace: list[str]) -> _Text:
    if match.reindent:
        replace = _reindent(replace, search, text.lines[match.start : match.end])
    lines = (*text.lines[: match.start], *replace, *text.lines[match.end :])
    return _Text(lines, text.crlf, text.final_newline)


def _fill(
    text: _Text, edit: Edit, replace: list[str], rel: str
) -> tuple[EditStatus, str, _Text | None]:
    """Empty SEARCH creates: only an empty file may be filled, never one with content."""
    if tuple(replace) == text.lines:
        return "already_applied", SAME_CONTENT, None
    if not "".join(text.lines).strip():
        filled = _Text(tuple(replace), text.crlf, edit.replace.endswith("\n"))
        return "applied", "filled empty file", filled
    why = f"block {edit.block}: {rel}: file exists; give SEARCH lines to change it"
    return "refused", f"{why} (an empty SEARCH only creates new files)", None


_LEVELS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("exact", lambda s: s),
    ("whitespace-insensitive", str.rstrip),
    ("whitespace-insensitive", str.strip),
)


def _find(lines: Sequence[str], search: Sequence[str], hint: int | None) -> _Match | str | None:
    """Exact, then whitespace-insensitive; a str explains an ambiguity the hint cannot settle."""
    for level, (how, norm) in enumerate(_LEVELS):
        starts = _positions([norm(x) for x in lines], [norm(x) for x in search])
        if starts:
            start = _pick(starts, hint)
            if start is None:
                places = ", ".join(str(s + 1) for s in starts[:8])
                return f"the SEARCH text matches {len(starts)} places (lines {places})"
            return _Match(start, len(search), how, reindent=level == 2)
    return None


def _fuzzy(lines: Sequence[str], search: Sequence[str], hint: int | None) -> _Match | str | None:
    ratio, starts, length = _closest(lines, search, FUZZY_MIN_RATIO)
    if ratio < FUZZY_MIN_RATIO:
        return None
    start = _pick(starts, hint)
    if start is None:
        return f"the SEARCH text resembles {len(starts)} places equally"
    return _Match(start, length, f"fuzzy (ratio {ratio:.2f})", reindent=True)


def _positions(lines: Sequence[str], search: Sequence[str]) -> list[int]:
    n = len(search)
    return [i for i in range(len(lines) - n + 1) if list(lines[i : i + n]) == list(search)]


def _pick(starts: Sequence[int], hint: int | None) -> int | None:
    if len(starts) == 1:
        return starts[0]
    if hint is None:
        return None
    return min(starts, key=lambda s: abs(s + 1 - hint))


def _closest(
    lines: Sequence[str], search: Sequence[str], cutoff: float = 0.0
) -> tuple[float, list[int], int]:
    """Most similar window, of n-1..n+1 lines so one dropped or extra line is tolerated.

    quick_ratio() bounds ratio() from above and is cheap, so it ranks the windows and only
    the top few pay for the exact ratio: a large file stays well under a second.
    """
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2("\n".join(x.strip() for x in search))
    stripped = [x.strip() for x in lines]
    ranked: list[tuple[float, int, int]] = []
    for length in sorted({max(1, len(search) + d) for d in (0, -1, 1)}):
        for i in range(len(lines) - length + 1):
            matcher.set_seq1("\n".join(stripped[i : i + length]))
            bound = matcher.quick_ratio() if matcher.real_quick_ratio() >= cutoff else 0.0
            if bound >= cutoff:
                ranked.append((bound, i, length))
    ranked.sort(key=lambda r: -r[0])
    best, starts, best_len = 0.0, [0], len(search)
    for bound, i, length in ranked[:MAX_FUZZY_CANDIDATES]:
        if bound < best:
            break
        matcher.set_seq1("\n".join(stripped[i : i + length]))
        ratio = matcher.ratio()
        if ratio > best:
            best, starts, best_len = ratio, [i], length
        elif ratio == best and length == best_len:
            starts.append(i)
    return best, sorted(starts), best_len


def _inside_replace(
    lines: Sequence[str], search: list[str], replace: list[str], match: _Match
) -> bool:
    """True when SEARCH only matches inside an earlier-applied REPLACE (a resent edit)."""
    if len(replace) <= len(search) or match.how != "exact":
        return False
    spans = [(r, r + len(replace)) for r in _positions(lines, replace)]
    starts = _positions(lines, search)
    return bool(spans) and all(
        any(a <= s and s + len(search) <= b for a, b in spans) for s in starts
    )


def _reindent(replace: list[str], search: Sequence[str], found: Sequence[str]) -> list[str]:
    """Shift REPLACE by the indentation gap between the model's SEARCH and the real lines."""
    pairs = [(s, f) for s, f in zip(search, found, strict=False) if s.strip() and f.strip()]
    if not pairs:
        return replace
    model, real = (x[: len(x) - len(x.lstrip())] for x in pairs[0])
    extra = real[len(model) :] if real.startswith(model) else ""
    out = []
    for line in replace:
        if line.strip() and line.startswith(model):
            line = real + line[len(model) :]
        elif line.strip():
            line = extra + line
        out.append(line)
    return out


def _not_found(lines: Sequence[str], search: Sequence[str], block: int, rel: str) -> str:
    head = f"block {block}: the SEARCH text was not found in {rel}."
    ratio, starts, length = _closest(lines, search)
    if not lines or ratio == 0.0:
        return f"{head} The file has {len(lines)} lines and none resemble it."
    start = starts[0]
    shown = lines[start : start + min(length, MAX_SHOWN_LINES)]
    excerpt = "\n".join(f"{start + k + 1:>5} | {line}" for k, line in enumerate(shown))
    return (
        f"{head} Closest lines (similarity {ratio:.2f}), lines {start + 1}-{start + len(shown)}:"
        f"\n{excerpt}\nCopy SEARCH exactly from the current file, indentation included."
    )


def _missing(root: Path, rel: str, edit: Edit) -> str:
    head = f"block {edit.block}: {rel} does not exist."
    if edit.delete:
        return f"{head} Nothing to delete."
    files = _repo_files(root)
    base = rel.rsplit("/", 1)[-1]
    near = difflib.get_close_matches(rel, files, n=5, cutoff=SIMILAR_PATH_CUTOFF)
    near += [f for f in files if f.rsplit("/", 1)[-1] == base and f not in near]
    hint = f" Similar files: {', '.join(near[:5])}." if near else ""
    return f"{head}{hint} To create a new file, leave SEARCH empty."


def _repo_files(root: Path) -> list[str]:
    files: list[str] = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        rel = Path(folder).relative_to(root).as_posix()
        files += [n if rel == "." else f"{rel}/{n}" for n in sorted(names)]
        if len(files) >= MAX_LISTED_FILES:
            break
    return files


def _split(text: str) -> list[str]:
    text = text.replace("\r\n", "\n")
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n") if text else []


def _load(path: Path) -> _Text:
    raw = path.read_bytes().decode("utf-8")
    crlf = raw.count("\r\n") * 2 > raw.count("\n")
    text = raw.replace("\r\n", "\n")
    return _Text(tuple(_split(text)), crlf, text.endswith("\n"))


def _body(text: _Text) -> str:
    return "\n".join(text.lines) + ("\n" if text.final_newline and text.lines else "")


def _dump(path: Path, text: _Text) -> None:
    body = _body(text)
    path.write_bytes((body.replace("\n", "\r\n") if text.crlf else body).encode("utf-8"))
