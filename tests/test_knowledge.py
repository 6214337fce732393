"""Team knowledge: sources read at the base commit and from the operator, an incremental
SQLite FTS5 index, BM25 retrieval fused with embeddings, all on real git repositories and
the scripted OpenAI-compatible server."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codebot import config as cfg
from codebot import knowledge as kn
from codebot.config import KnowledgeConfig, ModelConfig
from codebot.errors import ConfigError
from codebot.knowledge_index import Index
from codebot.knowledge_sources import SourceFile, SourceSet
from codebot.spec import TaskSpec
from tests.support.git_repos import git, make_repo
from tests.support.model_server import ScriptedModelServer, hashed_embedding
from tests.support.team_docs import CONVENTIONS, unrelated_docs

KNOWLEDGE = ["docs/**/*.md", "adr/", "CONTRIBUTING.md"]
DISCOUNT = TaskSpec(
    title="Apply a percentage discount to an order",
    description="Add `apply_discount(order, percent)` to shop/pricing.py: it returns the "
    "order total reduced by the given percentage.",
    test="python -m pytest -q",
    files=("shop/pricing.py",),
)
FAILURE = "E       assert apply_discount(Order([19.99]), 10) == 17.99\nE       NameError"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A repository whose conventions say money is Decimal, among forty other documents."""
    files = {
        "docs/conventions.md": CONVENTIONS,
        **unrelated_docs(40),
        "adr/0001-record-decisions.md": "# Record decisions\n\nWe write ADRs for choices.\n",
        "CONTRIBUTING.md": "# Contributing\n\nOpen a pull request against main.\n",
        "shop/pricing.py": "class Order:\n    lines: list[str]\n",
        "README.md": "# Shop\n\nPrices are floats here, says the old README.\n",
    }
    return make_repo(tmp_path / "shop", files)


def options(tmp_path: Path, **config: tuple[str, ...]) -> kn.KnowledgeOptions:
    knowledge = KnowledgeConfig(**{"paths": tuple(KNOWLEDGE), **config})
    return kn.KnowledgeOptions(knowledge, tmp_path / "index" / "knowledge.sqlite")


def prepare(tmp_path: Path, repo: Path) -> kn.Knowledge:
    return kn.prepare(options(tmp_path), kn.RepoAt(repo, "HEAD", str(repo)))


def commit(repo: Path, message: str = "change") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


# --- retrieval -------------------------------------------------------------------------------
def test_the_money_rule_is_the_top_passage_for_a_discount_task(shop: Path, tmp_path: Path) -> None:
    found = prepare(tmp_path, shop)
    query = kn.query_for(DISCOUNT, ["shop/pricing.py"], FAILURE)

    passages = kn.retrieve(found, query, budget_tokens=1_500)

    assert passages[0].heading == "Conventions › Money"
    assert "never\n`float`" in passages[0].text
    assert passages[0].source == "docs/conventions.md:12"


def test_documents_outside_the_knowledge_globs_are_not_indexed(shop: Path, tmp_path: Path) -> None:
    found = prepare(tmp_path, shop)

    sources = {p.source.split(":")[0] for p in kn.rank(found, "prices floats README old")}

    assert "README.md" not in sources
    assert found.report.indexed == 43  # conventions, 40 docs, the ADR, CONTRIBUTING.md


def test_retrieval_keeps_to_the_token_budget_and_skips_what_was_shown(
    shop: Path, tmp_path: Path
) -> None:
    found = prepare(tmp_path, shop)
    query = kn.query_for(DISCOUNT, ["shop/pricing.py"], FAILURE)
    first = kn.retrieve(found, query, budget_tokens=1_500)

    tight = kn.retrieve(found, query, budget_tokens=kn.passage_tokens(first[0]))
    later = kn.retrieve(found, query, 1_500, skip={first[0].source})

    assert 1 < len(first) <= kn.MAX_PASSAGES
    assert sum(kn.passage_tokens(p) for p in first) <= 1_500
    assert tight == first[:1]
    assert first[0].source not in {p.source for p in later}


def test_the_query_holds_the_task_the_files_and_the_failing_lines() -> None:
    query = kn.query_for(DISCOUNT, ["shop/order_totals.py"], "collected 3 items\n" + FAILURE)

    words = kn.terms(query)

    assert {"percentage", "discount", "order", "totals", "pricing", "nameerror"} <= set(words)
    assert "collected" not in words  # not a telling line of the failure
    assert "the" not in words and "py" not in words


def test_identifiers_are_searched_whole_and_by_their_parts() -> None:
    assert kn.terms("applyDiscount order_total") == [
        "applydiscount", "apply", "discount", "order_total", "order", "total",
    ]  # fmt: skip


