"""Commits made through the GitHub Git Data API instead of pushed (codebot.gitapi).

Real components: PyGithub against the GitHub double over a socket, whose Git Data endpoints
write real objects and refs into a real bare repository; a real clone made by our Workspace,
committed to with the git CLI. A pre-receive hook on the bare repository notes every push:
the API path must make none.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from codebot import config as cfg
from codebot import gitapi
from codebot.errors import ConfigError, ForgeError, WorkspaceError
from codebot.forge import ClientOptions, GitHubForge
from codebot.workspace import Workspace
from tests.support.git_repos import git

REPO = "octo-org/hello-app"
BRANCH = "codebot/issue-42-support-minutes"
BIG = os.urandom(3 * 1024 * 1024)  # binary, and over the contents API's 1 MB


@pytest.fixture
def hub(github_server, remote):
    github_server.add_repo(REPO, default_branch="main", clone_url=str(remote))
    return github_server


@pytest.fixture
def forge(hub):
    return GitHubForge(hub.token, hub.url, ClientOptions(False, 0, 0))


@pytest.fixture
def pushes(remote, tmp_path):
    """Every push the remote receives, noted (and let through)."""
    log = tmp_path / "pushes"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ncat >> {log}\n")
    hook.chmod(0o755)
    return log


@pytest.fixture
def clone(remote):
    """A Workspace on BRANCH (continued when the remote has it), cleaned up after the test."""
    made = []

    def new() -> Workspace:
        made.append(Workspace.clone(str(remote), BRANCH, "main"))
        return made[-1]

    yield new
    for ws in made:
        ws.cleanup()


def commit(ws, message, files=None, delete=(), executable=(), links=None, binary=None):
    root = ws.path
    for path, text in (files or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    for path, data in (binary or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    for path in executable:
        (root / path).chmod(0o755)
    for path, target in (links or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).symlink_to(target)
    for path in delete:
        (root / path).unlink()
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD")


def git_writes(hub):
    return [(r.method, r.path.split("/git/", 1)[1]) for r in hub.writes() if "/git/" in r.path]


def tree_of(repo: Path, ref: str) -> str:
    return git(repo, "rev-parse", f"{ref}^{{tree}}")


def test_a_new_branch_is_made_by_github_with_every_kind_of_change_and_never_pushed(
    hub, forge, remote, clone, pushes
):
    ws = clone()
    local = commit(
        ws, "Add minutes\n\nWith a script, a link and a picture.\n",
        files={"README.md": "Units: h, m, s.\n", "tools/check.sh": "#!/bin/sh\nexit 0\n"},
        executable=["tools/check.sh"], links={"docs/latest": "../README.md"},
        binary={"assets/picture.bin": BIG}, delete=["test_duration.py"],
    )  # fmt: skip

    sent = gitapi.send_branch(forge, REPO, ws, via_api=True)

    head = git(remote, "rev-parse", BRANCH)
    assert sent == gitapi.Sent(head, True, "committed through the GitHub API (verified)")
    assert head != local and head in hub.verified_commits
    assert tree_of(remote, BRANCH) == tree_of(ws.path, local)  # the very bytes, modes, links
    listing = git(remote, "ls-tree", "-r", BRANCH)
    assert "100755 blob" in next(x for x in listing.splitlines() if x.endswith("tools/check.sh"))
    assert "120000 blob" in next(x for x in listing.splitlines() if x.endswith("docs/latest"))
    assert "test_duration.py" not in listing
    assert git(remote, "cat-file", "blob", f"{BRANCH}:docs/latest") == "../README.md"
    assert git(remote, "rev-parse", f"{BRANCH}^") == git(remote, "rev-parse", "main")
    assert git(remote, "log", "-1", "--format=%an|%cn|%B", BRANCH).startswith(
        "codebot-bot|GitHub|Add minutes\n\nWith a script, a link and a picture."
    )
    assert git_writes(hub) == [("POST", "blobs")] * 4 + [
        ("POST", "trees"), ("POST", "commits"), ("POST", "refs"),
    ]  # fmt: skip
    (tree,) = [r.body for r in hub.writes() if r.path.endswith("/git/trees")]
    assert {"path": "test_duration.py", "mode": "100644", "type": "blob", "sha": None} in (
        tree["tree"]
    )
    (made,) = [r.body for r in hub.writes() if r.path.endswith("/git/commits")]
    assert "author" not in made and "committer" not in made  # left to GitHub, which signs
    assert not pushes.exists()


def test_a_large_binary_file_arrives_byte_for_byte(hub, forge, remote, clone):
    ws = clone()
    commit(ws, "Add a picture", binary={"assets/picture.bin": BIG})

    gitapi.send_branch(forge, REPO, ws, via_api=True)

    stored = subprocess.run(
        ["git", "--git-dir", str(remote), "cat-file", "blob", f"{BRANCH}:assets/picture.bin"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert stored == BIG
    (blob,) = [r.body for r in hub.writes() if r.path.endswith("/git/blobs")]
    assert blob["encoding"] == "base64"


def test_each_local_commit_is_made_again_in_order(hub, forge, remote, clone):
    ws = clone()
    first = commit(ws, "Document the units", files={"README.md": "Units: h, m, s.\n"})
    second = commit(ws, "Add a changelog", files={"CHANGES.md": "- minutes\n"})

    gitapi.send_branch(forge, REPO, ws, via_api=True)

    assert git(remote, "log", "--format=%s", f"main..{BRANCH}").splitlines() == [
        "Add a changelog", "Document the units",
    ]  # fmt: skip
    assert tree_of(remote, BRANCH) == tree_of(ws.path, second)
    assert tree_of(remote, f"{BRANCH}^") == tree_of(ws.path, first)
    assert {git(remote, "rev-parse", f"{BRANCH}~{n}") for n in (0, 1)} <= hub.verified_commits


def send_first_commit(forge, clone):
    """An earlier run: BRANCH made on GitHub through the API from one commit."""
    ws = clone()
    commit(ws, "Document the units", files={"README.md": "Units: h, m, s.\n"})
    return gitapi.send_branch(forge, REPO, ws, via_api=True)


def test_an_existing_branch_is_fast_forwarded_without_force(hub, forge, remote, clone, pushes):
    before = send_first_commit(forge, clone).head
    ws = clone()  # a later run continues the branch GitHub made
    commit(ws, "Add a changelog", files={"CHANGES.md": "- minutes\n"})

    sent = gitapi.send_branch(forge, REPO, ws, via_api=True)

    assert git(remote, "rev-parse", f"{BRANCH}^") == before
    assert sent.head == git(remote, "rev-parse", BRANCH) and sent.fresh
    (update,) = [r.body for r in hub.writes() if r.method == "PATCH"]
    assert update["force"] is False
    assert not pushes.exists()


def test_a_branch_that_moved_is_left_as_it_is(hub, forge, remote, clone, example_repo):
    ws = clone()
    commit(ws, "Document the units", files={"README.md": "Units: h, m, s.\n"})
    git(example_repo, "checkout", "-q", "-b", BRANCH)
    (example_repo / "NOTES.md").write_text("a person's commit\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "a person pushed first")
    git(example_repo, "push", "-q", str(remote), BRANCH)
    theirs = git(remote, "rev-parse", BRANCH)

    with pytest.raises(WorkspaceError, match=f"the branch {BRANCH} moved on the remote"):
        gitapi.send_branch(forge, REPO, ws, via_api=True)

    assert git(remote, "rev-parse", BRANCH) == theirs
    assert not git_writes(hub)


def test_a_ref_update_github_refuses_as_not_a_fast_forward_is_the_moved_error(
    hub, forge, remote, clone
):
    before = send_first_commit(forge, clone).head
    ws = clone()
    commit(ws, "Add a changelog", files={"CHANGES.md": "- minutes\n"})
    hub.fail("PATCH", r"/git/refs/heads/", 422, "Update is not a fast forward")

    with pytest.raises(WorkspaceError, match="moved on the remote while codebot worked"):
        gitapi.send_branch(forge, REPO, ws, via_api=True)

    assert git(remote, "rev-parse", BRANCH) == before


def test_github_refuses_to_move_a_branch_backwards_unless_forced(hub, forge, remote):
    main = git(remote, "rev-parse", "main")
    older = git(remote, "rev-parse", "main^")

    assert forge.update_ref(REPO, "main", older) is False
    assert git(remote, "rev-parse", "main") == main
    assert forge.create_ref(REPO, "main", older) is False  # it exists: not replaced either
    assert git(remote, "rev-parse", "main") == main


def test_sending_the_same_change_again_makes_nothing_new(hub, forge, remote, clone):
    ws = clone()
    commit(ws, "Document the units", files={"README.md": "Units: h, m, s.\n"})
    first = gitapi.send_branch(forge, REPO, ws, via_api=True)
    writes = len(hub.writes())

    again = gitapi.send_branch(forge, REPO, ws, via_api=True)

    assert again.head == first.head and not again.fresh
    assert len(hub.writes()) == writes


def test_a_blob_github_stores_differently_leaves_the_branch_unmade(hub, forge, remote, clone):
    ws = clone()
    commit(ws, "Document the units", files={"README.md": "Units: h, m, s.\n"})
    hub.respond_once("POST", r"/git/blobs$", 201, {"sha": "f" * 40, "url": hub.url})

    with pytest.raises(ForgeError, match=r"GitHub stored file README\.md of commit [0-9a-f]{12} "):
        gitapi.send_branch(forge, REPO, ws, via_api=True)

    assert git(remote, "branch", "--list", BRANCH) == ""
    assert git_writes(hub) == [("POST", "blobs")]


def test_a_deleted_and_an_executable_file_are_listed_with_their_modes(clone):
    ws = clone()
    base = ws.base_commit
    commit(ws, "Add a script", files={"run.sh": "#!/bin/sh\n"}, executable=["run.sh"])
    commit(ws, "Drop the tests", delete=["test_duration.py"])

    first, second = ws.commits_since(base)

    assert [(f.path, f.mode, f.data) for f in first.files] == [("run.sh", "100755", b"#!/bin/sh\n")]
    (gone,) = second.files
    assert (gone.path, gone.mode, gone.sha, gone.data) == ("test_duration.py", "100644", None, None)
    assert second.parent_tree == first.tree and first.message == "Add a script\n"


def test_without_the_option_the_branch_is_pushed(hub, forge, remote, clone, pushes):
    ws = clone()
    local = commit(ws, "Document the units", files={"README.md": "Units: h, m, s.\n"})

    sent = gitapi.send_branch(forge, REPO, ws, via_api=False)

    assert sent == gitapi.Sent(local, True, f"pushed {BRANCH}")
    assert git(remote, "rev-parse", BRANCH) == local
    assert pushes.exists() and not git_writes(hub)


def test_the_option_comes_from_the_environment_only():
    assert cfg.from_env({}).github.commit_via_api is False
    assert cfg.from_env({"CODEBOT_COMMIT_VIA_API": "1"}).github.commit_via_api is True
    with pytest.raises(ConfigError, match="CODEBOT_COMMIT_VIA_API='yes' is not allowed"):
        cfg.from_env({"CODEBOT_COMMIT_VIA_API": "yes"})
    with pytest.raises(ConfigError, match=r"`github.commit_via_api` cannot be set in"):
        cfg.with_repo_file(cfg.from_env({}), "github:\n  commit_via_api: true\n")


def test_a_reply_goes_into_the_review_comments_thread(hub, forge):
    pull = forge.open_or_update_pr(REPO, head=BRANCH, base="main", title="t", body="b", draft=False)
    asked = hub.add_review_comment(REPO, pull.number, "duration.py", 9, "/codebot add m")

    url = forge.reply_to_review_comment(REPO, pull.number, asked.id, "Addressed in abc1234.")

    (reply,) = [c for c in hub.review_comments if c.in_reply_to == asked.id]
    assert (reply.body, reply.path) == ("Addressed in abc1234.", "duration.py")
    assert url.endswith(f"/pull/{pull.number}#discussion_r{reply.id}")
    assert json.dumps(hub.writes()[-1].body) == json.dumps({"body": "Addressed in abc1234."})


def test_a_reply_to_a_review_comment_on_another_pull_request_is_refused_unposted(hub, forge):
    pull = forge.open_or_update_pr(REPO, head=BRANCH, base="main", title="t", body="b", draft=False)
    other = forge.open_or_update_pr(
        REPO, head="codebot/other", base="main", title="o", body="b", draft=False
    )
    elsewhere = hub.add_review_comment(REPO, other.number, "duration.py", 9, "/codebot add m")

    with pytest.raises(ForgeError, match=(
        rf"review comment {elsewhere.id} is not on pull request {REPO}#{pull.number} "
        rf"\(GitHub has it on #{other.number}\); no reply was posted"
    )):  # fmt: skip
        forge.reply_to_review_comment(REPO, pull.number, elsewhere.id, "Addressed in abc1234.")

    assert [c.id for c in hub.review_comments] == [elsewhere.id]
    assert not [r for r in hub.writes() if r.path.endswith("/replies")]


# --- pacing: GitHub's secondary rate limits without a second per file ----------------------------
def ten_files(ws):
    return commit(ws, "Ten files", files={f"pkg/m{n}.py": f"X = {n}\n" for n in range(10)})


def test_a_ten_file_commit_is_not_paced_a_second_per_write_with_the_default_options(
    hub, remote, clone
):
    """PyGithub's own pacing (a write a second) made this 12.3 s: 13 writes, 12 waits."""
    forge = GitHubForge(hub.token, hub.url, ClientOptions(retry=False))  # the default pacing
    ws = clone()
    local = ten_files(ws)

    start = time.monotonic()
    gitapi.send_branch(forge, REPO, ws, via_api=True)
    took = time.monotonic() - start

    assert git_writes(hub) == [("POST", "blobs")] * 10 + [
        ("POST", "trees"), ("POST", "commits"), ("POST", "refs"),
    ]  # fmt: skip
    assert tree_of(remote, BRANCH) == tree_of(ws.path, local)
    assert took < 4, f"sending 10 files took {took:.1f} s"


