"""Team knowledge (codebot.knowledge): retrieval quality on a labelled set, indexing time and
retrieval latency.

Quality: benchmarks/knowledge/queries.json holds task-like queries, each labelled with the
passage of benchmarks/knowledge/corpus/ that states the rule it needs (a hit is a retrieved
passage of that file whose text holds the labelled phrase). The corpus is indexed together
with 200 generated documents about other things (tests/support/team_docs.py). Reported:
recall@1, recall@5 and MRR, for BM25 alone and for BM25 fused with embeddings by reciprocal
rank fusion (k=60).

Embeddings: with no endpoint here, the fused figures use a deterministic local stand-in,
the scripted OpenAI-compatible server of the tests (tests/support/model_server.py) answering
POST /v1/embeddings with `hashed_embedding`: words and character trigrams feature-hashed
into 256 dimensions. The request goes through codebot.llm.embed and the SDK like a real one,
but the vectors know no synonyms; pass --embeddings-model (with OPENAI_BASE_URL and
OPENAI_API_KEY set) to measure a real model instead.

Speed: indexing --files generated Markdown files (first time, again with nothing changed,
after one file changed; with and without embeddings), and retrieval latency (median, p95)
over the labelled queries on that index.

    python benchmarks/knowledge.py [--files 1000] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codebot import knowledge as kn  # noqa: E402
from codebot.config import KnowledgeConfig, ModelConfig  # noqa: E402
from tests.support.model_server import ScriptedModelServer, hashed_embedding  # noqa: E402
from tests.support.team_docs import unrelated_docs  # noqa: E402

LABELLED = ROOT / "benchmarks" / "knowledge"
CORPUS = LABELLED / "corpus"
NOISE_DOCS = 200
STAND_IN = "hashed-trigram-256 (scripted server)"


def write_docs(directory: Path, docs: dict[str, str]) -> None:
    for path, text in docs.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(text, encoding="utf-8")


@contextmanager
def embeddings(model: str | None) -> Iterator[tuple[ModelConfig, str, str]]:
    """(endpoint, model name, what it is): a real endpoint when --embeddings-model is given,
    else the scripted server with the hashed stand-in."""
    if model:
        endpoint = ModelConfig(
            base_url=os.environ.get("OPENAI_BASE_URL", ""),
            api_key=os.environ.get("OPENAI_API_KEY", ""),
        )
        yield endpoint, model, model
        return
    with ScriptedModelServer(embed=hashed_embedding) as server:
        yield ModelConfig(base_url=server.base_url, max_retries=0), "hashed-256", STAND_IN


def hit(passage: kn.Passage, expected: list[dict[str, str]]) -> bool:
    text = " ".join(passage.text.split())
    return any(
        passage.source.startswith(f"{CORPUS}/{e['path']}:") and e["contains"] in text
        for e in expected
    )


def cosine_only(found: kn.Knowledge, query: str) -> list[kn.Passage]:
    """The embeddings' own ranking, without BM25 (a diagnostic of the embeddings used)."""
    embedder = found.index.embedder
    assert embedder is not None
    near = found.index.dense(embedder.embed([query])[0], found.origins, 10)
    rows = found.index.rows([pid for pid, _ in near])
    return [kn.Passage(rows[pid].location, rows[pid].heading, rows[pid].body, c) for pid, c in near]


def quality(
    found: kn.Knowledge, queries: list[dict[str, Any]], dense_only: bool = False
) -> dict[str, Any]:
    ranks: list[int | None] = []
    for item in queries:
        query = item["query"]
        ranked = cosine_only(found, query) if dense_only else kn.rank(found, query, 10)
        ranks.append(next((n for n, p in enumerate(ranked, 1) if hit(p, item["expected"])), None))
    total = len(queries)
    return {
        "recall_at_1": sum(r == 1 for r in ranks) / total,
        "recall_at_5": sum(r is not None and r <= 5 for r in ranks) / total,
        "mrr": sum(1 / r for r in ranks if r) / total,
        "missed_at_5": [q["query"] for q, r in zip(queries, ranks, strict=True) if not r or r > 5],
    }


def timed_prepare(options: kn.KnowledgeOptions) -> tuple[kn.Knowledge, float]:
    t0 = time.perf_counter()
    found = kn.prepare(options)
    return found, time.perf_counter() - t0


def indexing(work: Path, files: int, endpoint: ModelConfig, model: str) -> dict[str, Any]:
    """Index `files` generated documents: first, unchanged, one changed; then with vectors."""
    docs = work / "generated"
    write_docs(docs, unrelated_docs(files))
    config = KnowledgeConfig(dirs=(str(docs),))
    plain = kn.KnowledgeOptions(config, work / "bm25.sqlite")
    first, first_s = timed_prepare(plain)
    _, unchanged_s = timed_prepare(plain)
    one = sorted(docs.rglob("*.md"))[0]
    one.write_text(one.read_text() + "\n## Added\n\nA new paragraph.\n")
    touched, touched_s = timed_prepare(plain)
    fused = kn.KnowledgeOptions(config, work / "fused.sqlite", endpoint, model)
    embedded, embedded_s = timed_prepare(fused)
    return {
        "files": files,
        "passages": first.index.count(first.origins),
        "bm25_first_s": round(first_s, 3),
        "bm25_unchanged_s": round(unchanged_s, 3),
        "bm25_one_changed_s": round(touched_s, 3),
        "one_changed_reindexed": touched.report.indexed,
        "fused_first_s": round(embedded_s, 3),
        "fused_passages_embedded": embedded.report.embedded,
    }


