"""GitHubForge: real PyGithub over a real socket, against the local GitHub double."""

from __future__ import annotations

import json
import socket

import pytest

from codebot.errors import ConfigError, ForgeError
from codebot.forge import ClientOptions, GitHubForge
from codebot.records import PullInfo, to_jsonable
from tests.support.github_server import GitHubServer

REPO = "acme/widgets"
OFFLINE = ClientOptions(
    retry=False, seconds_between_requests=0, seconds_between_writes=0, timeout_s=5
)


@pytest.fixture
def server(github_server: GitHubServer) -> GitHubServer:
    github_server.add_repo(REPO, clone_url="/srv/git/widgets.git", collaborators=["bob"])
    return github_server


@pytest.fixture
def forge(server: GitHubServer) -> GitHubForge:
    return GitHubForge(server.token, server.url, OFFLINE)


def _open(
    forge: GitHubForge, *, head: str = "codebot/fix-it", base: str = "main", body: str = "v1"
) -> PullInfo:
    return forge.open_or_update_pr(
        REPO, head=head, base=base, title="Fix it", body=body, draft=False
    )


def test_repo_reports_default_branch_and_clone_url_from_the_api(
    server: GitHubServer, forge: GitHubForge
) -> None:
    server.add_repo("acme/legacy", default_branch="trunk", clone_url="/srv/git/legacy.git")

    info = forge.repo("acme/legacy")

    assert (info.full_name, info.default_branch, info.clone_url) == (
        "acme/legacy",
        "trunk",
        "/srv/git/legacy.git",
    )


def test_whoami_names_the_token_owner(server: GitHubServer, forge: GitHubForge) -> None:
    assert forge.whoami() == server.login


def test_issue_is_read_with_labels_and_association(
    server: GitHubServer, forge: GitHubForge
) -> None:
    server.add_issue(
        REPO, 7, "Crash on empty input", "Steps...", ["bug", "codebot"], "alice", "MEMBER"
    )

    issue = forge.issue(REPO, 7)

    assert issue.title == "Crash on empty input"
    assert issue.body == "Steps..."
    assert issue.labels == ("bug", "codebot")
    assert (issue.author, issue.author_association) == ("alice", "MEMBER")
    assert issue.url == f"{server.base}/{REPO}/issues/7"
    assert (issue.state, issue.is_pull_request) == ("open", False)


def test_issue_without_body_has_empty_body(server: GitHubServer, forge: GitHubForge) -> None:
    server.add_issue(REPO, 8, "Title only")

    assert forge.issue(REPO, 8).body == ""


def test_pull_request_read_as_issue_is_marked(server: GitHubServer, forge: GitHubForge) -> None:
    pull = _open(forge)

    assert forge.issue(REPO, pull.number).is_pull_request


def test_comment_posts_to_issue(server: GitHubServer, forge: GitHubForge) -> None:
    server.add_issue(REPO, 7, "Crash")

    url = forge.comment(REPO, 7, "Working on it: run 42")

    assert [(c.issue_number, c.body) for c in server.comments] == [(7, "Working on it: run 42")]
    assert url == f"{server.base}/{REPO}/issues/7#issuecomment-1"


def test_open_pr_creates_once_and_updates_on_second_call(
    server: GitHubServer, forge: GitHubForge
) -> None:
    first = forge.open_or_update_pr(
        REPO, head="codebot/fix-it", base="main", title="Fix it", body="v1", draft=False
    )
    second = forge.open_or_update_pr(
        REPO, head="codebot/fix-it", base="main", title="Fix it (retry)", body="v2", draft=False
    )

    assert len(server.pulls) == 1
    assert (server.pulls[0].title, server.pulls[0].body) == ("Fix it (retry)", "v2")
    assert (first.created, second.created) == (True, False)
    assert first.number == second.number
    assert second.url == f"{server.base}/{REPO}/pull/{first.number}"


def test_unchanged_pr_is_not_rewritten(server: GitHubServer, forge: GitHubForge) -> None:
    _open(forge)
    _open(forge)

    assert [r.method for r in server.writes()] == ["POST"]


def test_pr_opened_by_a_concurrent_run_is_reused(server: GitHubServer, forge: GitHubForge) -> None:
    other = _open(forge, body="from the other run")
    server.respond_once("GET", r"/pulls$", 200, [])  # our look-up misses it

    mine = _open(forge, body="from this run")

    assert len(server.pulls) == 1
    assert mine.number == other.number
    assert server.pulls[0].body == "from this run"


def test_draft_flag_is_sent(server: GitHubServer, forge: GitHubForge) -> None:
    pull = forge.open_or_update_pr(
        REPO, head="codebot/wip", base="main", title="WIP", body="", draft=True
    )

    assert server.pulls[0].draft is True
    assert pull.draft is True


def test_labels_and_reviewers_are_applied(server: GitHubServer, forge: GitHubForge) -> None:
    pull = forge.open_or_update_pr(
        REPO,
        head="codebot/fix-it",
        base="main",
        title="Fix it",
        body="",
        draft=False,
        labels=("codebot", "needs-review"),
        reviewers=("bob",),
    )

    assert server.pulls[0].labels == ["codebot", "needs-review"]
    assert server.pulls[0].requested_reviewers == ["bob"]
    assert pull.warnings == ()


