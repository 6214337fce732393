"""Parse the model's edits (search/replace blocks and unified diffs) and apply them safely.

Parsing is pure text-in, dataclasses-out; applying tries exact, then whitespace-insensitive,
then fuzzy matching, and every refusal is written for the model to read and correct itself.
At ~500 lines this is over the ~400-line guide on purpose: it is the one home of unidiff and
of both edit formats, and parse/apply share the Edit vocabulary; split it in two if it grows.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from unidiff.errors import UnidiffParseError
from unidiff.patch import Hunk, PatchSet

from codebot.records import Edit, EditOutcome, EditStatus

FUZZY_MIN_RATIO = 0.9  # below this a near match is shown to the model, never applied
SIMILAR_PATH_CUTOFF = 0.6  # how alike a path must be to be suggested for a missing file
MAX_SHOWN_LINES = 10  # closest-lines excerpt in a refusal
MAX_LISTED_FILES = 20_000  # stop walking huge trees when suggesting similar paths
MAX_FUZZY_CANDIDATES = 50  # windows that get the exact (slow) similarity ratio

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_FENCE = re.compile(r"^\s*```\s*([\w+-]*)")
_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$")
_PATH_LIKE = re.compile(r"^[\w.~][\w.\-/+@~]*$")
_PATH_LABEL = re.compile(r"^(?:file|filename|path)\s*:\s*", re.IGNORECASE)
_BARE_NAMES = {"Makefile", "Dockerfile", "LICENSE", "README", "Procfile", "Gemfile", "Justfile"}


@dataclass(frozen=True)
class ParsedReply:
    """Every edit found in a reply, plus what could not be read (sent back to the model).

    Blocks are numbered from 1 in order of appearance; each diff hunk (or deleted file)
    counts as one block, so every edit, and every outcome, has a number of its own.
    """

    edits: tuple[Edit, ...]
    problems: tuple[str, ...]


# ---------------------------------------------------------------- parsing


def parse_edits(reply: str) -> ParsedReply:
    """Accept both formats wherever they appear: models drift from the format they were told."""
    lines = reply.replace("\r\n", "\n").split("\n")
    edits: list[Edit] = []
    problems: list[str] = []
    path: str | None = None
    block = floor = i = 0
    in_fence = False
    while i < len(lines):
        diff = _diff_span(lines, i, in_fence)
        if diff is not None:
            found, problem = _diff_to_edits("\n".join(lines[diff[0] : diff[1]]), block)
            edits += found
            block += len(found) or 1
            problems += [problem] if problem else []
            i = floor = diff[1] + 1
        elif _SEARCH.match(lines[i]):
            block += 1
            path = _path_before(lines, floor, i) or path
            end, problem = _read_block(lines, i, block, path, edits)
            problems += [problem] if problem else []
            i = floor = end + 1
        else:
            fence = _FENCE.match(lines[i])
            # A tagged fence (```python) always opens, so one unclosed fence cannot hide the rest.
            in_fence = (bool(fence.group(1)) or not in_fence) if fence else in_fence
            i += 1
    return ParsedReply(tuple(edits), tuple(problems))


def _diff_span(lines: list[str], i: int, in_fence: bool) -> tuple[int, int] | None:
    """(first, closing) line of a fenced diff opening at `i`; a fence holding SEARCH is not one."""
    fence = _FENCE.match(lines[i])
    if not fence or (in_fence and not fence.group(1)):
        return None
    end = next((j for j in range(i + 1, len(lines)) if _FENCE.match(lines[j])), len(lines))
    body = [x for x in lines[i + 1 : end] if x.strip()]
    if not body or any(_SEARCH.match(x) for x in body):
        return None
    diff_tag = fence.group(1).lower() in ("diff", "patch", "udiff")
    header = body[0].startswith(("--- ", "diff --git "))
    return (i + 1, end) if diff_tag or header else None


def _path_before(lines: list[str], floor: int, at: int) -> str | None:
    """The path named on one of the few lines before a SEARCH marker, skipping fence lines."""
    seen = 0
    for j in range(at - 1, floor - 1, -1):
        if not lines[j].strip() or _FENCE.match(lines[j]):
            continue
        path = _as_path(lines[j])
        if path or seen >= 2:
            return path
        seen += 1
    return None


def _as_path(line: str) -> str | None:
    """A line that is a path (maybe in backticks, bold, a heading); or prose ending in ':'
    that names one in backticks, as in "Update `src/calc.py`:"."""
    text = _PATH_LABEL.sub("", line.strip().lstrip("#").strip("*`'\": \t")).strip("*`'\": \t")
    if _is_path(text):
        return text
    quoted = [q for q in re.findall(r"`([^`\s]+)`", line) if _is_path(q)]
    return quoted[-1] if quoted and line.rstrip().endswith(":") else None


def _is_path(text: str) -> bool:
    if not _PATH_LIKE.match(text) or set(text) <= {".", "/"}:
        return False
    return "." in text or "/" in text or text in _BARE_NAMES


def _read_block(
    lines: list[str], at: int, block: int, path: str | None, out: list[Edit]
) -> tuple[int, str | None]:
    """Read one SEARCH/REPLACE block from `at`; append its edit or return why it is unusable."""
    divider = _next(lines, at + 1, _DIVIDER)
    end = _next(lines, divider + 1, _REPLACE) if divider is not None else None
    if divider is None or end is None:
        missing = "=======" if divider is None else ">>>>>>> REPLACE"
        return at, f"block {block}: SEARCH section has no closing `{missing}` line"
    if path is None:
        return end, (
            f"block {block}: SEARCH without a file path; put the path alone on the line "
            "just before <<<<<<< SEARCH"
        )
    search, replace = _join(lines[at + 1 : divider]), _join(lines[divider + 1 : end])
    out.append(Edit(path, search, replace, "search_replace", block))
    return end, None


def _next(lines: list[str], start: int, marker: re.Pattern[str]) -> int | None:
    """Index of the next `marker` line, or None if another SEARCH (or the end) comes first."""
    for j in range(start, len(lines)):
        if marker.match(lines[j]):
            return j
        if _SEARCH.match(lines[j]):
            return None
    return None


def _join(lines: Sequence[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _diff_to_edits(body: str, block: int) -> tuple[list[Edit], str | None]:
    """One edit per hunk (or per deleted file); bad hunk counts are recounted, not rejected."""
    try:
        patch = PatchSet(_recount_hunks(body))
    except UnidiffParseError as exc:
        return [], f"diff block {block + 1}: cannot parse: {exc}"
    edits: list[Edit] = []
    for pfile in patch:
        source, target = _strip_prefixes(pfile.source_file or "", pfile.target_file or "")
        if pfile.is_removed_file:
            edits.append(Edit(source, "", "", "diff", block + len(edits) + 1, delete=True))
            continue
        for hunk in pfile:
            search, replace = _hunk_sides(hunk)
            hint = int(hunk.source_start) or None
            edits.append(Edit(target, search, replace, "diff", block + len(edits) + 1, hint))
    problem = f"diff block {block + 1}: cannot parse: no `--- a/path`, `+++ b/path` and @@ hunk"
    return edits, (None if edits else problem)


def _recount_hunks(body: str) -> str:
    """Rewrite every @@ header from its body: models miscount, and unidiff truncates silently."""
    lines = body.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        header = lines[i]
        i += 1
        if not header.startswith("@@"):
            out.append(header)
            continue
        start = i
        while i < len(lines) and _in_hunk(lines, i):
            i += 1
        end = i
        while end > start and not lines[end - 1]:  # blank lines after the hunk, not in it
            end -= 1
        hunk = [line or " " for line in lines[start:end]]
        numbers = _HUNK.match(header)
        src, dst, tail = numbers.groups() if numbers else ("0", "0", "")
        old = sum(1 for x in hunk if x[:1] in (" ", "-"))
        new = sum(1 for x in hunk if x[:1] in (" ", "+"))
        out += [f"@@ -{src},{old} +{dst},{new} @@{tail}", *hunk]
    return "\n".join(out) + "\n"


def _in_hunk(lines: list[str], i: int) -> bool:
    line = lines[i]
    if line.startswith(("@@", "diff ")):
        return False
    if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
        return False
    return line == "" or line[:1] in (" ", "+", "-", "\\")


def _strip_prefixes(source: str, target: str) -> tuple[str, str]:
    """Drop git's a/ and b/ only when both sides use them (a real dir could be named `a`)."""
    if source.startswith(("a/", "/dev/null")) and target.startswith(("b/", "/dev/null")):
        source = source[2:] if source.startswith("a/") else source
        target = target[2:] if target.startswith("b/") else target
    return source, (source if target == "/dev/null" else target)


