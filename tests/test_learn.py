"""Review memory: rules read from past review comments through real PyGithub against the
GitHub double, kept in the knowledge index, and the `learn` / `knowledge search` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from codebot import knowledge as kn
from codebot import learn
from codebot.config import KnowledgeConfig
from codebot.forge import ClientOptions, GitHubForge
from codebot.knowledge_index import Index
from tests.support.git_repos import make_repo
from tests.support.github_server import GitHubServer
from tests.support.team_docs import CONVENTIONS

REPO = "acme/shop"
OFFLINE = ClientOptions(
    retry=False, seconds_between_requests=0, seconds_between_writes=0, timeout_s=5
)
RULE = "Please use `Decimal` for money here; we never store prices as float."


@pytest.mark.parametrize(
    ("body", "cue"),
    [
        (RULE, "please use"),
        ("We prefer pathlib over os.path in new code.", "we prefer"),
        ("Never log the token, even at DEBUG.", "never"),
        ("Avoid mutable default arguments.", "avoid"),
        ("Don't catch bare `Exception` in handlers.", "don't"),
        ("Nice. Queries must go through the repository layer.", "must"),
        ("Use `pytest.raises` with `match=` so the message is checked.", "use"),
        ("Thanks! LGTM", None),
        ("Looks good to me 👍", None),
        ("Should we use Decimal here?", None),
        ("Why not a dataclass? Would that always work?", None),
        ("> never do this\n\nAgreed, thanks for the fix.", None),
        ("```suggestion\n    # always close the file\n```", None),
        ("Done, this should work now.", None),
    ],
)
def test_a_comment_is_kept_only_when_it_states_a_rule(body: str, cue: str | None) -> None:
    assert learn.rule_cue(body) == cue


@pytest.fixture
def reviews(github_server: GitHubServer) -> GitHubServer:
    """Two closed pull requests (one merged) with rules, chatter, a question and a bot."""
    github_server.add_repo(REPO)
    github_server.add_closed_pull(REPO, 3, "Add refunds", merged=True)
    github_server.add_closed_pull(REPO, 5, "Try floats", merged=False)
    github_server.add_review_comment(REPO, 3, "shop/refunds.py", 14, RULE, author="lead")
    github_server.add_review_comment(REPO, 3, "shop/refunds.py", 20, "LGTM, thanks!")
    github_server.add_review_comment(REPO, 3, "shop/api.py", 7, "Should this be async?")
    github_server.add_review_comment(
        REPO, 5, "shop/log.py", 2, "Avoid f-strings in log calls; pass args.", author="lead"
    )
    github_server.add_review_comment(
        REPO, 5, "shop/log.py", 3, "Always run the linter.", author="ci-helper[bot]"
    )
    github_server.add_issue(REPO, 9, "Open issue: not a pull request")
    return github_server


def forge(server: GitHubServer) -> GitHubForge:
    return GitHubForge(server.token, server.url, OFFLINE)


def test_past_review_comments_come_from_closed_pull_requests(reviews: GitHubServer) -> None:
    comments = forge(reviews).past_review_comments(REPO, limit=10)

    assert [(c.pull, c.merged, c.path, c.line) for c in comments] == [
        (5, False, "shop/log.py", 2), (5, False, "shop/log.py", 3),
        (3, True, "shop/refunds.py", 14), (3, True, "shop/refunds.py", 20),
        (3, True, "shop/api.py", 7),
    ]  # fmt: skip
    assert comments[2].url == f"{reviews.base}/{REPO}/pull/3#discussion_r{comments[2].id}"


def test_learn_keeps_the_rules_with_their_urls(reviews: GitHubServer, tmp_path: Path) -> None:
    index = Index(tmp_path / "k.sqlite")

    result = learn.learn(forge(reviews), REPO, index, limit=10)

    assert (result.pulls, result.comments) == (2, 5)
    assert [c.body for c in result.kept] == ["Avoid f-strings in log calls; pass args.", RULE]
    assert result.index.indexed == 2


def test_limit_reads_only_the_most_recently_closed_pull_requests(
    reviews: GitHubServer, tmp_path: Path
) -> None:
    result = learn.learn(forge(reviews), REPO, Index(tmp_path / "k.sqlite"), limit=1)

    assert {c.pull for c in result.kept} == {5}
    pulls_read = [r.path for r in reviews.requests if r.path.endswith("/comments")]
    assert pulls_read == [f"/repos/{REPO}/pulls/5/comments"]


def test_learning_twice_adds_nothing_new_and_forgets_nothing(
    reviews: GitHubServer, tmp_path: Path
) -> None:
    index = Index(tmp_path / "k.sqlite")
    learn.learn(forge(reviews), REPO, index, limit=10)

    again = learn.learn(forge(reviews), REPO, index, limit=1)

    assert (again.index.indexed, again.index.unchanged, again.index.removed) == (0, 1, 0)
    assert index.count([learn.origin(REPO)]) == 2


def test_a_run_is_shown_the_review_rule_under_its_url(
    reviews: GitHubServer, tmp_path: Path
) -> None:
    path = tmp_path / "k.sqlite"
    learned = learn.learn(forge(reviews), REPO, Index(path), limit=10)
    rule = next(c for c in learned.kept if c.pull == 3)

    found = kn.prepare(kn.KnowledgeOptions(KnowledgeConfig(), path), reviews_of=REPO)
    passages = kn.retrieve(found, "refund the order: store the price", 1_000)

    assert passages[0].source == rule.url
    assert passages[0].heading == "Review comment on shop/refunds.py (pull request #3, merged)"
    other = kn.prepare(kn.KnowledgeOptions(KnowledgeConfig(), path), reviews_of="acme/other")
    assert other.origins == ()


# --- the commands ----------------------------------------------------------------------------
def run_codebot(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    return subprocess.run(
        [sys.executable, "-m", "codebot", *args],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_learn_command_reports_what_it_kept(reviews: GitHubServer, tmp_path: Path) -> None:
    env = {"GITHUB_TOKEN": reviews.token, "GITHUB_API_URL": reviews.url}

    done = run_codebot(["learn", REPO, "--limit", "5"], tmp_path, **env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        f"codebot: 5 review comment(s) on 2 closed pull request(s) of {REPO}; "
        "2 state a rule or a preference"
    )
    assert f"'please use': {reviews.base}/{REPO}/pull/3#discussion_r" in done.stdout
    assert (tmp_path / ".cache" / "codebot" / "knowledge.sqlite").is_file()


def test_knowledge_search_shows_score_source_and_passage(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "shop",
        {"docs/conventions.md": CONVENTIONS, ".codebot.yml": "knowledge: [docs/]\n"},
    )

    done = run_codebot(["knowledge", "search", "discount the order total", "--repo", str(repo)],
                       tmp_path)  # fmt: skip

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "query terms: discount, order, total"
    assert lines[1] == "1. docs/conventions.md:12 — Conventions › Money"
    assert lines[2].startswith("   score 0.0164: BM25 rank 1 (")
    assert (
        lines[3] == "   | Money amounts (prices, order totals, discounts, refunds, taxes) are "
        "`decimal.Decimal`, never"
    )
    assert "ranked by BM25 alone (CODEBOT_EMBEDDINGS_MODEL is not set)" in done.stderr
