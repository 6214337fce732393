"""Team knowledge for the task at hand: the design notes, ADRs, style guides and past review
comments that state rules the code itself does not show.

`prepare` brings the on-disk index (codebot.knowledge_index) up to date with the run's
sources (codebot.knowledge_sources) and returns a `Knowledge`: that index seen through those
sources. `retrieve` ranks passages for a query (`query_for`: the spec, the files being
edited, the current failures) by BM25, fused with cosine similarity of embeddings when an
embeddings model is configured, and keeps the best that fit a token budget. Nothing here
raises for a bad source: it becomes a one-line note and the run goes on without it.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codebot import llm
from codebot.config import KnowledgeConfig, ModelConfig, Settings
from codebot.errors import ModelError
from codebot.knowledge_index import Embedder, Index, Row, SyncReport
from codebot.knowledge_sources import SourceSet, dir_sources, git_sources, repo_sources, warning
from codebot.records import GroundingPassage
from codebot.spec import TaskSpec
from codebot.tokens import estimate_tokens
from codebot.workspace import origin_url

EMBEDDINGS_ENV = "CODEBOT_EMBEDDINGS_MODEL"
INDEX_ENV = "CODEBOT_KNOWLEDGE_INDEX"
INDEX_NAME = "knowledge.sqlite"  # in the user's cache directory by default (default_index)
# Reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): a passage scores
# sum(1 / (RRF_K + rank)) over the rankings it is in. 60 is the paper's constant: large
# enough that agreeing retrievers outweigh a single first place, and robust across corpora.
RRF_K = 60
CANDIDATES = 50  # passages each retriever ranks before fusion
DENSE_ONLY_TOP = 10  # a passage BM25 did not find must be this near by cosine to count
BM25_FLOOR = 0.25  # of the best BM25 score: weaker keyword matches are noise, left out
MAX_PASSAGES = 6
FIRST_TOKENS = 1_500  # the most team knowledge may take of the first prompt
FEEDBACK_TOKENS = 600  # ... and of each feedback message (new passages only)
MAX_QUERY_TERMS = 64
_PASSAGE_OVERHEAD = 16  # tokens of the wrapper lines around one passage (context.py)
_WORD = re.compile(r"[^\W\d_]\w+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_FAILURE_LINE = re.compile(r"^E\s|Error\b|Exception\b|assert|FAILED|Warning\b")
_STOPWORDS = frozenset(
    re.split(
        r"\s+",
        """a about above after again all also an and any are as at be
        because been before being below between both but by can could did do does
        doing down during each few for from further had has have having he her
        here hers how i if in into is it its itself just me more
        most my no nor not now of off on once only or other our
        out over own same she so some such than that the their them then
        there these they this those through to too under until up very was we
        were what when where which while who whom why will with would you your
        self cls none true false def return import py test tests line file files
        error errors assert assertion traceback failed failure expected got should must
        add adds new make makes write read create update change fix implement support allow
        get set use using used like one two three value values data code function method""",
    )
)


@dataclass(frozen=True)
class Passage:
    """A retrieved passage and why: its place in each ranking (None when absent from it),
    the BM25 score (higher is better), the cosine similarity, and the fused score."""

    source: str  # path:line (repo-relative, or after the operator source) or a comment URL
    heading: str
    text: str
    score: float
    origin: str = ""
    bm25_rank: int | None = None
    bm25: float | None = None
    dense_rank: int | None = None
    cosine: float | None = None


@dataclass(frozen=True)
class RepoAt:
    """The target repository: a git work tree and the commit its knowledge is read at;
    `name` keys its documents in the index (the run's source path or URL)."""

    root: Path
    commit: str
    name: str


@dataclass(frozen=True)
class KnowledgeOptions:
    """Where the index lives, which sources to read, and the embeddings model (none: BM25
    alone). The endpoint is the run's OpenAI-compatible one."""

    config: KnowledgeConfig
    index_path: Path
    endpoint: ModelConfig = field(default_factory=ModelConfig)
    embeddings_model: str = ""

    @classmethod
    def of(cls, settings: Settings, env: Mapping[str, str] | None = None) -> KnowledgeOptions:
        env = os.environ if env is None else env
        path = env.get(INDEX_ENV) or default_index(env)
        model = env.get(EMBEDDINGS_ENV, "").strip()
        return cls(settings.knowledge, Path(path), settings.model, model)


def default_index(env: Mapping[str, str]) -> Path:
    """One index per user, `$XDG_CACHE_HOME/codebot/knowledge.sqlite` (else under
    `~/.cache`): `codebot learn`, `codebot knowledge search` and every run find the same one
    from anywhere, and its documents are keyed by their source, so repositories never mix."""
    cache = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(cache) / "codebot" / INDEX_NAME


@dataclass(frozen=True)
class EndpointEmbedder:
    """Embeddings from the OpenAI-compatible endpoint (codebot.llm.embed)."""

    endpoint: ModelConfig
    model: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return llm.embed(self.endpoint, self.model, texts)


@dataclass(frozen=True)
class Knowledge:
    """The index seen through one run's sources: `origins` are those it searches, `report`
    what updating them did, `notes` what the run should say (problems, the ranking used)."""

    index: Index
    origins: tuple[str, ...]
    report: SyncReport = field(default_factory=SyncReport)
    notes: tuple[str, ...] = ()

    @property
    def dense(self) -> bool:
        return self.index.has_vectors(self.origins)

    def close(self) -> None:
        self.index.close()


def open_index(path: Path | None, embedder: Embedder | None = None) -> tuple[Index, list[str]]:
    """The index at `path` (made when missing); one that cannot be opened is replaced by an
    index in memory for this run, with a note saying why."""
    if path is None:
        return Index(None, embedder), []
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return Index(path, embedder), []
    except (OSError, sqlite3.Error) as exc:
        fix = f"set {INDEX_ENV} to a writable file, or remove the damaged one"
        return Index(None, embedder), [warning(f"cannot open the index {path} ({exc})", fix)]


def index_for(options: KnowledgeOptions, path: Path | None = None) -> tuple[Index, list[str]]:
    """The index at `path` (default: the options'), embedding with the options' model."""
    return open_index(path or options.index_path, _embedder(options))


def _embedder(options: KnowledgeOptions) -> Embedder | None:
    model = options.embeddings_model
    return EndpointEmbedder(options.endpoint, model) if model else None


def prepare(
    options: KnowledgeOptions,
    repo: RepoAt | None = None,
    *,
    reviews_of: str | None = None,
    embedder: Embedder | None = None,
) -> Knowledge:
    """The run's knowledge, its index brought up to date first. Review memory (`codebot
    learn`) is searched for `reviews_of` (OWNER/REPO), or all of it when None."""
    sets, notes = _sources(options, repo)
    embedder = embedder or _embedder(options)
    stored = sets or options.index_path.exists()
    index, problems = open_index(options.index_path if stored else None, embedder)
    notes += problems
    report = SyncReport()
    for source in sets:
        report = _added(report, index.sync(source))
    reviews = [o for o in index.origins() if o.startswith("reviews:")]
    if reviews_of is not None:
        reviews = [o for o in reviews if o.lower() == f"reviews:{reviews_of}".lower()]
    origins = (*(s.origin for s in sets), *reviews)
    knowledge = Knowledge(index, origins, report)
    notes += report.warnings
    if index.count(origins):
        notes.append(_summary(knowledge, options))
    return Knowledge(index, origins, report, tuple(notes))


def for_run(options: KnowledgeOptions, root: Path, commit: str, source: str) -> Knowledge:
    """A run's knowledge: the repository's `knowledge:` paths at the base `commit` of the clone
    at `root`, the operator's directories and repositories, and review memory of the run's
    repository on GitHub only (`source`: its clone URL or local path)."""
    return prepare(options, RepoAt(root, commit, source), reviews_of=github_name(source))


def github_name(source: str) -> str:
    """OWNER/REPO on GitHub of a clone URL, or of a local repository's `origin` remote; ""
    (no review memory) when it is not on GitHub."""
    pattern = r"github\.com[:/]([\w.-]+/[\w.-]+?)(?:\.git)?/?$"
    found = re.search(pattern, source) or re.search(pattern, origin_url(source))
    return found[1] if found else ""


def _sources(options: KnowledgeOptions, repo: RepoAt | None) -> tuple[list[SourceSet], list[str]]:
    config, sets, notes = options.config, [], []
    found = []
    if repo is not None:
        found.append(repo_sources(repo.root, repo.commit, config.paths, f"repo:{repo.name}"))
    found += [dir_sources(d) for d in config.dirs]
    cache = options.index_path.parent / "knowledge-repos"
    found += [git_sources(entry, cache) for entry in config.repos]
    for source, problems in found:
        notes += problems
        if source is not None:
            sets.append(source)
    return sets, notes


def _summary(knowledge: Knowledge, options: KnowledgeOptions) -> str:
    r = knowledge.report
    counts = f"{r.indexed} document(s) indexed, {r.unchanged} unchanged, {r.removed} removed"
    if knowledge.dense:
        how = f"BM25 fused with embeddings of {options.embeddings_model} (RRF, k={RRF_K})"
    elif options.embeddings_model:
        how = f"BM25 alone (no embeddings of {options.embeddings_model} stored yet)"
    else:
        how = f"BM25 alone ({EMBEDDINGS_ENV} is not set)"
    return f"knowledge: {counts}; ranked by {how}"


def _added(a: SyncReport, b: SyncReport) -> SyncReport:
    return SyncReport(
        a.indexed + b.indexed,
        a.unchanged + b.unchanged,
        a.removed + b.removed,
        a.embedded + b.embedded,
        (*a.warnings, *b.warnings),
    )


def query_for(spec: TaskSpec, files: Sequence[str] = (), failures: str = "") -> str:
    """The retrieval query: the task's words, the names of the files being edited, and the
    telling lines of the current failures (pytest's `E` lines, errors, assertions)."""
    telling = [line for line in failures.splitlines() if _FAILURE_LINE.search(line)]
    failure = "\n".join(telling[:20]) if telling else failures[-1_500:]
    # In this order: `terms` keeps the first MAX_QUERY_TERMS, and a long issue body should
    # not crowd out the files and the failure.
    parts = [spec.title, *spec.files, *files, failure, *spec.acceptance, spec.description]
    return "\n".join(p for p in parts if p)


def terms(query: str) -> list[str]:
    """The query's search terms, in order of first use: words and the parts of identifiers
    (snake_case, camelCase, paths), lowercased, without stopwords or one-letter parts."""
    found: dict[str, None] = {}
    for word in _WORD.findall(query):
        parts = [p for piece in word.split("_") for p in _CAMEL.findall(piece)]
        for term in (word, *parts) if len(parts) > 1 else (word,):
            lowered = term.lower()
            if len(lowered) > 1 and lowered not in _STOPWORDS and not lowered.isdigit():
                found.setdefault(lowered, None)
    return list(found)[:MAX_QUERY_TERMS]


def rank(knowledge: Knowledge, query: str, limit: int = CANDIDATES) -> list[Passage]:
    """Passages for `query`, best first: BM25 alone, or fused with the embeddings' cosine
    ranking by reciprocal rank fusion. An embeddings failure here falls back to BM25."""
    words = terms(query)
    if not words or not knowledge.origins:
        return []
    match = " OR ".join(f'"{w}"' for w in words)
    keyword = knowledge.index.bm25(match, knowledge.origins, CANDIDATES)
    if keyword:
        floor = keyword[0][1] * BM25_FLOOR
        keyword = [(pid, score) for pid, score in keyword if score >= floor]
    dense = _dense(knowledge, query)
    by_bm25 = {pid: (n, score) for n, (pid, score) in enumerate(keyword, 1)}
    by_dense = {pid: (n, cos) for n, (pid, cos) in enumerate(dense, 1)}
    wanted = set(by_bm25) | {pid for pid, (n, _) in by_dense.items() if n <= DENSE_ONLY_TOP}
    rows = knowledge.index.rows(sorted(wanted)) if wanted else {}
    passages = [_passage(rows[pid], by_bm25.get(pid), by_dense.get(pid)) for pid in rows]
    passages.sort(key=lambda p: (-p.score, p.bm25_rank or CANDIDATES + 1, p.source))
    unique = {" ".join(p.text.split()): p for p in reversed(passages)}  # a copy says nothing new
    return sorted(unique.values(), key=passages.index)[:limit]


def _dense(knowledge: Knowledge, query: str) -> list[tuple[int, float]]:
    embedder = knowledge.index.embedder
    if embedder is None or not knowledge.dense:
        return []
    try:
        vector = embedder.embed([query[:8_000]])[0]
    except (ModelError, IndexError):
        return []
    return knowledge.index.dense(vector, knowledge.origins, CANDIDATES)


def _passage(
    row: Row, keyword: tuple[int, float] | None, dense: tuple[int, float] | None
) -> Passage:
    score = sum(1 / (RRF_K + r[0]) for r in (keyword, dense) if r is not None)
    return Passage(
        source=row.location,
        heading=row.heading,
        text=row.body,
        score=score,
        origin=row.origin,
        bm25_rank=keyword[0] if keyword else None,
        bm25=keyword[1] if keyword else None,
        dense_rank=dense[0] if dense else None,
        cosine=dense[1] if dense else None,
    )


def retrieve(
    knowledge: Knowledge,
    query: str,
    budget_tokens: int,
    *,
    skip: Collection[str] = (),
    limit: int = MAX_PASSAGES,
) -> tuple[Passage, ...]:
    """The best passages for `query` whose rendering (context.render_knowledge) fits in
    `budget_tokens`, at most `limit`; sources in `skip` (already shown) are left out."""
    chosen: list[Passage] = []
    left = budget_tokens
    for passage in rank(knowledge, query):
        if len(chosen) >= limit:
            break
        cost = passage_tokens(passage)
        if passage.source in skip or cost > left:
            continue
        chosen.append(passage)
        left -= cost
    return tuple(chosen)


@dataclass(frozen=True)
class Recall:
    """Retrieval for one run (codebot.protocols.Recall): the task's words joined by the files
    being edited and the current failures, within `budget_tokens` per prompt."""

    knowledge: Knowledge
    spec: TaskSpec
    budget_tokens: int = FEEDBACK_TOKENS

    def __call__(
        self, files: Sequence[str], failures: str, skip: Collection[str]
    ) -> tuple[Passage, ...]:
        if not self.knowledge.origins:
            return ()
        query = query_for(self.spec, files, failures)
        return retrieve(self.knowledge, query, self.budget_tokens, skip=skip)


def passage_tokens(passage: Passage) -> int:
    """About what one passage costs in the prompt, its wrapper lines included."""
    text = f"{passage.source} {passage.heading}\n{passage.text}"
    return estimate_tokens(text) + _PASSAGE_OVERHEAD


def grounding(passages: Sequence[Passage], iteration: int) -> tuple[GroundingPassage, ...]:
    """What the run record keeps of the passages shown at `iteration` (0: first prompt)."""
    return GroundingPassage.shown(passages, iteration)
