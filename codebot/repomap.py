"""The repository map: each file's top-level definitions, ranked by relevance to the task.

Pure: file texts in, ranked map out (context.py reads the files and fits the map in a budget).
Relevance comes from what the task names (paths, identifiers, `files:`), the failing output's
tracebacks, and the imports between files; noise (vendored, generated, packaging metadata,
templates) never competes with source. Deterministic for the same texts and task.
The definitions come from codebot.outline (re-exported here), the import edges from
codebot.imports. Parsing is most of the work on a large repository: codebot.parsing can do
it ahead (while the baseline runs), and `rank` takes what it parsed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import PurePosixPath

from codebot.imports import Graph, import_graph
from codebot.outline import (
    Symbol,
    find_symbol,
    named_symbols,
    outline,
    python_symbols,
    source_lines,
)
from codebot.parsing import Parsed, parse

__all__ = [
    "IMPORTED", "IMPORTER", "NOISE", "RELEVANT", "SCORE_FILES", "SCORE_FRAME", "SCORE_PATH",
    "SCORE_STRONG", "SCORE_WEAK", "Entry", "Frame", "Region", "Symbol", "Task",
    "changed_regions", "close_matches", "find_symbol", "frames", "identifiers", "is_noise",
    "is_test", "looks_binary", "merged", "named_symbols", "outline", "prior",
    "rank", "regions", "source_lines",
]  # fmt: skip

# gitignore-like globs: no slash matches at any depth, a leading slash anchors at the root,
# a trailing slash means a directory. build/ and dist/ are anchored: `src/build/` may be source.
NOISE: tuple[str, ...] = (
    *("vendor/", "third_party/", "node_modules/", "/build/", "/dist/", "*.egg-info/"),
    *("__pycache__/", ".tox/", ".nox/", ".venv/", "venv/", "site-packages/"),
    *("SOURCES.txt", "PKG-INFO", "*.lock", "package-lock.json", "pnpm-lock.yaml", "go.sum"),
    *("docs/conf.py", "doc/conf.py", ".github/ISSUE_TEMPLATE/", ".github/PULL_REQUEST_TEMPLATE*"),
    *("*.min.js", "*.min.css", "*.map", "*.pyc", "*.so", "*.dll", "*.dylib", "*.exe", "*.bin"),
    *("*.png", "*.jpg", "*.jpeg", "*.gif", "*.ico", "*.webp", "*.pdf", "*.woff", "*.woff2"),
    *("*.ttf", "*.otf", "*.eot", "*.zip", "*.gz", "*.tgz", "*.bz2", "*.xz", "*.whl", "*.jar"),
    *("*.class", "*.mp3", "*.mp4", "*.wav", "*.db", "*.sqlite", "*.npy", "*.npz", "*.pkl"),
    *("*.parquet",),
)
SCORE_FILES = 1000.0  # named in the spec's `files:`
SCORE_FRAME = 100.0  # in a traceback of the failing output
SCORE_PATH = 60.0  # its path, file name or module name is in the task text
SCORE_STRONG = 40.0  # defines a code-like identifier the task names (shared by all definers)
SCORE_WEAK = 15.0  # defines a plain word the task uses
RELEVANT = 10.0  # at or above: related to the task, not just a file of the repository
IMPORTER, IMPORTED = 0.5, 0.3  # shares of a seed's relevance for its importers, its imports
_CODE = {".py", ".pyi", ".js", ".jsx", ".ts", ".tsx", ".go", ".rs", ".java", ".kt", ".rb"}
_CODE |= {".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".swift", ".php", ".scala", ".sh", ".lua"}
_CONFIG = {".toml", ".cfg", ".ini", ".yml", ".yaml", ".json"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_FRAME = re.compile(
    r'File "(?P<p1>[^"\n]+)", line (?P<l1>\d+)(?:, in (?P<f1>[\w.<>]+))?'
    r"|(?m:^[ \t]*(?P<p2>[\w./\\-]+\.\w+):(?P<l2>\d+):(?:\d+:)?(?:[ \t]+in[ \t]+(?P<f2>[\w.]+))?)"
)


@dataclass(frozen=True)
class Frame:
    """One traceback frame in a tracked file."""

    path: str
    line: int
    function: str | None = None


@dataclass(frozen=True)
class Task:
    """What relevance is measured against: the spec's text, its `files:`, the failing frames."""

    text: str
    files: tuple[str, ...] = ()
    frames: tuple[Frame, ...] = ()