def test_reviewer_who_is_not_a_collaborator_gives_a_warning_not_a_failure(
    server: GitHubServer, forge: GitHubForge
) -> None:
    pull = forge.open_or_update_pr(
        REPO,
        head="codebot/fix-it",
        base="main",
        title="Fix it",
        body="",
        draft=False,
        reviewers=("mallory", "bob"),
    )

    assert server.pulls[0].requested_reviewers == ["bob"]
    assert len(pull.warnings) == 1
    assert "mallory" in pull.warnings[0] and "collaborator" in pull.warnings[0]


def test_find_open_pr_matches_owner_and_branch_only(
    server: GitHubServer, forge: GitHubForge
) -> None:
    _open(forge, head="codebot/one")
    two = _open(forge, head="codebot/two")
    _open(forge, head="codebot/closed")
    server.pulls[-1].state = "closed"

    found = forge.find_open_pr(REPO, "codebot/two")

    assert found is not None and found.number == two.number
    assert found.head == "codebot/two"
    assert forge.find_open_pr(REPO, "codebot/closed") is None
    assert forge.find_open_pr(REPO, "codebot/none") is None
    assert server.requests[-1].query["head"] == "acme:codebot/none"


def test_protected_branch_is_reported(server: GitHubServer, forge: GitHubForge) -> None:
    server.protect(REPO, "main")
    server.add_repo("acme/open")

    assert forge.is_protected(REPO, "main") is True
    assert forge.is_protected("acme/open", "main") is False
    assert forge.is_protected(REPO, "codebot/not-pushed-yet") is False


def test_pr_into_a_missing_base_gives_a_validation_cause(forge: GitHubForge) -> None:
    with pytest.raises(ForgeError) as caught:
        _open(forge, base="release-9")

    assert "422" in caught.value.cause and "base" in caught.value.cause
    assert "opening a pull request from codebot/fix-it into release-9" in caught.value.cause


def test_bad_token_gives_one_line_cause_without_token(server: GitHubServer) -> None:
    token = "ghp_not-the-right-token-0123456789"
    forge = GitHubForge(token, server.url, OFFLINE)

    with pytest.raises(ForgeError) as caught:
        forge.issue(REPO, 1)

    message = caught.value.one_line()
    assert "401" in message and "token" in message and "GITHUB_TOKEN" in caught.value.fix
    assert token not in message and "\n" not in message


def test_unknown_repo_gives_not_found_cause(forge: GitHubForge) -> None:
    with pytest.raises(ForgeError) as caught:
        forge.repo("acme/nope")

    assert caught.value.cause == "not found while reading repository acme/nope (404)"
    assert "token can read the repository" in caught.value.fix


def test_forbidden_write_names_the_missing_permission(
    server: GitHubServer, forge: GitHubForge
) -> None:
    server.add_issue(REPO, 7, "Crash")
    server.fail("POST", r"/comments$", 403, "Resource not accessible by integration")

    with pytest.raises(ForgeError) as caught:
        forge.comment(REPO, 7, "hello")

    assert caught.value.cause == (
        f"GitHub refused commenting on {REPO}#7 (403 Resource not accessible by integration)"
    )
    assert "permissions:" in caught.value.fix


def test_unreachable_api_names_the_host(server: GitHubServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    forge = GitHubForge(server.token, f"http://127.0.0.1:{port}", OFFLINE)

    with pytest.raises(ForgeError) as caught:
        forge.repo(REPO)

    assert f"cannot reach the GitHub API at 127.0.0.1:{port}" in caught.value.cause
    assert server.token not in caught.value.one_line()


def test_invalid_repo_name_is_refused_before_any_request(
    server: GitHubServer, forge: GitHubForge
) -> None:
    with pytest.raises(ForgeError, match="OWNER/NAME"):
        forge.issue("widgets", 1)

    assert server.requests == []


def test_from_env_honours_github_api_url_with_an_enterprise_prefix() -> None:
    with GitHubServer(prefix="/api/v3") as enterprise:
        enterprise.add_repo(REPO)
        env = {"GITHUB_TOKEN": enterprise.token, "GITHUB_API_URL": enterprise.url}

        info = GitHubForge.from_env(env, OFFLINE).repo(REPO)

    assert info.default_branch == "main"
    assert [r.path for r in enterprise.requests] == [f"/api/v3/repos/{REPO}"]
    assert enterprise.unexpected == []


def test_from_env_without_token_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="GITHUB_TOKEN"):
        GitHubForge.from_env({"GITHUB_API_URL": "http://127.0.0.1:9"})


def test_results_serialise_to_json(server: GitHubServer, forge: GitHubForge) -> None:
    server.add_issue(REPO, 7, "Crash", labels=["bug"])

    data = to_jsonable([forge.repo(REPO), forge.issue(REPO, 7), _open(forge)])

    assert json.loads(json.dumps(data))[1]["labels"] == ["bug"]


def test_removing_a_label_a_maintainer_already_removed_is_not_an_error(
    server: GitHubServer, forge: GitHubForge
) -> None:
    server.add_issue(REPO, 9, "Bug", "Steps", ["codebot"], "alice", "MEMBER")
    forge.remove_label(REPO, 9, "codebot:running")  # GitHub: 404 "Label does not exist"

    assert server.requests[-1].method == "DELETE"


def test_removing_a_label_still_reports_other_failures(
    server: GitHubServer, forge: GitHubForge
) -> None:
    server.add_issue(REPO, 9, "Bug", "Steps", ["codebot:running"], "alice", "MEMBER")
    server.fail("DELETE", r"/labels/", 403, "Resource not accessible by integration")

    with pytest.raises(ForgeError, match="403"):
        forge.remove_label(REPO, 9, "codebot:running")