def latency(
    found: kn.Knowledge, queries: list[dict[str, Any]], rounds: int = 5
) -> dict[str, float]:
    times = []
    for _ in range(rounds):
        for item in queries:
            t0 = time.perf_counter()
            kn.retrieve(found, item["query"], 1_500)
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        "queries": len(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--embeddings-model", help="a real embeddings model at OPENAI_BASE_URL")
    args = parser.parse_args()
    queries = json.loads((LABELLED / "queries.json").read_text(encoding="utf-8"))["queries"]
    with tempfile.TemporaryDirectory() as tmp, embeddings(args.embeddings_model) as emb:
        work = Path(tmp)
        endpoint, model, what = emb
        write_docs(work / "noise", unrelated_docs(NOISE_DOCS))
        config = KnowledgeConfig(dirs=(str(CORPUS), str(work / "noise")))
        bm25 = kn.prepare(kn.KnowledgeOptions(config, work / "q-bm25.sqlite"))
        fused = kn.prepare(kn.KnowledgeOptions(config, work / "q-fused.sqlite", endpoint, model))
        speed = indexing(work, args.files, endpoint, model)
        big = KnowledgeConfig(dirs=(str(CORPUS), str(work / "generated")))
        big_bm25 = kn.prepare(kn.KnowledgeOptions(big, work / "bm25.sqlite"))
        big_fused = kn.prepare(kn.KnowledgeOptions(big, work / "fused.sqlite", endpoint, model))
        results = {
            "labelled_queries": len(queries),
            "noise_documents": NOISE_DOCS,
            "embeddings": what,
            "rrf_k": kn.RRF_K,
            "bm25": quality(bm25, queries),
            "fused": quality(fused, queries),
            "embeddings_alone": quality(fused, queries, dense_only=True),
            "indexing": speed,
            "latency_bm25": latency(big_bm25, queries),
            "latency_fused": latency(big_fused, queries),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        }
    write(results, args.out)


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "knowledge.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "knowledge.md").write_text(render(results), encoding="utf-8")
    print(render(results))


def render(r: dict[str, Any]) -> str:
    q, f, s = r["bm25"], r["fused"], r["indexing"]
    lb, lf = r["latency_bm25"], r["latency_fused"]
    fused = f"BM25 + embeddings (RRF, k={r['rrf_k']})"
    missed = [f"- BM25 alone: {m}" for m in q["missed_at_5"]]
    missed += [f"- fused: {m}" for m in f["missed_at_5"]]
    alone = ("embeddings alone (diagnostic)", r["embeddings_alone"])
    lines = [
        "# Team knowledge: retrieval quality and speed",
        "",
        f"`python benchmarks/knowledge.py` on {r['machine']}.",
        "",
        f"## Quality ({r['labelled_queries']} labelled queries among "
        f"{r['noise_documents']} unrelated documents)",
        "",
        f"Embeddings: {r['embeddings']}.",
        "",
        "| ranking | recall@1 | recall@5 | MRR |",
        "| --- | --- | --- | --- |",
        *(f"| {name} | {m['recall_at_1']:.2f} | {m['recall_at_5']:.2f} | {m['mrr']:.2f} |"
          for name, m in (("BM25 alone", q), (fused, f), alone)),
        "",
        "Missed at 5:" + ("" if missed else " none"),
        *missed,
        "",
        f"## Indexing {s['files']:,} generated Markdown files ({s['passages']:,} passages)",
        "",
        "| step | time |",
        "| --- | --- |",
        f"| first index, BM25 | {s['bm25_first_s']:.2f} s |",
        f"| again, nothing changed | {s['bm25_unchanged_s']:.2f} s |",
        f"| again, one file changed ({s['one_changed_reindexed']} re-indexed) "
        f"| {s['bm25_one_changed_s']:.2f} s |",
        f"| first index with embeddings ({s['fused_passages_embedded']:,} distinct passage "
        f"texts embedded) | {s['fused_first_s']:.2f} s |",
        "",
        "## Retrieval latency on that index (plus the labelled corpus)",
        "",
        "| ranking | median | p95 |",
        "| --- | --- | --- |",
        f"| BM25 alone | {lb['median_ms']:.1f} ms | {lb['p95_ms']:.1f} ms |",
        f"| {fused}, query embedded over HTTP | {lf['median_ms']:.1f} ms "
        f"| {lf['p95_ms']:.1f} ms |",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