@dataclass(frozen=True)
class Entry:
    """One file of the map: its score, its definitions, and those the task names."""

    path: str
    score: float
    lines: int
    symbols: tuple[Symbol, ...]
    named: tuple[str, ...]  # qualified names of the definitions the task names, most telling first

    @property
    def relevant(self) -> bool:
        return self.score >= RELEVANT


def is_noise(path: str, exclude: Sequence[str] = ()) -> bool:
    """Whether `path` is generated, vendored, metadata or binary (NOISE), or matches `exclude`."""
    return _globs((*NOISE, *exclude)).match(path) is not None


@cache
def _globs(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{_glob(g)})" for g in patterns))


def _glob(pattern: str) -> str:
    body = pattern.strip("/")
    anchored = pattern.startswith("/") or "/" in body
    rx = re.sub(r"\\\*\\\*/|\\\*\\\*|\\\*|\\\?", _glob_part, re.escape(body))
    tail = "/.*" if pattern.endswith("/") else "(?:/.*)?"
    return ("" if anchored else "(?:.*/)?") + rx + tail + r"\Z"


def _glob_part(m: re.Match[str]) -> str:
    return {"\\*\\*/": "(?:.*/)?", "\\*\\*": ".*", "\\*": "[^/]*", "\\?": "[^/]"}[m.group()]


def looks_binary(data: bytes) -> bool:
    """Binary-looking content: a NUL byte in the first 8 KB, as git decides."""
    return b"\0" in data[:8192]


def frames(text: str, tracked: Sequence[str]) -> tuple[Frame, ...]:
    """The frames of `text` (Python and pytest tracebacks, `path:line:` tool output) that are
    in tracked files, in order; a sandbox's absolute path counts as its tracked suffix."""
    known = set(tracked)
    found: list[Frame] = []
    for m in _FRAME.finditer(text):
        raw = (m.group("p1") or m.group("p2")).replace("\\", "/")
        path = _tracked_suffix(raw, known)
        if path is not None:
            line = int(m.group("l1") or m.group("l2"))
            found.append(Frame(path, line, m.group("f1") or m.group("f2")))
    return tuple(dict.fromkeys(found))


def _tracked_suffix(raw: str, known: set[str]) -> str | None:
    parts = raw.removeprefix("./").split("/")
    for k in range(len(parts)):
        candidate = "/".join(parts[k:])
        if candidate in known:
            return candidate
    return None


