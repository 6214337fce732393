"""A `/codebot` review comment in the split workflow: the plan carries the review comment it
answers, and `codebot publish` checks it and replies in that comment's thread, linking the
commit now on the branch (GitHub's own when it made it through the API), as a one-job run does.

Real components: PyGithub against the local GitHub double over a socket, a real bare git
repository as the remote; the whole-run test adds the Docker sandbox and the scripted model.
Artifacts are made by hand with the git CLI and hashlib (tests/test_publish.py's helpers).
"""

from __future__ import annotations

import json

import pytest

from codebot import config as cfg
from codebot import github_flow, publish
from codebot.errors import ConfigError, ForgeError
from codebot.events import ReviewContext
from tests.support.git_repos import git
from tests.test_end_to_end import cli_env
from tests.test_github_flow import README_EDIT, README_HUNK
from tests.test_publish import (
    BRANCH,
    EVENTS,
    NOTHING_PUSHED,
    REPO,
    codebot,
    craft,
    edit_plan,
    heads,
    outputs,
    plan_issue,
    reseal,
    run_publish,
)

ANSWER = "Addressed in {commit}."
VIA_API = {"CODEBOT_COMMIT_VIA_API": "1"}


@pytest.fixture
def pull(forge):
    """codebot's open pull request from BRANCH, which a `/codebot` review comment is on."""
    return forge.open_or_update_pr(
        REPO, head=BRANCH, base="main", title="Support minutes", body="b", draft=False
    )


def answering(plan, number, comment_id, reply=ANSWER, pull=None):
    """`plan` reporting to PR `number` and answering review comment `comment_id` there."""
    (plan / "reply.md").write_text(reply)
    thread = {"id": comment_id, "pull": number if pull is None else pull}
    edit_plan(plan, number=number, review_comment=thread)
    return plan


def reply_only(tmp_path, number, comment_id, reply):
    """A plan with nothing to push (the model changed nothing): a comment and a reply."""
    out = tmp_path / "plan"
    out.mkdir()
    (out / "comment-1.md").write_text("✅ Nothing to change.")
    (out / "reply.md").write_text(reply)
    plan = {
        "format": "codebot-plan/1", "repo": REPO, "number": number, "branch": "",
        "base_branch": "", "base_commit": "", "head_commit": "", "closes": None, "title": "",
        "draft": False, "labels": [], "reviewers": [], "stop_reason": "nothing_to_do",
        "run_id": "20260101-000000-abcd", "cost_usd": None, "comments": ["comment-1.md"],
        "review_comment": {"id": comment_id, "pull": number},
    }  # fmt: skip
    (out / "plan.json").write_text(json.dumps(plan))
    reseal(out)
    return out


def replies_to(hub, comment):
    return [c.body for c in hub.review_comments if c.in_reply_to == comment.id]


def reply_posts(hub):
    return [r for r in hub.writes() if r.path.endswith("/replies")]


def refused(plan, forge, env, remote, hub, match, error=ConfigError):
    """Publishing is refused with `match` before anything reached the remote or a thread."""
    before = heads(remote)
    with pytest.raises(error, match=match) as caught:
        run_publish(plan, forge, env)
    assert heads(remote) == before
    assert not reply_posts(hub) and not hub.comments
    assert NOTHING_PUSHED in caught.value.one_line()


def review_event(tmp_path, number, comment_id):
    """A pull_request_review_comment event (as both jobs see it) on PR `number`."""
    event = json.loads((EVENTS / "pull_request_review_comment.json").read_text())
    event["pull_request"]["number"] = number
    event["comment"]["id"] = comment_id
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return {"GITHUB_EVENT_NAME": "pull_request_review_comment", "GITHUB_EVENT_PATH": str(path)}


# --- the reply ---------------------------------------------------------------------------------
def test_the_reply_goes_into_the_thread_and_links_the_pushed_commit(
    hub, forge, writer_env, remote, tmp_path, pull
):
    asked = hub.add_review_comment(REPO, pull.number, "README.md", 4, "/codebot units")
    plan = answering(craft(tmp_path, remote), pull.number, asked.id)

    done = run_publish(plan, forge, writer_env)

    head = git(remote, "rev-parse", BRANCH)
    assert replies_to(hub, asked) == [f"Addressed in {head[:7]} ({hub.base}/{REPO}/commit/{head})."]
    assert done.head_commit == head and done.pull.number == pull.number


def test_through_the_api_the_reply_links_the_commit_github_made(
    hub, forge, writer_env, remote, tmp_path, pull
):
    asked = hub.add_review_comment(REPO, pull.number, "README.md", 4, "/codebot units")
    plan = answering(craft(tmp_path, remote), pull.number, asked.id)
    planned = json.loads((plan / "plan.json").read_text())["head_commit"]

    done = run_publish(plan, forge, {**writer_env, **VIA_API})

    head = git(remote, "rev-parse", BRANCH)
    assert head != planned and head in hub.verified_commits
    assert replies_to(hub, asked) == [f"Addressed in {head[:7]} ({hub.base}/{REPO}/commit/{head})."]
    assert done.head_commit == head