def test_nothing_configured_leaves_no_index_file_and_finds_nothing(tmp_path: Path) -> None:
    found = kn.prepare(kn.KnowledgeOptions(KnowledgeConfig(), tmp_path / "k.sqlite"))

    assert kn.retrieve(found, "money decimal", 1_000) == ()
    assert found.notes == ()
    assert not (tmp_path / "k.sqlite").exists()


def test_a_run_without_embeddings_says_it_ranks_by_bm25_alone(shop: Path, tmp_path: Path) -> None:
    found = prepare(tmp_path, shop)

    assert found.notes == (
        "knowledge: 43 document(s) indexed, 0 unchanged, 0 removed; "
        "ranked by BM25 alone (CODEBOT_EMBEDDINGS_MODEL is not set)",
    )


# --- incremental indexing --------------------------------------------------------------------
def test_touching_one_doc_reindexes_only_that_doc(shop: Path, tmp_path: Path) -> None:
    prepare(tmp_path, shop)
    doc = shop / "docs/conventions.md"
    doc.write_text(CONVENTIONS + "\n## Errors\n\nRaise domain errors, never bare Exception.\n")
    commit(shop)

    again = prepare(tmp_path, shop)

    assert (again.report.indexed, again.report.unchanged, again.report.removed) == (1, 42, 0)
    assert kn.rank(again, "domain errors bare Exception")[0].heading == "Conventions › Errors"


def test_a_deleted_doc_disappears_from_the_index(shop: Path, tmp_path: Path) -> None:
    prepare(tmp_path, shop)
    git(shop, "rm", "-q", "docs/conventions.md")
    commit(shop)

    again = prepare(tmp_path, shop)

    assert again.report.removed == 1
    assert all("conventions" not in p.source for p in kn.rank(again, "money decimal float"))


def test_an_unchanged_document_is_never_read_again(tmp_path: Path) -> None:
    reads: list[str] = []

    def doc(path: str, stamp: str, text: str) -> SourceFile:
        return SourceFile(path, stamp, lambda: reads.append(path) or text, "markdown")

    index = Index(tmp_path / "k.sqlite")
    index.sync(SourceSet("dir:/x", "/x", "test", (doc("a.md", "1", "a"), doc("b.md", "1", "b"))))
    reads.clear()

    report = index.sync(
        SourceSet("dir:/x", "/x", "test", (doc("a.md", "1", "a"), doc("b.md", "2", "b")))
    )

    assert reads == ["b.md"]  # a.md's stamp is unchanged: not read
    assert (report.indexed, report.unchanged) == (0, 2)  # b.md read, same text: not split


# --- sources and their problems --------------------------------------------------------------
def test_operator_directories_add_sources_shown_by_their_path(shop: Path, tmp_path: Path) -> None:
    handbook = tmp_path / "handbook"
    (handbook / "guides").mkdir(parents=True)
    (handbook / "guides" / "style.rst").write_text(
        "Style\n=====\n\nQueues\n------\n\nBackground jobs are idempotent and retried.\n"
    )
    settings = options(tmp_path, dirs=(str(handbook),))

    found = kn.prepare(settings, kn.RepoAt(shop, "HEAD", str(shop)))
    top = kn.rank(found, "background jobs idempotent")[0]

    assert top.source == f"{handbook}/guides/style.rst:7"
    assert top.heading == "Style › Queues"


def test_operator_git_repositories_are_fetched_at_their_ref(tmp_path: Path) -> None:
    handbook = make_repo(tmp_path / "handbook", {"rules.md": "# Rules\n\nShip small changes.\n"})
    git(handbook, "checkout", "-qb", "v2")
    (handbook / "rules.md").write_text("# Rules\n\nShip small, reviewed changes.\n")
    commit(handbook)
    settings = kn.KnowledgeOptions(
        KnowledgeConfig(repos=(f"{handbook}@main",)), tmp_path / "k.sqlite"
    )

    found = kn.prepare(settings)

    (top,) = kn.rank(found, "ship changes")
    assert (top.source, top.text) == (f"{handbook}@main/rules.md:3", "Ship small changes.")
    assert git(handbook, "status", "--porcelain") == ""  # the source is only read