def _hunk_sides(hunk: Hunk) -> tuple[str, str]:
    old: list[str] = []
    new: list[str] = []
    last: list[list[str]] = []
    for line in hunk:
        sides = {" ": [old, new], "-": [old], "+": [new]}.get(line.line_type)
        if sides is None:  # "\ No newline at end of file" belongs to the line before it
            for side in last:
                side[-1] = side[-1].rstrip("\n")
            continue
        for side in sides:
            side.append(line.value if line.value.endswith("\n") else line.value + "\n")
        last = sides
    return "".join(old), "".join(new)


# ---------------------------------------------------------------- path safety


def refuse_path(root: Path, path: str, protected: Sequence[str]) -> str | None:
    """Why the bot must not write `path` (absolute, escaping, .git, protected), or None."""
    if "\x00" in path:
        return f"refused: {path!r} contains a NUL byte"
    rel = _normalise(path)
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


def _normalise(path: str) -> str:
    return "/".join(part for part in path.split("/") if part not in ("", "."))


# ---------------------------------------------------------------- applying


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
    root: Path, edits: Sequence[Edit], protected: Sequence[str]
) -> tuple[EditOutcome, ...]:
    """Apply in order; each outcome stands alone so the caller decides what to undo."""
    return tuple(_apply_one(root, edit, protected) for edit in edits)


