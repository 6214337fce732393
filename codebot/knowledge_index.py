"""The knowledge index on disk: one SQLite file holding passages, their FTS5 index (BM25)
and, when an embeddings model is configured, their vectors.

Updated one source set at a time and incrementally: a document whose stamp is unchanged is
not read, one whose text hashes the same is not split again, and a vector is computed once
per passage text and model (a document edited in one paragraph re-embeds that paragraph).
SQLite's own locking lets parallel runs (codebot batch) share the file.
"""

from __future__ import annotations

import hashlib
import math
import operator
import sqlite3
import threading
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from codebot.errors import ModelError
from codebot.knowledge_sources import SourceFile, SourceSet, warning
from codebot.knowledge_split import Chunk, heading_text, split

SCHEMA_VERSION = "1"
EMBED_BATCH = 64  # passages per embeddings request
# Heading matches count twice a body match: a section titled "Money" is about money.
BM25_WEIGHTS = (2.0, 1.0)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
    id INTEGER PRIMARY KEY, origin TEXT NOT NULL, path TEXT NOT NULL,
    stamp TEXT NOT NULL, hash TEXT NOT NULL, UNIQUE(origin, path));
CREATE TABLE IF NOT EXISTS passages(
    id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL, location TEXT NOT NULL,
    heading TEXT NOT NULL, body TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS passages_by_source ON passages(source_id);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts
    USING fts5(heading, body, tokenize='porter unicode61');
CREATE TABLE IF NOT EXISTS vectors(
    hash TEXT NOT NULL, model TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY(hash, model));
"""


class Embedder(Protocol):
    """Texts to vectors (codebot.knowledge.EndpointEmbedder over llm.embed in a run)."""

    @property
    def model(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order. Raises ModelError."""
        ...


@dataclass(frozen=True)
class Row:
    """A stored passage."""

    id: int
    origin: str
    location: str
    heading: str
    body: str


@dataclass(frozen=True)
class SyncReport:
    """What one update did: documents (re)indexed, left as they were, removed; passages
    embedded; and the problems met, one line each."""

    indexed: int = 0
    unchanged: int = 0
    removed: int = 0
    embedded: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Parsed:
    file: SourceFile
    hash: str
    chunks: tuple[Chunk, ...]


class Index:
    """The open index. `path` None keeps it in memory (nothing configured, or the file could
    not be opened). Safe to share between threads."""

    def __init__(self, path: Path | None, embedder: Embedder | None = None) -> None:
        self.path = path
        self.embedder = embedder
        self._lock = threading.Lock()
        self._vectors: tuple[str, list[tuple[int, str, array[float]]]] | None = None
        target = str(path) if path is not None else ":memory:"
        self._db = sqlite3.connect(
            target, timeout=60, check_same_thread=False, isolation_level=None
        )
        if path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
        with self._writing():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))

    def close(self) -> None:
        self._db.close()

    def sync(self, sources: SourceSet) -> SyncReport:
        """Bring `sources` up to date; documents read and split before the write, so the
        file is locked only while the passages change."""
        known = {
            path: (sid, stamp, digest)
            for sid, path, stamp, digest in self._read(
                "SELECT id, path, stamp, hash FROM sources WHERE origin=?", [sources.origin]
            )
        }
        keep, restamp, parsed, problems = set(), [], [], []
        for file in sources.files:
            keep.add(file.path)
            old = known.get(file.path)
            if old is not None and file.stamp and old[1] == file.stamp:
                continue
            try:
                text = file.read()
                digest = _hash(file.kind, file.heading, text)
                if old is not None and old[2] == digest:
                    restamp.append((file.stamp, old[0]))
                    continue
                chunks = _chunks(file, text)
            except (OSError, ValueError) as exc:
                keep.discard(file.path)
                problems.append(_unreadable(sources, file.path, exc))
                continue
            parsed.append(_Parsed(file, digest, chunks))
        pruned = [v[0] for p, v in known.items() if p not in keep] if sources.prune else []
        replaced = [known[p.file.path][0] for p in parsed if p.file.path in known]
        with self._writing():
            self._db.executemany("UPDATE sources SET stamp=? WHERE id=?", restamp)
            self._remove([*pruned, *replaced])
            for item in parsed:
                self._insert(sources, item)
        unchanged = len(sources.files) - len(parsed) - len(problems)
        report = SyncReport(len(parsed), unchanged, len(pruned), 0, tuple(problems))
        return self._embed_missing(sources.origin, report)

    def origins(self) -> list[str]:
        return [o for (o,) in self._read("SELECT DISTINCT origin FROM sources ORDER BY 1")]

    def count(self, origins: Sequence[str]) -> int:
        """Passages in `origins`."""
        sql = "SELECT count(*) FROM passages p JOIN sources s ON s.id=p.source_id "
        sql += _within(origins)
        return int(self._read(sql, list(origins))[0][0])

    def bm25(self, match: str, origins: Sequence[str], limit: int) -> list[tuple[int, float]]:
        """(passage id, BM25 score, higher is better) for an FTS5 `match` expression."""
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        sql = (
            f"SELECT f.rowid, -bm25(passages_fts, {weights}) AS score FROM passages_fts f "
            "JOIN passages p ON p.id=f.rowid JOIN sources s ON s.id=p.source_id "
            f"WHERE passages_fts MATCH ? {_within(origins, 'AND')} ORDER BY score DESC LIMIT ?"
        )
        return [(int(i), float(s)) for i, s in self._read(sql, [match, *origins, limit])]

    def dense(
        self, vector: Sequence[float], origins: Sequence[str], limit: int
    ) -> list[tuple[int, float]]:
        """(passage id, cosine similarity) of the `limit` nearest passages in `origins`."""
        query = _normalised(vector)
        wanted = set(origins)
        scored = [
            (pid, sum(map(operator.mul, query, vec)))
            for pid, origin, vec in self._stored_vectors()
            if origin in wanted and len(vec) == len(query)
        ]
        scored.sort(key=lambda item: -item[1])
        return scored[:limit]

    def has_vectors(self, origins: Sequence[str]) -> bool:
        return self.embedder is not None and any(
            o in set(origins) for _, o, _ in self._stored_vectors()
        )

    def rows(self, ids: Sequence[int]) -> dict[int, Row]:
        marks = ", ".join("?" * len(ids))
        sql = (
            "SELECT p.id, s.origin, p.location, p.heading, p.body FROM passages p "
            f"JOIN sources s ON s.id=p.source_id WHERE p.id IN ({marks})"
        )
        return {r[0]: Row(*r) for r in self._read(sql, list(ids))}

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, list(params)).fetchall()

    # --- writing ---------------------------------------------------------------------------
    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): no deadlock between two
        processes that both read first."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            self._vectors = None

    def _remove(self, source_ids: Sequence[int]) -> None:
        for sid in source_ids:
            self._db.execute(
                "DELETE FROM passages_fts WHERE rowid IN "
                "(SELECT id FROM passages WHERE source_id=?)",
                (sid,),
            )
            self._db.execute("DELETE FROM passages WHERE source_id=?", (sid,))
            self._db.execute("DELETE FROM sources WHERE id=?", (sid,))

    def _insert(self, sources: SourceSet, item: _Parsed) -> None:
        file = item.file
        cursor = self._db.execute(
            "INSERT INTO sources(origin, path, stamp, hash) VALUES(?, ?, ?, ?)",
            (sources.origin, file.path, file.stamp, item.hash),
        )
        sid = cursor.lastrowid
        for chunk in item.chunks:
            heading = file.heading or heading_text(chunk.heading)
            where = _location(sources.label, file, chunk.line)
            digest = _hash("passage", heading, chunk.text)
            cursor = self._db.execute(
                "INSERT INTO passages(source_id, location, heading, body, hash) "
                "VALUES(?, ?, ?, ?, ?)",
                (sid, where, heading, chunk.text, digest),
            )
            self._db.execute(
                "INSERT INTO passages_fts(rowid, heading, body) VALUES(?, ?, ?)",
                (cursor.lastrowid, heading, chunk.text),
            )

    def _embed_missing(self, origin: str, report: SyncReport) -> SyncReport:
        """Vectors for the passages of `origin` that have none for the model yet (new ones,
        or those an unreachable endpoint left without); unused vectors are dropped."""
        if self.embedder is None:
            return report
        model = self.embedder.model
        todo = self._read(
            "SELECT DISTINCT p.hash, p.heading, p.body FROM passages p "
            "JOIN sources s ON s.id=p.source_id WHERE s.origin=? AND NOT EXISTS "
            "(SELECT 1 FROM vectors v WHERE v.hash=p.hash AND v.model=?)",
            [origin, model],
        )
        done = 0
        try:
            for start in range(0, len(todo), EMBED_BATCH):
                batch = todo[start : start + EMBED_BATCH]
                vectors = self.embedder.embed([f"{h}\n{b}" if h else b for _, h, b in batch])
                rows = [(d, model, _blob(v)) for (d, _, _), v in zip(batch, vectors, strict=True)]
                with self._writing():
                    self._db.executemany("INSERT OR REPLACE INTO vectors VALUES(?, ?, ?)", rows)
                done += len(rows)
        except ModelError as exc:
            fix = "check CODEBOT_EMBEDDINGS_MODEL and the endpoint; BM25 ranks alone meanwhile"
            said = warning(f"embeddings failed after {done} passage(s) ({exc.cause})", fix)
            return _with(report, done, said)
        with self._writing():
            self._db.execute("DELETE FROM vectors WHERE hash NOT IN (SELECT hash FROM passages)")
        return _with(report, done)

    def _stored_vectors(self) -> list[tuple[int, str, array[float]]]:
        """Every passage vector of the embedder's model, read once and kept until a write."""
        model = self.embedder.model if self.embedder is not None else ""
        if self._vectors is None or self._vectors[0] != model:
            sql = (
                "SELECT p.id, s.origin, v.vector FROM passages p "
                "JOIN sources s ON s.id=p.source_id JOIN vectors v ON v.hash=p.hash "
                "WHERE v.model=?"
            )
            loaded = [(i, o, _vector(b)) for i, o, b in self._read(sql, [model])]
            self._vectors = (model, loaded)
        return self._vectors[1]