@pytest.mark.parametrize(
    ("config", "cause", "fix"),
    [
        (
            {"paths": ("docs/missing/",)},
            "`docs/missing/` in .codebot.yml `knowledge:` matches no file at the base commit",
            "fix the path (relative to the repository root) or remove it from `knowledge:`",
        ),
        (
            {"dirs": ("/nonexistent/handbook",)},
            "/nonexistent/handbook (in CODEBOT_KNOWLEDGE_DIRS) is not a directory",
            "fix the path or remove it from CODEBOT_KNOWLEDGE_DIRS",
        ),
        (
            {"repos": ("/nonexistent/handbook.git@main",)},
            "cannot fetch /nonexistent/handbook.git@main (",
            "check the URL, the ref and the network, or remove it from CODEBOT_KNOWLEDGE_REPOS",
        ),
    ],
    ids=["missing-path", "missing-dir", "unreachable-repo"],
)
def test_a_bad_source_is_a_one_line_warning_and_the_rest_is_used(
    shop: Path, tmp_path: Path, config: dict[str, tuple[str, ...]], cause: str, fix: str
) -> None:
    paths = (*KNOWLEDGE, *config.pop("paths", ()))
    settings = kn.KnowledgeOptions(KnowledgeConfig(paths, **config), tmp_path / "k.sqlite")

    found = kn.prepare(settings, kn.RepoAt(shop, "HEAD", str(shop)))

    (problem,) = [n for n in found.notes if "ranked by" not in n]
    assert problem.startswith(f"knowledge: {cause}") and problem.endswith(f" — {fix}")
    assert "\n" not in problem
    assert kn.rank(found, "money decimal")[0].heading == "Conventions › Money"


def test_an_unreadable_document_is_left_out_with_a_warning(tmp_path: Path) -> None:
    handbook = tmp_path / "handbook"
    handbook.mkdir()
    (handbook / "diagram.md").write_bytes(b"\x89PNG\0\0binary")
    (handbook / "broken.py").write_text("def f(:\n")
    (handbook / "ok.md").write_text("# Ok\n\nReadable rule.\n")
    settings = kn.KnowledgeOptions(KnowledgeConfig(dirs=(str(handbook),)), tmp_path / "k.sqlite")

    found = kn.prepare(settings)

    assert found.notes[:2] == (
        f"knowledge: cannot read {handbook}/broken.py (not valid Python (line 1: "
        "invalid syntax)) — fix the file or leave it out of CODEBOT_KNOWLEDGE_DIRS",
        f"knowledge: cannot read {handbook}/diagram.md (binary, not text) — fix the file or "
        "leave it out of CODEBOT_KNOWLEDGE_DIRS",
    )
    assert [p.source for p in kn.rank(found, "readable rule")] == [f"{handbook}/ok.md:3"]


