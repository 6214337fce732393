"""The plan/publish split: a read-only plan leaves an artifact, `codebot publish` checks it
and only then pushes, opens the PR and comments.

Real components: PyGithub against the local GitHub double over a socket, a real bare git
repository as the remote, the real Docker sandbox and the scripted model server for the
runs. Tampered artifacts are made here with the git CLI and plain hashlib, not with our code.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codebot import config as cfg
from codebot import github_flow
from codebot.errors import ConfigError, ForgeError, WorkspaceError
from codebot.publish import publish
from tests.support.git_repos import git
from tests.support.github_world import REPO
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT, cli_env
from tests.test_github_flow import README_EDIT

BRANCH = "codebot/issue-42-support-minutes-in-parse-duration"
EVENTS = Path(__file__).parent / "fixtures" / "events"
BODY = "## Support minutes\n\nThe change.\n\nCloses #42\n"
FINAL = "✅ Pull request {pull_request} is ready for review: all checks passed."
NOTHING_PUSHED = "nothing was pushed or posted"
UNTRUSTED = "issue_comment_untrusted"


def heads(remote):
    return git(remote, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")


def run_publish(directory, forge, env):
    return publish(directory, forge, cfg.from_env(env), env)


# --- artifacts made by hand ----------------------------------------------------------------------
def reseal(directory):
    """A manifest for the files as they are now: what someone rewriting an artifact would do."""
    files = {
        p.name: {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size}
        for p in sorted(directory.iterdir())
        if p.name != "manifest.json"
    }
    manifest = {"format": "codebot-plan/1", "files": files}
    (directory / "manifest.json").write_text(json.dumps(manifest))


def edit_plan(directory, **changes):
    path = directory / "plan.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    reseal(directory)


def craft(tmp_path, remote, files=None, branch=BRANCH, base="main", body=BODY, links=None):
    """An artifact as a plan job writes it: one commit on `branch` over `base`, bundled."""
    work = tmp_path / "craft"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    if base == "unpushed":  # a base commit the remote never had
        git(work, "commit", "-q", "--allow-empty", "-m", "never pushed")
        git(work, "update-ref", "refs/remotes/origin/unpushed", "HEAD")
    git(work, "checkout", "-q", "-b", branch, f"origin/{base}")
    for path, text in (files or {"README.md": "Units: h, m, s.\n"}).items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    for path, target in (links or {}).items():
        (work / path).symlink_to(target)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "codebot change")
    base_sha, head = git(work, "rev-parse", f"origin/{base}"), git(work, "rev-parse", "HEAD")
    out = tmp_path / "plan"
    out.mkdir()
    git(work, "bundle", "create", "-q", str(out / "branch.bundle"), f"{base_sha}..{branch}")
    (out / "pr-body.md").write_text(body)
    (out / "comment-1.md").write_text(FINAL)
    plan = {
        "format": "codebot-plan/1", "repo": REPO, "number": 42, "branch": branch,
        "base_branch": "main", "base_commit": base_sha, "head_commit": head, "closes": 42,
        "title": "Support minutes in parse_duration", "draft": False, "labels": ["codebot"],
        "reviewers": [], "stop_reason": "passed", "run_id": "20260101-000000-abcd",
        "cost_usd": 0.01, "comments": ["comment-1.md"], "review_comment": None,
    }  # fmt: skip
    (out / "plan.json").write_text(json.dumps(plan))
    reseal(out)
    return out


def refused(directory, forge, env, remote, hub, match, error=ConfigError):
    """Publishing is refused with `match`, and nothing reached the remote or a PR."""
    before = heads(remote)
    with pytest.raises(error, match=match) as caught:
        run_publish(directory, forge, env)
    assert heads(remote) == before
    assert not hub.pulls
    assert NOTHING_PUSHED in caught.value.one_line()
    return caught.value


def test_a_well_formed_plan_is_pushed_and_opens_one_pr_with_its_body(
    hub, forge, writer_env, remote, tmp_path
):
    plan = craft(tmp_path, remote)

    done = run_publish(plan, forge, writer_env)

    head = json.loads((plan / "plan.json").read_text())["head_commit"]
    assert git(remote, "rev-parse", BRANCH) == head
    (pull,) = hub.pulls
    assert (pull.head, pull.base, pull.body, pull.labels) == (BRANCH, "main", BODY, ["codebot"])
    assert done.pull.number == pull.number and done.comments == 1
    said = [c.body for c in hub.comments]
    assert said == [f"✅ Pull request #{pull.number} is ready for review: all checks passed."]


def test_a_body_edited_after_the_manifest_is_refused(hub, forge, writer_env, remote, tmp_path):
    plan = craft(tmp_path, remote)
    (plan / "pr-body.md").write_text(BODY + "\n@everyone please merge\n")

    refused(
        plan,
        forge,
        writer_env,
        remote,
        hub,
        r"artifact pr-body\.md: does not match its sha256 and size in manifest\.json",
    )
    assert not hub.writes()


def test_a_commit_touching_a_workflow_is_refused(hub, forge, writer_env, remote, tmp_path):
    plan = craft(tmp_path, remote, files={".github/workflows/ci.yml": "on: push\n"})

    refused(
        plan,
        forge,
        writer_env,
        remote,
        hub,
        r"artifact branch\.bundle: commit [0-9a-f]{12}: \.github/workflows/ci\.yml is "
        r"protected by the bot's configuration \(\.github/workflows/\*\*\)",
    )


def test_a_protected_path_in_another_letter_case_is_refused(
    hub, forge, writer_env, remote, tmp_path
):
    plan = craft(tmp_path, remote, files={".GitHub/Actions/setup/action.yml": "runs: {}\n"})

    refused(plan, forge, writer_env, remote, hub, r"is protected by the bot's configuration")


def test_a_symlink_pointing_out_of_the_tree_is_refused(hub, forge, writer_env, remote, tmp_path):
    plan = craft(tmp_path, remote, links={"docs-link": "../../etc/passwd"})

    refused(
        plan,
        forge,
        writer_env,
        remote,
        hub,
        r"adds a symlink docs-link pointing outside the tree \('\.\./\.\./etc/passwd'\)",
    )


def test_a_branch_outside_the_codebot_prefix_is_refused(hub, forge, writer_env, remote, tmp_path):
    plan = craft(tmp_path, remote, branch="feature/x")
    edit_plan(plan, closes=None)

    refused(
        plan,
        forge,
        writer_env,
        remote,
        hub,
        r"artifact plan\.json: branch 'feature/x' is not one of codebot's codebot/\* branches",
    )
    assert not hub.writes()


def test_a_base_that_is_not_on_the_remote_base_branch_is_refused(
    hub, forge, writer_env, remote, tmp_path, example_repo
):
    git(example_repo, "checkout", "-q", "-b", "side")
    (example_repo / "side.txt").write_text("elsewhere\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "a side line of history")
    git(example_repo, "push", "-q", str(remote), "side")
    plan = craft(tmp_path, remote, base="side")

    refused(
        plan,
        forge,
        writer_env,
        remote,
        hub,
        r"artifact plan\.json: base [0-9a-f]{12} is not the remote's main or an ancestor of it",
        ForgeError,
    )


def test_a_bundle_that_needs_commits_the_remote_lacks_is_refused(
    hub, forge, writer_env, remote, tmp_path
):
    plan = craft(tmp_path, remote, base="unpushed")

    match = r"artifact branch\.bundle: cannot take branch .* lacks these prerequisite commits"
    refused(plan, forge, writer_env, remote, hub, match)


def test_a_branch_that_moved_on_the_remote_is_not_forced(
    hub, forge, writer_env, remote, tmp_path, example_repo
):
    git(example_repo, "checkout", "-q", "-b", BRANCH)
    (example_repo / "NOTES.md").write_text("a person's commit\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "a person pushed first")
    git(example_repo, "push", "-q", str(remote), BRANCH)
    plan = craft(tmp_path, remote)

    refused(
        plan,
        forge,
        writer_env,
        remote,
        hub,
        r"on the remote is not in the planned history; codebot never force-pushes",
        ForgeError,
    )
    (said,) = [c.body for c in hub.comments]
    assert said.startswith("⚠️ codebot did not publish its change: artifact branch.bundle:")


def test_an_oversize_body_is_refused(hub, forge, writer_env, remote, tmp_path):
    plan = craft(tmp_path, remote, body="x" * (64 * 1024 + 1))

    refused(
        plan,
        forge,
        writer_env,
        remote,
        hub,
        r"artifact pr-body\.md: is 65537 bytes, over the 65536-byte limit",
    )


def test_a_file_the_manifest_does_not_list_is_refused(hub, forge, writer_env, remote, tmp_path):
    plan = craft(tmp_path, remote)
    (plan / "comment-2.md").write_text("@everyone look")

    refused(
        plan,
        forge,
        writer_env,
        remote,
        hub,
        r"artifact comment-2\.md: is not listed in manifest\.json",
    )


def test_closing_an_issue_other_than_the_branchs_is_refused(
    hub, forge, writer_env, remote, tmp_path
):
    plan = craft(tmp_path, remote)
    edit_plan(plan, closes=7)

    refused(
        plan,
        forge,
        writer_env,
        remote,
        hub,
        r"artifact plan\.json: `closes` #7 is not the issue its branch is for",
    )


def test_labels_other_than_the_configured_ones_are_refused(
    hub, forge, writer_env, remote, tmp_path
):
    plan = craft(tmp_path, remote)
    edit_plan(plan, labels=["codebot", "approved"])

    refused(
        plan,
        forge,
        writer_env,
        remote,
        hub,
        r"artifact plan\.json: `labels` \['codebot', 'approved'\] are not the configured",
    )


def test_a_plan_for_another_repository_is_refused(hub, forge, writer_env, remote, tmp_path):
    plan = craft(tmp_path, remote)

    env = {**writer_env, "GITHUB_REPOSITORY": "octo-org/other"}
    refused(
        plan,
        forge,
        env,
        remote,
        hub,
        r"repository 'octo-org/hello-app' is not this workflow's \(octo-org/other\)",
    )


def test_markup_in_the_body_is_made_inert_again_and_codebots_own_lines_kept(
    hub, forge, writer_env, remote, tmp_path
):
    history = '<!-- codebot:runs [{"run_id":"r1","finished_at":"t","kind":"task",' \
        '"stop_reason":"passed","iterations":1,"tokens":5,"cost_usd":null}] -->'  # fmt: skip
    body = (
        "## Fix\n\nThanks @octocat, this fixes #9 <!-- hidden -->\n\n<details><summary>Iteration "
        "log</summary>\n\n1. done\n\n</details>\n\nCloses #42\n<sub>Opened by codebot.</sub>\n"
        f"{history}\n"
    )
    plan = craft(tmp_path, remote, body=body)

    run_publish(plan, forge, writer_env)

    (pull,) = hub.pulls
    lines = pull.body.split("\n")
    assert lines[2] == "Thanks @\u200boctocat, this f\u200bixes #9 <\u200b!-- hidden --\u200b>"
    assert "<details><summary>Iteration log</summary>" in lines and "</details>" in lines
    assert "Closes #42" in lines and "<sub>Opened by codebot.</sub>" in lines
    assert lines[-2].startswith("<!-- codebot:runs [{") and '"run_id":"r1"' in lines[-2]


# --- publishing through the GitHub API (commit_via_api) ------------------------------------------
def test_through_the_api_the_plan_is_committed_by_github_once_and_never_pushed(
    hub, forge, writer_env, remote, tmp_path, guarded
):
    plan = craft(tmp_path, remote)
    planned = json.loads((plan / "plan.json").read_text())["head_commit"]
    env = {**writer_env, "CODEBOT_COMMIT_VIA_API": "1"}

    first = run_publish(plan, forge, env)
    made = len(hub.writes())
    again = run_publish(plan, forge, env)

    head = git(remote, "rev-parse", BRANCH)
    assert head in hub.verified_commits and head != planned
    tree = git(tmp_path / "craft", "rev-parse", f"{planned}^{{tree}}")
    assert git(remote, "rev-parse", f"{BRANCH}^{{tree}}") == tree
    assert not guarded.exists()
    (pull,) = hub.pulls
    assert first.pull.number == again.pull.number == pull.number and again.pull.head_sha == head
    assert (first.comments, again.comments, len(hub.comments)) == (1, 0, 1)
    assert not [r for r in hub.writes()[made:] if "/git/" in r.path]  # nothing made twice


def test_through_the_api_a_branch_that_moved_is_not_forced(
    hub, forge, writer_env, remote, tmp_path, example_repo
):
    git(example_repo, "checkout", "-q", "-b", BRANCH)
    (example_repo / "NOTES.md").write_text("a person's commit\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "a person pushed first")
    git(example_repo, "push", "-q", str(remote), BRANCH)
    theirs = git(remote, "rev-parse", BRANCH)
    plan = craft(tmp_path, remote)

    with pytest.raises(WorkspaceError, match=f"the branch {BRANCH} moved on the remote"):
        run_publish(plan, forge, {**writer_env, "CODEBOT_COMMIT_VIA_API": "1"})

    assert git(remote, "rev-parse", BRANCH) == theirs and not hub.pulls
    assert not [r for r in hub.writes() if "/git/" in r.path]
    (said,) = [c.body for c in hub.comments]
    assert said.startswith("⚠️ codebot did not publish its change: the branch")


# --- whole runs: the plan job, then the publish job ----------------------------------------------
@pytest.fixture
def plan_env(hub, model_server):
    """The plan job's environment: the model key and a token (only ever used to read)."""
    return {**cli_env(model_server), "GITHUB_TOKEN": hub.token, "GITHUB_API_URL": hub.url}