def identifiers(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(strong, weak) names in `text`: strong look like code (`x`, x(), snake_case, CamelCase,
    a.b), weak are plain words of three letters or more."""
    strong: set[str] = set()
    weak: set[str] = set()
    for m in _IDENT.finditer(text):
        word = m.group()
        after = text[m.end() : m.end() + 1]
        before = text[m.start() - 1 : m.start()] if m.start() else ""
        code = "_" in word or "." in word or word[1:] != word[1:].lower() or after == "("
        code = code or (before == "`" and after == "`")
        target = strong if code else weak
        target.add(word)
        target.update(word.split("."))
    return frozenset(strong), frozenset(w for w in weak - strong if len(w) >= 3)


def close_matches(name: str, candidates: Iterable[str], sep: str = "/", n: int = 3) -> list[str]:
    """Up to `n` of `candidates` like `name`: the same last part (after `sep`) first, then
    similar spellings (`sep` is "/" for paths, a dot for qualified names)."""
    pool = sorted(set(candidates) - {name})
    last = name.rsplit(sep, 1)[-1]
    same = [c for c in pool if c.rsplit(sep, 1)[-1] == last]
    similar = difflib.get_close_matches(name, pool, n=n, cutoff=0.6)
    return list(dict.fromkeys([*same, *similar]))[:n]


def is_test(path: str) -> bool:
    p = PurePosixPath(path)
    stem = p.name.split(".", 1)[0]
    return (
        bool({"tests", "test"} & set(p.parts[:-1]))
        or stem.startswith("test_")
        or stem.endswith("_test")
        or p.name == "conftest.py"
        or ".test." in p.name
        or ".spec." in p.name
    )


def rank(
    texts: Mapping[str, str],
    task: Task,
    exclude: Sequence[str] = (),
    parsed: Parsed | None = None,
) -> tuple[Entry, ...]:
    """Every file of `texts` but noise (unless `files:` names it), best first, ties by path.
    `parsed`: files parsed ahead (`parse_all`), used where their text is still the same.

    Score: `files:` > traceback frames > path named in the task > identifiers it defines
    (shared among the files defining them); then half a seed's relevance to the files
    importing it and a third to those it imports; a file's prior by kind breaks the rest.
    A test of a relevant module ranks just below that module.
    """
    paths = sorted(p for p in texts if p in task.files or not is_noise(p, exclude))
    ahead = {p: parsed.get(p, texts[p]) if parsed else None for p in paths}
    trees = {p: a[0] if (a := ahead[p]) else parse(p, texts[p]) for p in paths}
    symbols = {
        p: a[1] if (a := ahead[p]) else (python_symbols(t) if t else outline(p, texts[p]))
        for p, t in trees.items()
    }
    strong, weak = identifiers(task.text)
    frame_names = {(f.path, f.function) for f in task.frames if f.function}
    named = {
        p: _ordered_names(symbols[p], strong, weak, {n for q, n in frame_names if q == p})
        for p in paths
    }
    defined = _definers(symbols)
    words = _words(task.text) | _tokens(task.text)
    direct = {p: _direct(p, task, named[p], strong, defined, words) for p in paths}
    graph = import_graph({p: t for p, t in trees.items() if t})
    score = {p: prior(p) + direct[p] + _neighbour_bonus(p, direct, graph) for p in paths}
    for test, module in _tested_modules(paths).items():
        if score[module] >= RELEVANT and test not in task.files:
            score[test] = score[module] - 0.01
    entries = [
        Entry(p, round(score[p], 3), len(source_lines(texts[p])), symbols[p], named[p])
        for p in paths
    ]
    return tuple(sorted(entries, key=lambda e: (-e.score, e.path)))


def _ordered_names(
    symbols: Sequence[Symbol], strong: frozenset[str], weak: frozenset[str], frame: set[str | None]
) -> tuple[str, ...]:
    """The definitions the task names, most telling first: traceback functions, code-like
    names, then plain words."""
    groups = [{n for n in frame if n}, strong, weak]
    ordered: list[str] = []
    for group in groups:
        ordered += sorted(named_symbols(symbols, group) - set(ordered))
    return tuple(ordered)


def _definers(symbols: Mapping[str, Sequence[Symbol]]) -> dict[str, int]:
    count: dict[str, int] = {}
    for syms in symbols.values():
        for name in {s.name.rsplit(".", 1)[-1] for s in syms}:
            count[name] = count.get(name, 0) + 1
    return count


def _direct(
    path: str,
    task: Task,
    named: Sequence[str],
    strong: frozenset[str],
    defined: Mapping[str, int],
    words: frozenset[str],
) -> float:
    score = SCORE_FILES if path in task.files else 0.0
    score += SCORE_FRAME if any(f.path == path for f in task.frames) else 0.0
    score += SCORE_PATH if _path_named(path, words) else 0.0
    ids = 0.0
    for name in {n.rsplit(".", 1)[-1] for n in named}:
        ids += (SCORE_STRONG if name in strong else SCORE_WEAK) / defined.get(name, 1)
    return score + min(ids, 2 * SCORE_STRONG)


def _path_named(path: str, words: frozenset[str]) -> bool:
    """Whether `words` (of the task text) hold the path, a trailing part of it ("pkg/a.py",
    "a.py") or its dotted module name."""
    parts = path.split("/")
    names = {"/".join(parts[k:]) for k in range(len(parts))}
    if path.endswith(".py") and len(parts) > 1:
        names.add(".".join(parts).removesuffix(".py").removesuffix(".__init__"))
    # Or its name spelled as words: "route 83" names route_083.py, "the README's" README.md.
    stem = _tokens(PurePosixPath(path).stem)
    spelled = bool(stem) and stem <= words and (len(stem) > 1 or len(min(stem)) >= 5)
    return spelled or bool(names & words)


def _tokens(text: str) -> frozenset[str]:
    """Lower-case words and numbers (without leading zeros) of `text`."""
    found = re.findall(r"[a-z]+|\d+", text.lower())
    return frozenset(t.lstrip("0") or "0" if t.isdigit() else t for t in found)


def _words(text: str) -> frozenset[str]:
    return frozenset(w.rstrip(".") for w in re.findall(r"[\w./-]+", text))


def prior(path: str) -> float:
    """What a file is worth when nothing ties it to the task: code, then tests, config, docs
    (packaging scripts and code under docs/ count as config and docs)."""
    p = PurePosixPath(path)
    if p.suffix in _CODE and not {"docs", "doc"} & set(p.parts[:-1]) and p.name != "setup.py":
        return 0.5 if is_test(path) else 1.0
    suffix = ".toml" if p.name == "setup.py" else p.suffix
    return 0.3 if suffix in _CONFIG else 0.2 if suffix in (".md", ".rst", ".txt") else 0.1


def _neighbour_bonus(path: str, direct: Mapping[str, float], graph: Graph) -> float:
    importers = [IMPORTER * min(direct[s], SCORE_FRAME) for s in graph.imports.get(path, ())]
    imported = [IMPORTED * min(direct[s], SCORE_FRAME) for s in graph.importers.get(path, ())]
    return max([0.0, *importers, *imported])


def _tested_modules(paths: Sequence[str]) -> dict[str, str]:
    """Test file -> the module it tests, by name (`tests/test_util.py` -> `pkg/util.py`); the
    module sharing most of the test's directories wins, then the first path."""
    by_stem: dict[str, list[str]] = {}
    for path in paths:
        if not is_test(path):
            by_stem.setdefault(_stem(path), []).append(path)
    found: dict[str, str] = {}
    for test in filter(is_test, paths):
        stem = _stem(test).removeprefix("test_").removesuffix("_test")
        dirs = set(PurePosixPath(test).parts[:-1]) - {"tests", "test"}
        candidates = by_stem.get(stem, []) if stem not in ("", "__init__") else []
        if candidates:
            found[test] = min(candidates, key=lambda c: (-len(dirs & set(c.split("/"))), c))
    return found


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].split(".", 1)[0]