def _apply_one(root: Path, edit: Edit, protected: Sequence[str]) -> EditOutcome:
    reason = refuse_path(root, edit.path, protected)
    if reason:
        return EditOutcome(edit.path, edit.block, "refused", f"block {edit.block}: {reason}")
    rel = _normalise(edit.path)
    try:
        status, detail = _change_file(root, rel, edit)
    except OSError as exc:  # e.g. a parent is a file, or a permission problem
        status, detail = "refused", f"block {edit.block}: cannot write {rel}: {exc.strerror}"
    return EditOutcome(rel, edit.block, status, detail)


def _change_file(root: Path, rel: str, edit: Edit) -> tuple[EditStatus, str]:
    target = root / rel
    if target.is_dir():
        return "refused", f"block {edit.block}: {rel} is a directory, not a file"
    if not target.exists():
        if edit.delete or edit.search.strip():
            return "refused", _missing(root, rel, edit)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(edit.replace.replace("\r\n", "\n").encode("utf-8"))
        return "applied", "created new file"
    if edit.delete:
        target.unlink()
        return "applied", "deleted file"
    try:
        text = _load(target)
    except UnicodeDecodeError:
        return "refused", f"block {edit.block}: {rel} is not a UTF-8 text file"
    status, detail, new = _edit_text(text, edit, rel)
    if new is not None:
        _dump(target, new)
    return status, detail


def _edit_text(text: _Text, edit: Edit, rel: str) -> tuple[EditStatus, str, _Text | None]:
    """Decide what one edit does to one file's text: (status, detail, new text or None)."""
    search, replace = _split(edit.search), _split(edit.replace)
    if not "".join(search).strip():
        return _fill(text, edit, replace, rel)
    match = _find(text.lines, search, edit.hint_line)
    if isinstance(match, _Match) and not _inside_replace(text.lines, search, replace, match):
        return "applied", match.how, _replaced(text, match, search, replace)
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
    return "applied", match.how, _replaced(text, match, search, replace)


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
        return "already_applied", "the file already has exactly this content", None
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


def _dump(path: Path, text: _Text) -> None:
    body = "\n".join(text.lines) + ("\n" if text.final_newline and text.lines else "")
    path.write_bytes((body.replace("\n", "\r\n") if text.crlf else body).encode("utf-8"))