def _within(origins: Sequence[str], join: str = "WHERE") -> str:
    return f"{join} s.origin IN ({', '.join('?' * len(origins))})"


def _chunks(file: SourceFile, text: str) -> tuple[Chunk, ...]:
    if file.kind == "note":
        return (Chunk((), text.strip(), 0),) if text.strip() else ()
    return split(file.kind, text)


def _location(label: str, file: SourceFile, line: int) -> str:
    """How a passage's source is shown: a note's URL, else path:line (after the label)."""
    if file.kind == "note":
        return file.path
    where = f"{file.path}:{line}"
    return f"{label}/{where}" if label else where


def _unreadable(sources: SourceSet, path: str, exc: Exception) -> str:
    shown = f"{sources.label}/{path}" if sources.label else path
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return warning(
        f"cannot read {shown} ({reason})", f"fix the file or leave it out of {sources.named_by}"
    )


def _hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()[:32]


def _normalised(vector: Sequence[float]) -> array[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return array("f", (x / norm for x in vector))


def _blob(vector: Sequence[float]) -> bytes:
    return _normalised(vector).tobytes()


def _vector(data: bytes) -> array[float]:
    out = array("f")
    out.frombytes(data)
    return out


def _with(report: SyncReport, embedded: int, problem: str = "") -> SyncReport:
    extra = (problem,) if problem else ()
    return SyncReport(
        report.indexed, report.unchanged, report.removed, embedded, (*report.warnings, *extra)
    )