@dataclass(frozen=True)
class Region:
    """Lines `start`..`end` of a file (1-based, inclusive) worth showing."""

    start: int
    end: int


def regions(entry: Entry, lines: Sequence[int], around: int = 3, span: int = 60) -> list[Region]:
    """The parts of a file that matter, most telling first: the definitions around the
    traceback `lines` (the deepest frame first), then the definitions the task names. A
    definition longer than `span` lines is shown by its start (or the window at the line)."""
    found: list[Region] = []
    for line in reversed(lines):
        inside = [s for s in entry.symbols if s.line <= line <= s.end]
        owner = max(inside, key=lambda s: (s.depth, s.line)) if inside else None
        if owner is not None and owner.end - owner.line <= span:
            found.append(Region(owner.line - around, owner.end + around))
            continue
        if owner is not None:
            found.append(Region(owner.line, owner.line))
        found.append(Region(line - 2 * around, line + 2 * around))
    for name in entry.named:
        s = next(x for x in entry.symbols if x.name == name)
        found.append(Region(s.line - around, min(s.end, s.line + span) + around))
    clamp = [Region(max(1, r.start), min(entry.lines, r.end)) for r in found]
    return list(dict.fromkeys(r for r in clamp if r.start <= r.end))


def merged(parts: Iterable[Region]) -> list[Region]:
    """`parts` sorted, with overlapping or adjacent regions joined."""
    out: list[Region] = []
    for r in sorted(parts, key=lambda r: (r.start, r.end)):
        if out and r.start <= out[-1].end + 1:
            out[-1] = Region(out[-1].start, max(out[-1].end, r.end))
        else:
            out.append(r)
    return out


def changed_regions(before: str, after: str, around: int = 3, span: int = 40) -> list[Region]:
    """Where `after` differs from `before` (lines of `after`), with `around` lines of context;
    a hunk longer than `span` lines is shown by its start and its end."""
    old, new = source_lines(before), source_lines(after)
    found: list[Region] = []
    for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        start, end = j1 + 1, max(j2, j1 + 1)
        if end - start >= span:
            found += [Region(start, start + span // 2 - 1), Region(end - span // 2 + 1, end)]
        else:
            found.append(Region(start, end))
    clamp = [Region(max(1, r.start - around), min(len(new), r.end + around)) for r in found]
    return [r for r in clamp if r.start <= r.end]
