"""Apply edits to files, matched exactly, then whitespace-insensitively, then fuzzily (`match`).

Every refusal is written for the model to read and correct itself (the closest lines, similar
paths, "already applied"), and an edit that would change no byte is never reported as applied.
The test policy (`policy`) sees each file's new content before it is written, so a refused
edit leaves the file as it was.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codebot.edits.match import Match, closest, find, fuzzy, positions
from codebot.edits.paths import escape_controls, normalise, refuse_path
from codebot.edits.policy import IntegrityRules
from codebot.records import Edit, EditOutcome, EditStatus
from codebot.spec import TestsPolicy

SIMILAR_PATH_CUTOFF = 0.6  # how alike a path must be to be suggested for a missing file
MAX_SHOWN_LINES = 10  # closest-lines excerpt in a refusal
MAX_LISTED_FILES = 20_000  # stop walking huge trees when suggesting similar paths

NO_CHANGE = "the edit changes nothing: REPLACE is identical to the lines it matched"
SAME_CONTENT = "the file already has exactly this content"


@dataclass(frozen=True)
class _Text:
    """A file as lines, remembering the newline style and final newline to write it back."""

    lines: tuple[str, ...]
    crlf: bool
    final_newline: bool


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
    outcomes: list[EditOutcome] = []
    for edit in edits:
        shift = _shift(edit, zip(edits, outcomes, strict=False))
        outcomes.append(_apply_one(root, edit, protected, rules, shift))
    return tuple(outcomes)


def _shift(edit: Edit, done: Iterable[tuple[Edit, EditOutcome]]) -> int:
    """Lines the earlier hunks of a diff added above this one: its header counts the file
    before any hunk, but the hunks land one after another."""
    if edit.hint_line is None:
        return 0
    return sum(
        len(_split(e.replace)) - len(_split(e.search))
        for e, outcome in done
        if e.path == edit.path and e.hint_line is not None and e.hint_line < edit.hint_line
        if outcome.status != "refused" and not e.delete
    )


def _apply_one(
    root: Path, edit: Edit, protected: Sequence[str], rules: IntegrityRules, shift: int
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
        status, detail = _change_file(root, rel, edit, guard, shift)
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


def _change_file(
    root: Path, rel: str, edit: Edit, guard: _Guard, shift: int
) -> tuple[EditStatus, str]:
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
    status, detail, new = _edit_text(text, edit, rel, shift)
    if new is not None:
        if why := guard.refuse_change(_body(text), _body(new)):
            return "refused", f"block {edit.block}: {why}"
        _dump(target, new)
    return status, detail


def _edit_text(
    text: _Text, edit: Edit, rel: str, shift: int
) -> tuple[EditStatus, str, _Text | None]:
    """Decide what one edit does to one file's text: (status, detail, new text or None)."""
    search, replace = _split(edit.search), _split(edit.replace)
    if not "".join(search).strip():
        return _fill(text, edit, replace, rel)
    hint = None if edit.hint_line is None else edit.hint_line + shift
    match = find(text.lines, search, hint)
    if isinstance(match, Match) and not _inside_replace(text.lines, search, replace, match):
        return _changed(text, match, search, replace, _moved(edit, match, hint))
    # Checked before fuzzy matching, so a resent edit is not applied on top of itself.
    present = match is None and "".join(replace).strip() and find(text.lines, replace, None)
    if isinstance(match, Match) or present:
        return "already_applied", "the REPLACE text is already in the file; nothing to do", None
    match = fuzzy(text.lines, search, hint) if match is None else match
    if isinstance(match, str):
        why = f"block {edit.block}: {match} in {rel}"
        return "refused", f"{why}; add more context lines so it matches exactly one place", None
    if match is None:
        return "refused", _not_found(text.lines, search, edit.block, rel), None
    return _changed(text, match, search, replace, _moved(edit, match, hint))


def _moved(edit: Edit, match: Match, hint: int | None) -> str:
    """How far a diff hunk matched from where its header put it: the model should know its line
    numbers were wrong. `hint` is the header's line after the diff's earlier hunks."""
    if edit.format != "diff" or hint is None or match.start + 1 == hint:
        return ""
    by = match.start + 1 - hint
    lines = "line" if abs(by) == 1 else "lines"
    return f", moved by {by} {lines} from the header's line {edit.hint_line}"


def _changed(
    text: _Text, match: Match, search: list[str], replace: list[str], moved: str
) -> tuple[EditStatus, str, _Text | None]:
    """Applied only if some line changes: reporting a no-op as applied would tell the loop, and
    the model, that the tree changed when it did not."""
    new = _replaced(text, match, search, replace)
    if new == text:
        return "already_applied", NO_CHANGE, None
    return "applied", match.how + moved, new


def _replaced(text: _Text, match: Match, search: list[str], replace: list[str]) -> _Text:
    """The matched span, and nothing else, becomes REPLACE (shifted to the file's indentation
    when the match ignored it)."""
    if match.reindent:
        pairs = match.pairs or tuple(enumerate(range(match.start, match.end)))
        replace = _reindent(replace, [(search[i], text.lines[j]) for i, j in pairs])
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


def _inside_replace(
    lines: Sequence[str], search: list[str], replace: list[str], match: Match
) -> bool:
    """True when SEARCH only matches inside an earlier-applied REPLACE (a resent edit)."""
    if len(replace) <= len(search) or match.how != "exact":
        return False
    spans = [(r, r + len(replace)) for r in positions(lines, replace)]
    starts = positions(lines, search)
    return bool(spans) and all(
        any(a <= s and s + len(search) <= b for a, b in spans) for s in starts
    )


def _reindent(replace: list[str], pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Shift REPLACE by the indentation gap between a SEARCH line and the file line it matched."""
    pairs = [(s, f) for s, f in pairs if s.strip() and f.strip()]
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
    """The closest lines and one either side: a near match is refused when SEARCH leaves out a
    line the file has there, and the model must see that line to correct its SEARCH."""
    head = f"block {block}: the SEARCH text was not found in {rel}."
    ratio, starts, length = closest(lines, search)
    if not lines or ratio == 0.0:
        return f"{head} The file has {len(lines)} lines and none resemble it."
    start = max(0, starts[0] - 1)
    shown = lines[start : min(starts[0] + length + 1, start + MAX_SHOWN_LINES)]
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