def test_an_index_that_cannot_be_opened_is_kept_in_memory_for_the_run(
    shop: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    settings = kn.KnowledgeOptions(KnowledgeConfig(tuple(KNOWLEDGE)), blocked / "k.sqlite")

    found = kn.prepare(settings, kn.RepoAt(shop, "HEAD", str(shop)))

    assert found.notes[0].startswith(f"knowledge: cannot open the index {blocked}/k.sqlite (")
    assert kn.rank(found, "money decimal")[0].heading == "Conventions › Money"


# --- configuration ---------------------------------------------------------------------------
def test_the_repository_names_its_knowledge_and_the_operator_adds_more() -> None:
    env = {"CODEBOT_KNOWLEDGE_DIRS": "/srv/handbook:/srv/adr", "CODEBOT_KNOWLEDGE_REPOS":
           "https://git.example.com/team/guides.git@main, /srv/more.git"}  # fmt: skip
    settings = cfg.with_repo_file(cfg.from_env(env), "knowledge: [docs/**/*.md, adr/]\n")

    assert settings.knowledge == KnowledgeConfig(
        paths=("docs/**/*.md", "adr/"),
        dirs=("/srv/handbook", "/srv/adr"),
        repos=("https://git.example.com/team/guides.git@main", "/srv/more.git"),
    )


@pytest.mark.parametrize(
    "text",
    ["knowledge: docs/\n", "knowledge: [/etc/passwd]\n", "knowledge: [../other/docs]\n"],
    ids=["not-a-list", "absolute", "outside"],
)
def test_the_repository_cannot_name_knowledge_outside_itself(text: str) -> None:
    with pytest.raises(ConfigError, match="`knowledge`"):
        cfg.with_repo_file(cfg.Settings(), text)


def test_the_repository_cannot_set_the_operators_sources() -> None:
    with pytest.raises(ConfigError, match="unknown or not allowed key `knowledge_dirs`"):
        cfg.with_repo_file(cfg.Settings(), "knowledge_dirs: [/etc]\n")


def test_the_index_is_the_users_unless_set(tmp_path: Path) -> None:
    settings = cfg.with_flags(cfg.Settings(), runs_dir=tmp_path / ".codebot" / "runs")

    default = kn.KnowledgeOptions.of(settings, {"HOME": str(tmp_path)})
    xdg = kn.KnowledgeOptions.of(settings, {"XDG_CACHE_HOME": "/var/cache/u"})
    chosen = kn.KnowledgeOptions.of(settings, {"CODEBOT_KNOWLEDGE_INDEX": "/srv/k.sqlite"})

    assert default.index_path == tmp_path / ".cache" / "codebot" / "knowledge.sqlite"
    assert xdg.index_path == Path("/var/cache/u/codebot/knowledge.sqlite")
    assert chosen.index_path == Path("/srv/k.sqlite")


# --- embeddings ------------------------------------------------------------------------------
def embedded_options(tmp_path: Path, server: ScriptedModelServer) -> kn.KnowledgeOptions:
    endpoint = ModelConfig(base_url=server.base_url, api_key="k", max_retries=0, timeout_s=10)
    return kn.KnowledgeOptions(
        KnowledgeConfig(tuple(KNOWLEDGE)), tmp_path / "k.sqlite", endpoint, "embed-test"
    )


def test_passages_are_embedded_once_and_the_run_says_it_fuses_rankings(
    shop: Path, tmp_path: Path, model_server: ScriptedModelServer
) -> None:
    model_server.embed = hashed_embedding
    settings = embedded_options(tmp_path, model_server)

    first = kn.prepare(settings, kn.RepoAt(shop, "HEAD", str(shop)))
    asked = len(model_server.embedded)
    again = kn.prepare(settings, kn.RepoAt(shop, "HEAD", str(shop)))

    assert first.report.embedded == asked > 40
    assert again.report.embedded == 0 and len(model_server.embedded) == asked
    assert first.notes[-1].endswith(
        "ranked by BM25 fused with embeddings of embed-test (RRF, k=60)"
    )
    top = kn.retrieve(again, kn.query_for(DISCOUNT, ["shop/pricing.py"], FAILURE), 1_500)[0]
    assert top.heading == "Conventions › Money"
    assert top.bm25_rank is not None and top.dense_rank is not None


def test_fusion_ranks_by_reciprocal_rank_over_both_rankings(
    tmp_path: Path, model_server: ScriptedModelServer
) -> None:
    # BM25 prefers "a" (it says "ledger" twice); the embeddings put "b" first and "a" third.
    near = {"a": [0.5, 1.0], "b": [1.0, 0.0], "c": [0.9, 0.3], "query": [1.0, 0.0]}
    model_server.embed = lambda text: near[text.split()[-1]]
    docs = {"a.md": "ledger ledger a", "b.md": "ledger entries b", "c.md": "unrelated c"}
    endpoint = ModelConfig(base_url=model_server.base_url, max_retries=0, timeout_s=10)
    index = Index(tmp_path / "k.sqlite", kn.EndpointEmbedder(endpoint, "m"))
    files = tuple(SourceFile(p, p, lambda t=t: t, "text") for p, t in docs.items())
    index.sync(SourceSet("dir:/d", "", "test", files))
    found = kn.Knowledge(index, ("dir:/d",))

    ranked = kn.rank(found, "ledger query")

    assert [(p.source, p.bm25_rank, p.dense_rank) for p in ranked] == [
        ("b.md:1", 2, 1), ("a.md:1", 1, 3), ("c.md:1", None, 2),
    ]  # fmt: skip
    assert ranked[0].score == pytest.approx(1 / (kn.RRF_K + 2) + 1 / (kn.RRF_K + 1))
    assert ranked[1].score == pytest.approx(1 / (kn.RRF_K + 1) + 1 / (kn.RRF_K + 3))


def test_an_unreachable_embeddings_endpoint_leaves_bm25_and_says_so(
    shop: Path, tmp_path: Path
) -> None:
    endpoint = ModelConfig(base_url="http://127.0.0.1:9/v1", max_retries=0, timeout_s=2)
    settings = kn.KnowledgeOptions(
        KnowledgeConfig(tuple(KNOWLEDGE)), tmp_path / "k.sqlite", endpoint, "embed-test"
    )

    found = kn.prepare(settings, kn.RepoAt(shop, "HEAD", str(shop)))

    assert found.notes[0].startswith("knowledge: embeddings failed after 0 passage(s) (")
    assert found.notes[-1].endswith("ranked by BM25 alone (no embeddings of embed-test stored yet)")
    assert kn.rank(found, "money decimal")[0].heading == "Conventions › Money"


def test_grounding_records_what_each_prompt_was_shown(shop: Path, tmp_path: Path) -> None:
    found = prepare(tmp_path, shop)
    shown = kn.retrieve(found, "money decimal float", 400)

    (first, *_) = kn.grounding(shown, iteration=2)

    assert (first.source, first.heading, first.iteration) == (
        "docs/conventions.md:12", "Conventions › Money", 2,
    )  # fmt: skip
    assert first.score == pytest.approx(shown[0].score, abs=1e-6)


def test_the_index_is_shared_by_processes_through_sqlite(shop: Path, tmp_path: Path) -> None:
    prepare(tmp_path, shop)
    probe = (
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
        "print(db.execute('SELECT count(*) FROM passages').fetchone()[0])"
    )
    path = str(tmp_path / "index" / "knowledge.sqlite")

    out = subprocess.run(["python3", "-c", probe, path], capture_output=True, text=True)

    assert int(out.stdout) >= 43