@pytest.fixture
def guarded(remote, tmp_path):
    """The remote refuses every push while the plan runs, and notes any attempt."""
    tried = tmp_path / "push-attempted"
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\ntouch {tried}\nexit 1\n")
    hook.chmod(0o755)
    yield tried
    hook.unlink(missing_ok=True)


def plan_issue(forge, env, tmp_path, model_server, replies=(MINUTES_DIFF, VALIDATION_EDIT)):
    model_server.script(*replies)
    settings = cfg.with_flags(cfg.from_env(env), runs_dir=tmp_path / "runs")
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    out = github_flow.run_issue(forge, REPO, 42, settings, env, artifact=artifact)
    return out, artifact


@pytest.mark.docker
def test_the_plan_leaves_an_artifact_and_writes_nothing(
    hub, forge, plan_env, model_server, remote, tmp_path, guarded
):
    before = heads(remote)

    out, artifact = plan_issue(forge, plan_env, tmp_path, model_server)

    assert out.stop_reason == "passed" and out.pull is None
    assert {r.method for r in hub.requests} == {"GET"}
    assert heads(remote) == before and not guarded.exists()
    assert not hub.comments and not hub.pulls and hub.issues[0].labels == ["codebot"]
    names = {p.name for p in artifact.iterdir()}
    assert names == {"manifest.json", "plan.json", "pr-body.md", "comment-1.md",
                     "branch.bundle", "run.json"}  # fmt: skip
    manifest = json.loads((artifact / "manifest.json").read_text())["files"]
    for name, entry in manifest.items():
        data = (artifact / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    plan = json.loads((artifact / "plan.json").read_text())
    assert (plan["branch"], plan["number"], plan["closes"]) == (BRANCH, 42, 42)
    listed = git(tmp_path, "bundle", "list-heads", str(artifact / "branch.bundle"))
    assert listed == f"{plan['head_commit']} refs/heads/{BRANCH}"
    assert "Closes #42" in (artifact / "pr-body.md").read_text()
    assert plan_env["OPENAI_API_KEY"] not in "".join(
        (artifact / n).read_text() for n in names - {"branch.bundle"}
    )


@pytest.mark.docker
def test_publish_pushes_the_plan_and_opens_one_pr_with_its_body(
    hub, forge, plan_env, writer_env, model_server, remote, tmp_path, guarded
):
    _, artifact = plan_issue(forge, plan_env, tmp_path, model_server)
    (remote / "hooks" / "pre-receive").unlink()  # the publish job may push

    done = run_publish(artifact, forge, writer_env)

    plan = json.loads((artifact / "plan.json").read_text())
    assert git(remote, "rev-parse", BRANCH) == plan["head_commit"]
    (pull,) = hub.pulls
    assert pull.body == (artifact / "pr-body.md").read_text()
    assert (pull.head, pull.draft, pull.labels) == (BRANCH, False, ["codebot"])
    assert done.stop_reason == "passed" and done.pull.number == pull.number
    (said,) = [c.body for c in hub.comments]
    assert said.startswith(f"✅ Pull request #{pull.number} is ready for review")


@pytest.mark.docker
def test_publishing_the_same_plan_twice_keeps_one_pr_and_says_it_once(
    hub, forge, plan_env, writer_env, model_server, remote, tmp_path
):
    _, artifact = plan_issue(forge, plan_env, tmp_path, model_server)

    first = run_publish(artifact, forge, writer_env)
    again = run_publish(artifact, forge, writer_env)

    assert len(hub.pulls) == 1 and again.pull.number == first.pull.number
    assert not again.pull.created and again.comments == 0
    assert len(hub.comments) == 1


@pytest.mark.docker
def test_a_planned_follow_up_fast_forwards_the_same_branch_and_pr(
    hub, forge, plan_env, writer_env, model_server, remote, tmp_path
):
    _, first = plan_issue(forge, plan_env, tmp_path, model_server)
    opened = run_publish(first, forge, writer_env).pull
    model_server.script(README_EDIT)
    settings = cfg.with_flags(cfg.from_env(plan_env), runs_dir=tmp_path / "runs")
    second = tmp_path / "follow-up"
    second.mkdir()
    github_flow.run_followup(
        forge, REPO, opened.number, "document the units", settings, plan_env, artifact=second
    )

    again = run_publish(second, forge, writer_env)

    assert again.pull.number == opened.number and len(hub.pulls) == 1
    assert git(remote, "rev-list", "--count", f"main..{BRANCH}") == "2"
    (pull,) = hub.pulls
    assert pull.body == (second / "pr-body.md").read_text()
    assert "### All codebot runs on this pull request" in pull.body
    assert [c.issue_number for c in hub.comments] == [42, opened.number]


@pytest.mark.docker
def test_a_plan_that_stops_on_an_error_leaves_the_reason_for_the_publish_job(
    hub, forge, plan_env, writer_env, model_server, remote, tmp_path, example_repo
):
    (example_repo / ".codebot.yml").write_text("colour: blue\n")
    git(example_repo, "commit", "-qam", "a setting codebot does not know")
    git(example_repo, "push", "-q", str(remote), "main")

    with pytest.raises(ConfigError, match="unknown or not allowed key `colour`"):
        plan_issue(forge, plan_env, tmp_path, model_server, replies=())

    assert {r.method for r in hub.requests} == {"GET"}
    done = run_publish(tmp_path / "artifact", forge, writer_env)
    (said,) = [c.body for c in hub.comments]
    assert said.startswith("⚠️ codebot stopped: .codebot.yml: unknown or not allowed key")
    assert done.pull is None and not hub.pulls


def codebot(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "codebot", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def outputs(path):
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def actions_env(tmp_path, job, event_name, fixture):
    """What GitHub Actions gives `job`: the event (both jobs see the same one), an output file."""
    event_file = tmp_path / f"{job}-event.json"
    shutil.copyfile(EVENTS / f"{fixture}.json", event_file)
    output = tmp_path / f"{job}-output"
    output.write_text("")
    return {"GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(event_file),
            "GITHUB_OUTPUT": str(output), "GITHUB_REPOSITORY": REPO}  # fmt: skip


@pytest.mark.docker
def test_the_two_jobs_end_to_end_through_the_cli(
    hub, plan_env, writer_env, model_server, remote, tmp_path, no_leftover_containers
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    plan_job = {**plan_env, **actions_env(tmp_path, "plan", "issues", "issues_labeled")}
    artifact = tmp_path / "artifact"

    planned = codebot(["action", "--artifact", str(artifact), "--runs-dir", "runs"], plan_job,
                      tmp_path)  # fmt: skip

    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert {r.method for r in hub.requests} == {"GET"} and not hub.pulls
    publish_job = {**writer_env, **actions_env(tmp_path, "publish", "issues", "issues_labeled")}
    published = codebot(["publish", str(artifact)], publish_job, tmp_path)
    assert published.returncode == 0, published.stdout + published.stderr
    (pull,) = hub.pulls
    said = outputs(Path(publish_job["GITHUB_OUTPUT"]))
    assert said["pr-url"] == f"{hub.base}/{REPO}/pull/{pull.number}"
    assert said["stop-reason"] == "passed" and float(said["cost-usd"]) > 0
    assert said["head-commit"] == git(remote, "rev-parse", BRANCH)
    planned = outputs(Path(plan_job["GITHUB_OUTPUT"]))
    assert planned["pr-url"] == "" and planned["head-commit"] == ""  # nothing pushed yet


def test_a_refusal_in_the_plan_job_is_posted_by_the_publish_job(hub, writer_env, remote, tmp_path):
    plan_job = {**writer_env, **actions_env(tmp_path, "plan", "issue_comment", UNTRUSTED)}
    artifact = tmp_path / "artifact"

    planned = codebot(["action", "--artifact", str(artifact)], plan_job, tmp_path)

    assert planned.returncode == 0, planned.stderr
    assert not hub.writes() and not (artifact / "branch.bundle").exists()
    publish_job = {**writer_env, **actions_env(tmp_path, "publish", "issue_comment", UNTRUSTED)}
    published = codebot(["publish", str(artifact)], publish_job, tmp_path)
    assert published.returncode == 0, published.stderr
    (comment,) = hub.comments
    assert comment.body.startswith("Thanks for the request, @\u200bdrive-by!")
    assert not hub.pulls


def test_a_plan_for_another_issue_than_the_event_is_refused(hub, writer_env, remote, tmp_path):
    plan_job = {**writer_env, **actions_env(tmp_path, "plan", "issue_comment", UNTRUSTED)}
    artifact = tmp_path / "artifact"
    codebot(["action", "--artifact", str(artifact)], plan_job, tmp_path)
    edit_plan(artifact, number=7)

    publish_job = {**writer_env, **actions_env(tmp_path, "publish", "issue_comment", UNTRUSTED)}
    published = codebot(["publish", str(artifact)], publish_job, tmp_path)

    assert published.returncode == ConfigError.exit_code
    assert "artifact plan.json: #7 is not the issue or PR of this event (#42)" in published.stderr
    assert not hub.writes()
