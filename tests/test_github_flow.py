"""GitHub end to end: issue → pushed branch in a bare remote → one PR, and what may not happen.

Real PyGithub against the local GitHub double over a socket, a real bare git repository as
the push remote, the real Docker sandbox, and the scripted model server.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codebot import config as cfg
from codebot import github_flow
from codebot.errors import ConfigError, ForgeError, WorkspaceError
from codebot.events import ReviewContext
from tests.support.git_repos import git
from tests.support.github_world import ISSUE_BODY, REPO
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT, cli_env

pytestmark = pytest.mark.docker

EVENTS = Path(__file__).parent / "fixtures" / "events"
README_EDIT = """Document the units.

README.md
<<<<<<< SEARCH
Run the tests with `pytest -q`.
=======
Run the tests with `pytest -q`. Units: h, m, s.
>>>>>>> REPLACE
"""


@pytest.fixture
def env(hub, model_server, tmp_path):
    return {
        **cli_env(model_server),
        "GITHUB_TOKEN": hub.token,
        "GITHUB_API_URL": hub.url,
    }


def settings(env, tmp_path):
    return cfg.with_flags(cfg.from_env(env), runs_dir=tmp_path / "runs")


def remote_branches(remote):
    return git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


def test_issue_becomes_one_pr_from_a_passing_branch(
    hub, forge, env, model_server, remote, tmp_path, no_leftover_containers
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    out = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)

    assert out.stop_reason == "passed"
    branch = "codebot/issue-42-support-minutes-in-parse-duration"
    assert remote_branches(remote) == [branch, "main"]
    checkout = tmp_path / "check"
    git(tmp_path, "clone", "-q", "-b", branch, str(remote), str(checkout))
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=checkout, capture_output=True, text=True)  # fmt: skip
    assert tests.returncode == 0, tests.stdout

    (pull,) = hub.pulls
    assert (pull.head, pull.base, pull.draft) == (branch, "main", False)
    assert "Closes #42" in pull.body and "✅ **all checks passed**" in pull.body
    assert "- [ ] minutes are supported" in pull.body
    assert "codebot" in pull.labels
    said = [c.body for c in hub.comments if c.issue_number == 42]
    assert said[0].startswith("🤖 codebot is working on this")
    assert said[-1].startswith(f"✅ Pull request #{pull.number} is ready for review")
    (issue,) = hub.issues
    assert issue.labels == ["codebot"]  # the run's lock label is gone
    assert out.pull is not None
    assert out.record.published == f"pushed {branch}; pull request {out.pull.url}"
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    assert json.loads(run_json.read_text())["published"] == out.record.published
    assert hub.token not in json.dumps([c.body for c in hub.comments]) + pull.body


def test_second_run_on_the_same_issue_updates_the_same_branch_and_pr(
    hub, forge, env, model_server, remote, tmp_path
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    first = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)
    model_server.script(README_EDIT)
    second = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)

    assert second.stop_reason == "passed"
    assert second.pull.number == first.pull.number and not second.pull.created
    assert len(hub.pulls) == 1
    branch = first.pull.head
    assert git(remote, "rev-list", "--count", f"main..{branch}") == "2"
    (pull,) = hub.pulls
    assert second.record.run_id in pull.body  # the body was refreshed
    assert "| `duration.py` |" in pull.body and "| `README.md` |" in pull.body  # whole PR


def test_follow_up_comment_adds_a_commit_to_the_bots_pr(
    hub, forge, env, model_server, remote, tmp_path
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    first = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)
    model_server.script(README_EDIT)
    out = github_flow.run_followup(
        forge, REPO, first.pull.number, "also document the units in the README",
        settings(env, tmp_path), env,
    )  # fmt: skip
    assert out.stop_reason == "passed" and out.pull.number == first.pull.number
    (pull,) = hub.pulls  # the body lists both runs, the first one's cost included
    history = pull.body.split("### All codebot runs on this pull request", 1)[1]
    rows = [line for line in history.splitlines() if line.startswith("| `")]
    assert [row.split(" | ")[2:4] for row in rows] == [["task", "passed"], ["follow-up", "passed"]]
    assert f"`{first.record.run_id}`" in rows[0] and f"`{out.record.run_id}`" in rows[1]
    tokens = first.record.usage.total_tokens + out.record.usage.total_tokens
    cost = (first.record.cost_usd or 0) + (out.record.cost_usd or 0)
    assert f"Total: {tokens:,} tokens, ${cost:.4f}." in history
    assert git(remote, "log", "-1", "--format=%s", first.pull.head).startswith(
        first.pull.title[:20]
    )
    prompt = model_server.requests[-1].messages[1]["content"]
    assert "also document the units in the README" in prompt
    assert [c.issue_number for c in hub.comments][-1] == first.pull.number


def test_follow_up_on_a_human_branch_is_refused(hub, forge, env, tmp_path):
    pr = forge.open_or_update_pr(
        REPO, head="feature/x", base="main", title="t", body="b", draft=False
    )
    with pytest.raises(ConfigError, match="not an open codebot pull request"):
        github_flow.run_followup(forge, REPO, pr.number, "do it", settings(env, tmp_path), env)


def test_a_second_run_is_refused_while_one_holds_the_issue(hub, forge, env, tmp_path, remote):
    forge.add_label(REPO, 42, github_flow.LOCK_LABEL)
    with pytest.raises(ForgeError, match="another codebot run is working on"):
        github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)
    assert remote_branches(remote) == ["main"]


def test_protected_codebot_branch_is_never_pushed(hub, forge, env, tmp_path, remote):
    hub.protect(REPO, "codebot/issue-42-support-minutes-in-parse-duration")
    with pytest.raises(ConfigError, match="is protected"):
        github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)
    assert remote_branches(remote) == ["main"]


def test_rejected_push_opens_no_pr_and_says_why_on_the_issue(
    hub, forge, env, model_server, remote, tmp_path
):
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected by policy' >&2\nexit 1\n")
    hook.chmod(0o755)
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    with pytest.raises(WorkspaceError, match="cannot push"):
        github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)
    assert not hub.pulls
    assert [c.body for c in hub.comments][-1].startswith("⚠️ codebot stopped: cannot push")


def _event(tmp_path, name):
    payload = json.loads((EVENTS / f"{name}.json").read_text())
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(payload))
    return str(path)


def pull_url(hub, pull):
    return f"{hub.base}/{REPO}/pull/{pull.number}"


def run_action(env, tmp_path, event_name, event_file):
    output = tmp_path / "github_output"
    output.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "codebot", "action", "--runs-dir", str(tmp_path / "runs")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**env, "GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": event_file,
             "GITHUB_OUTPUT": str(output)},
    )  # fmt: skip
    return result, dict(line.split("=", 1) for line in output.read_text().splitlines())


def test_action_on_a_labeled_issue_opens_a_pr_and_sets_outputs(
    hub, env, model_server, remote, tmp_path, no_leftover_containers
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    result, outputs = run_action(env, tmp_path, "issues", _event(tmp_path, "issues_labeled"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert outputs["stop-reason"] == "passed"
    (pull,) = hub.pulls
    assert outputs["pr-url"] == pull_url(hub, pull)
    assert outputs["head-commit"] == git(remote, "rev-parse", pull.head)
    assert float(outputs["cost-usd"]) > 0


def test_action_refuses_an_untrusted_commenter_politely_and_runs_nothing(
    hub, env, remote, tmp_path
):
    event = _event(tmp_path, "issue_comment_untrusted")
    result, outputs = run_action(env, tmp_path, "issue_comment", event)
    assert result.returncode == 0, result.stderr
    assert outputs["stop-reason"] == "refused" and outputs["pr-url"] == ""
    (comment,) = hub.comments
    assert comment.issue_number == 42
    assert comment.body.startswith("Thanks for the request, @drive-by!")
    assert remote_branches(remote) == ["main"]
    assert not os.path.exists(tmp_path / "runs")


def test_run_that_does_not_pass_opens_a_draft_and_says_so(
    hub, forge, env, model_server, remote, tmp_path
):
    model_server.script(MINUTES_DIFF)  # fixes minutes; malformed input still passes silently
    limited = {**env, "CODEBOT_MAX_ITERATIONS": "1"}
    out = github_flow.run_issue(forge, REPO, 42, settings(limited, tmp_path), limited)
    assert out.stop_reason == "max_iterations"
    (pull,) = hub.pulls
    assert pull.draft is True
    assert "⚠️ **stopped: iteration limit reached" in pull.body
    assert "❌ 5 tests failed" in pull.body
    last = [c.body for c in hub.comments if c.issue_number == 42][-1]
    assert f"The partial change is in draft pull request #{pull.number}" in last


def test_repo_config_sets_labels_and_reviewers_and_agents_md_reaches_the_prompt(
    hub, forge, env, model_server, example_repo, tmp_path
):
    (example_repo / ".codebot.yml").write_text(
        "spec:\n  test: python3 -m pytest -q\n"
        "github:\n  labels: [bot, needs-review]\n  reviewers: [bob]\n"
    )
    (example_repo / "AGENTS.md").write_text("Keep functions under 20 lines.\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "team conventions")
    bare = tmp_path / "team.git"
    git(tmp_path, "clone", "-q", "--bare", str(example_repo), str(bare))
    hub.add_repo("octo-org/team", default_branch="main", clone_url=str(bare), collaborators=["bob"])
    hub.add_issue("octo-org/team", 7, "Support minutes", ISSUE_BODY, author_association="OWNER")
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)

    out = github_flow.run_issue(forge, "octo-org/team", 7, settings(env, tmp_path), env)

    assert out.stop_reason == "passed"
    (pull,) = [p for p in hub.pulls if p.repo == "octo-org/team"]
    assert pull.labels == ["bot", "needs-review"]
    assert pull.requested_reviewers == ["bob"]
    first_prompt = model_server.requests[0].messages[1]["content"]
    assert "Keep functions under 20 lines." in first_prompt


def test_a_rerun_on_a_green_pr_stops_after_one_reply_and_says_the_branch_passes(
    hub, forge, env, model_server, remote, tmp_path
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    first = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)
    model_server.script("The earlier commit already supports minutes; nothing is left.")

    again = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)

    assert again.stop_reason == "nothing_to_do" and len(again.record.iterations) == 1
    assert git(remote, "rev-list", "--count", f"main..{first.pull.head}") == "1"  # no commit
    said = [c.body for c in hub.comments if c.issue_number == 42][-1]
    assert said.startswith("✅ Nothing to change: the branch already passes its checks;")


def test_a_lock_label_a_maintainer_removed_by_hand_does_not_fail_the_run(
    hub, forge, env, model_server, tmp_path
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    hub.respond_once("DELETE", r"/labels/codebot:running", 404, {"message": "Label does not exist"})

    out = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)

    assert out.stop_reason == "passed" and out.pull is not None


def test_after_a_follow_up_the_pr_body_describes_the_whole_pr(
    hub, forge, env, model_server, tmp_path
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    first = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)
    model_server.script(README_EDIT)
    github_flow.run_followup(
        forge, REPO, first.pull.number, "document the units", settings(env, tmp_path), env
    )

    (pull,) = hub.pulls
    said = pull.body.split("### What changed and why", 1)[1].split("###", 1)[0]
    assert f"run `{first.record.run_id}` (task): Add the minutes unit. Reject anything" in said
    assert "(this run): Document the units." in said
    assert "### Checks on the base branch" in pull.body and "❌" in pull.body
    assert "| `duration.py` |" in pull.body and "| `README.md` |" in pull.body  # the whole diff


# --- commits GitHub makes (commit_via_api), and replies in review threads ------------------------
BRANCH = "codebot/issue-42-support-minutes-in-parse-duration"
README_HUNK = "@@ -1,4 +1,4 @@\n # duration\n \n A tiny library\n Run the tests with `pytest -q`."


def record_pushes(remote, tmp_path):
    """A pre-receive hook noting every push the remote receives (and letting it through)."""
    log = tmp_path / "pushes"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ncat >> {log}\n")
    hook.chmod(0o755)
    return log


def test_with_commit_via_api_the_branch_holds_a_commit_github_made_and_nothing_is_pushed(
    hub, forge, env, model_server, remote, tmp_path
):
    pushes = record_pushes(remote, tmp_path)
    via_api = {**env, "CODEBOT_COMMIT_VIA_API": "1"}
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)

    out = github_flow.run_issue(forge, REPO, 42, settings(via_api, tmp_path), via_api)

    assert out.stop_reason == "passed"
    head = git(remote, "rev-parse", BRANCH)
    assert head in hub.verified_commits
    # The record names the commit on the branch, GitHub's, not the local one it was made from.
    assert out.record.head_commit == head and out.files.run_json.is_file()
    assert json.loads(out.files.run_json.read_text())["head_commit"] == head
    assert git(remote, "rev-parse", f"{BRANCH}^") == git(remote, "rev-parse", "main")
    code = git(remote, "show", f"{BRANCH}:duration.py")
    assert '"m": 60' in code and "raise ValueError" in code
    assert git(remote, "log", "-1", "--format=%s", BRANCH) == "Support minutes in parse_duration"
    made = [r.path.rsplit("/git/", 1)[1] for r in hub.writes() if "/git/" in r.path]
    assert made == ["blobs", "trees", "commits", "refs"]
    assert not pushes.exists()
    (pull,) = hub.pulls
    assert pull.head == BRANCH and out.pull.head_sha == head
    assert out.record.published == (
        f"committed through the GitHub API (verified); pull request {out.pull.url}"
    )


def test_a_review_comment_follow_up_works_on_its_lines_and_replies_with_the_commit(
    hub, forge, env, model_server, remote, tmp_path
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    first = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)
    asked = hub.add_review_comment(REPO, first.pull.number, "README.md", 4, "/codebot units", 3)
    review = ReviewContext("README.md", 4, README_HUNK, asked.id, start_line=3)
    via_api = {**env, "CODEBOT_COMMIT_VIA_API": "1"}
    model_server.script(README_EDIT)

    out = github_flow.run_followup(
        forge, REPO, first.pull.number, "document the units", settings(via_api, tmp_path),
        via_api, review=review,
    )  # fmt: skip

    assert out.stop_reason == "passed" and out.record.spec["files"] == ["README.md"]
    prompt = model_server.requests[-1].messages[1]["content"]
    assert "Review comment on README.md lines 3..4:" in prompt
    head = git(remote, "rev-parse", BRANCH)  # GitHub's commit, not the local one
    assert head in hub.verified_commits
    (reply,) = [c for c in hub.review_comments if c.in_reply_to == asked.id]
    assert reply.body == f"Addressed in {head[:7]} ({hub.base}/{REPO}/commit/{head})."
    assert len(hub.review_comments) == 2


def test_a_review_comment_follow_up_that_pushes_nothing_says_so_in_the_thread(
    hub, forge, env, model_server, remote, tmp_path
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    first = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)
    before = git(remote, "rev-parse", BRANCH)
    asked = hub.add_review_comment(REPO, first.pull.number, "duration.py", 9, "/codebot @all")
    review = ReviewContext("duration.py", 9, "@@ -9 +9 @@", asked.id)
    model_server.script("The branch already handles this; nothing is left to change.")

    out = github_flow.run_followup(
        forge, REPO, first.pull.number, "check minutes", settings(env, tmp_path), env,
        review=review,
    )  # fmt: skip

    assert out.stop_reason == "nothing_to_do" and git(remote, "rev-parse", BRANCH) == before
    (reply,) = [c for c in hub.review_comments if c.in_reply_to == asked.id]
    assert reply.body.startswith(
        "Nothing was pushed for this comment: nothing to change: the branch already passes"
    )