def test_publishing_the_same_plan_again_replies_once(
    hub, forge, writer_env, remote, tmp_path, pull
):
    asked = hub.add_review_comment(REPO, pull.number, "README.md", 4, "/codebot units")
    plan = answering(craft(tmp_path, remote), pull.number, asked.id)

    run_publish(plan, forge, {**writer_env, **VIA_API})
    run_publish(plan, forge, {**writer_env, **VIA_API})

    assert len(replies_to(hub, asked)) == 1


def test_with_nothing_to_push_the_reply_says_so_in_the_thread(
    hub, forge, writer_env, remote, tmp_path, pull
):
    asked = hub.add_review_comment(REPO, pull.number, "duration.py", 9, "/codebot check")
    said = "Nothing was pushed for this comment: nothing to change: it already passes."
    before = heads(remote)

    done = run_publish(reply_only(tmp_path, pull.number, asked.id, said), forge, writer_env)

    assert replies_to(hub, asked) == [said]
    assert heads(remote) == before and done.head_commit == ""


def test_the_reply_is_redacted_and_made_inert_again(hub, forge, writer_env, remote, tmp_path, pull):
    asked = hub.add_review_comment(REPO, pull.number, "README.md", 4, "/codebot units")
    plan = answering(craft(tmp_path, remote), pull.number, asked.id, ANSWER + " @octocat fixes #9")

    run_publish(plan, forge, writer_env)

    ((reply,),) = [replies_to(hub, asked)]
    assert reply.endswith(" @\u200boctocat f\u200bixes #9")


def test_a_publish_that_fails_says_why_in_the_thread_too(
    hub, forge, writer_env, remote, tmp_path, example_repo, pull
):
    git(example_repo, "checkout", "-q", "-b", BRANCH)
    (example_repo / "NOTES.md").write_text("a person's commit\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "a person pushed first")
    git(example_repo, "push", "-q", str(remote), BRANCH)
    asked = hub.add_review_comment(REPO, pull.number, "README.md", 4, "/codebot units")
    plan = answering(craft(tmp_path, remote), pull.number, asked.id)

    with pytest.raises(ForgeError, match="codebot never force-pushes"):
        run_publish(plan, forge, writer_env)

    (said,) = replies_to(hub, asked)
    assert said.startswith("⚠️ codebot did not publish its change: artifact branch.bundle:")


# --- what is refused ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "thread",
    [{"id": "7", "pull": 43}, {"id": True, "pull": 43}, {"id": 0, "pull": 43}, {"id": 7}, 7],
    ids=["text-id", "boolean-id", "zero-id", "no-pull", "bare-number"],
)
def test_a_review_comment_that_is_not_two_whole_ids_is_refused(
    hub, forge, writer_env, remote, tmp_path, pull, thread
):
    plan = answering(craft(tmp_path, remote), pull.number, 7)
    edit_plan(plan, review_comment=thread)

    match = r'artifact plan\.json: `review_comment` must be null or \{"id": N, "pull": N\}'
    refused(plan, forge, writer_env, remote, hub, match)


def test_a_review_comment_on_another_pr_than_the_plan_reports_to_is_refused(
    hub, forge, writer_env, remote, tmp_path, pull
):
    plan = answering(craft(tmp_path, remote), pull.number, 7, pull=pull.number + 1)

    match = rf"`review_comment` is on #{pull.number + 1}, not on #{pull.number} the plan reports"
    refused(plan, forge, writer_env, remote, hub, match)


def test_a_thread_on_a_pr_that_is_not_the_branchs_is_refused_before_the_push(
    hub, forge, writer_env, remote, tmp_path, pull
):
    other = forge.open_or_update_pr(
        REPO, head="codebot/other", base="main", title="Other", body="b", draft=False
    )
    asked = hub.add_review_comment(REPO, other.number, "README.md", 4, "/codebot units")
    plan = answering(craft(tmp_path, remote), other.number, asked.id)

    match = rf"`review_comment` is on #{other.number}, not the open pull request of {BRANCH}"
    refused(plan, forge, writer_env, remote, hub, match)


def test_a_review_comment_that_github_has_on_another_pr_gets_no_reply(
    hub, forge, writer_env, remote, tmp_path, pull
):
    other = forge.open_or_update_pr(
        REPO, head="codebot/other", base="main", title="Other", body="b", draft=False
    )
    elsewhere = hub.add_review_comment(REPO, other.number, "README.md", 4, "/codebot units")
    plan = answering(craft(tmp_path, remote), pull.number, elsewhere.id)

    match = (
        rf"review comment {elsewhere.id} is not on pull request {REPO}#{pull.number} "
        rf"\(GitHub has it on #{other.number}\); no reply was posted"
    )
    with pytest.raises(ForgeError, match=match):
        run_publish(plan, forge, writer_env)

    assert not reply_posts(hub) and not replies_to(hub, elsewhere)