def test_git_data_writes_beyond_the_allowance_wait_for_the_window(hub, remote, clone):
    options = ClientOptions(False, 0, 0, git_writes_per_window=3, git_write_window_s=0.5)
    forge = GitHubForge(hub.token, hub.url, options)
    ws = clone()
    local = ten_files(ws)  # 13 writes: 3 at once, then 3 more each half second, 4 waits

    start = time.monotonic()
    gitapi.send_branch(forge, REPO, ws, via_api=True)
    took = time.monotonic() - start

    assert len(git_writes(hub)) == 13 and tree_of(remote, BRANCH) == tree_of(ws.path, local)
    assert took >= 4 * 0.5 - 0.05, f"13 writes at 3 a half second took only {took:.2f} s"


def test_other_writes_keep_pygithubs_pacing_of_a_second(hub):
    forge = GitHubForge(hub.token, hub.url, ClientOptions(retry=False))
    hub.add_issue(REPO, 7, "t", "b", labels=[], author="alice", author_association="MEMBER")

    start = time.monotonic()
    forge.comment(REPO, 7, "one")
    forge.comment(REPO, 7, "two")

    assert time.monotonic() - start >= 0.95  # comments notify people: GitHub's advice stands


REFUSED = "::error::input commit-via-api must be true or false (got 'yes')"


@pytest.mark.parametrize(
    ("value", "code", "said"),
    [("true", 0, "via-api=1"), ("false", 0, "via-api=unset"), ("yes", 2, REFUSED)],
)
def test_the_action_input_turns_the_option_on_or_is_refused(value, code, said, tmp_path):
    """The action's own `run` script, with a `codebot` on PATH printing what it was given."""
    action = yaml.safe_load((Path(__file__).parent.parent / "action.yml").read_text())
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "run")
    assert step["env"]["CODEBOT_COMMIT_VIA_API"] == "${{ inputs.commit-via-api }}"
    stub = tmp_path / "codebot"
    stub.write_text('#!/bin/sh\necho "via-api=${CODEBOT_COMMIT_VIA_API-unset}"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "CODEBOT_DRAFT": "auto",
           "CODEBOT_SETUP_NETWORK": "false", "CODEBOT_COMMIT_VIA_API": value}  # fmt: skip

    done = subprocess.run(["bash", "-c", step["run"]], env=env, capture_output=True, text=True)

    assert done.returncode == code, done.stderr
    assert done.stdout.strip() == said