def test_a_review_comment_other_than_the_events_is_refused(
    hub, forge, writer_env, remote, tmp_path, pull
):
    asked = hub.add_review_comment(REPO, pull.number, "README.md", 4, "/codebot units")
    plan = answering(craft(tmp_path, remote), pull.number, asked.id)
    env = {**writer_env, **review_event(tmp_path, pull.number, asked.id + 1000)}

    match = rf"`review_comment` {asked.id} is not this event's \(review comment {asked.id + 1000}\)"
    refused(plan, forge, env, remote, hub, match)


def test_the_events_own_review_comment_is_answered(hub, forge, writer_env, remote, tmp_path, pull):
    asked = hub.add_review_comment(REPO, pull.number, "README.md", 4, "/codebot units")
    plan = answering(craft(tmp_path, remote), pull.number, asked.id)
    env = {**writer_env, **review_event(tmp_path, pull.number, asked.id)}

    run_publish(plan, forge, env)

    assert len(replies_to(hub, asked)) == 1


@pytest.mark.parametrize("keep", ["reply.md", "review_comment"])
def test_a_reply_without_its_review_comment_or_the_other_way_is_refused(
    hub, forge, writer_env, remote, tmp_path, pull, keep
):
    plan = craft(tmp_path, remote)
    if keep == "reply.md":
        (plan / "reply.md").write_text(ANSWER)
        reseal(plan)
    else:
        edit_plan(plan, number=pull.number, review_comment={"id": 7, "pull": pull.number})

    match = r"artifact reply\.md: goes with a `review_comment` to answer, and only with one"
    refused(plan, forge, writer_env, remote, hub, match)


# --- the CLI and a whole run -------------------------------------------------------------------
def test_the_publish_job_outputs_the_commit_github_made(
    hub, forge, writer_env, remote, tmp_path, pull
):
    plan = craft(tmp_path, remote)
    output = tmp_path / "output"
    output.write_text("")
    env = {**writer_env, **VIA_API, "GITHUB_OUTPUT": str(output)}

    done = codebot(["publish", str(plan)], env, tmp_path)

    assert done.returncode == 0, done.stdout + done.stderr
    head = git(remote, "rev-parse", BRANCH)
    assert head in hub.verified_commits
    assert outputs(output)["head-commit"] == head
    assert f"commit:       {head}" in done.stderr + done.stdout


@pytest.fixture
def plan_env(hub, model_server):
    """The plan job's environment: the model key and a token (only ever used to read)."""
    return {**cli_env(model_server), "GITHUB_TOKEN": hub.token, "GITHUB_API_URL": hub.url}


@pytest.mark.docker
def test_a_planned_review_comment_follow_up_is_answered_in_its_thread_by_the_publish_job(
    hub, forge, plan_env, writer_env, model_server, remote, tmp_path
):
    _, first = plan_issue(forge, plan_env, tmp_path, model_server)
    opened = run_publish(first, forge, writer_env).pull
    asked = hub.add_review_comment(REPO, opened.number, "README.md", 4, "/codebot units", 3)
    review = ReviewContext("README.md", 4, README_HUNK, asked.id, start_line=3)
    model_server.script(README_EDIT)
    settings = cfg.with_flags(cfg.from_env(plan_env), runs_dir=tmp_path / "runs")
    artifact = tmp_path / "follow-up"
    artifact.mkdir()
    github_flow.run_followup(
        forge, REPO, opened.number, "document the units", settings, plan_env, review=review,
        artifact=artifact,
    )  # fmt: skip
    planned = json.loads((artifact / "plan.json").read_text())
    assert planned["review_comment"] == {"id": asked.id, "pull": opened.number}
    assert (artifact / "reply.md").read_text() == "Addressed in {commit}."
    assert not replies_to(hub, asked)

    done = run_publish(artifact, forge, {**writer_env, **VIA_API})

    head = git(remote, "rev-parse", BRANCH)
    assert head in hub.verified_commits and head != planned["head_commit"]
    assert replies_to(hub, asked) == [f"Addressed in {head[:7]} ({hub.base}/{REPO}/commit/{head})."]
    assert done.head_commit == head


def test_the_plan_job_writes_no_thread_for_a_run_without_a_review_comment(tmp_path):
    """The artifact keeps its exact shape: `review_comment` null and no reply.md."""
    out = tmp_path / "plan"
    out.mkdir()
    publish.write_artifact(out, publish.Plan(REPO, 42, comments=("hello",)))

    assert json.loads((out / "plan.json").read_text())["review_comment"] is None
    assert sorted(p.name for p in out.iterdir()) == ["comment-1.md", "manifest.json", "plan.json"]
    assert publish.read_artifact(out)[0].review_comment is None
