"""codebot.events: which GitHub events start the bot, for whom, and with what instruction."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from codebot.errors import ConfigError
from codebot.events import (
    Ignore,
    Refusal,
    ReviewContext,
    Trigger,
    load_event,
    parse_command,
    trigger_from_event,
)

FIXTURES = Path(__file__).parent / "fixtures" / "events"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def comment_on_issue(body: str, association: str = "COLLABORATOR") -> dict[str, Any]:
    payload = fixture("issue_comment_on_issue")
    payload["comment"]["body"] = body
    payload["comment"]["author_association"] = association
    return payload


def without(payload: dict[str, Any], dotted: str) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    *parents, last = dotted.split(".")
    node = out
    for part in parents:
        node = node[part]
    del node[last]
    return out


# issues: labeled


def test_label_added_by_maintainer_starts_an_issue_run() -> None:
    decision = trigger_from_event("issues", fixture("issues_labeled"))

    assert decision == Trigger(
        kind="issue", repo="octo-org/hello-app", actor="mona", issue_number=42
    )


def test_labeled_issue_trigger_has_no_instruction() -> None:
    decision = trigger_from_event("issues", fixture("issues_labeled"))

    assert isinstance(decision, Trigger)
    assert decision.instruction is None
    assert decision.number == 42


def test_issue_authors_association_does_not_block_a_maintainers_label() -> None:
    payload = fixture("issues_labeled")
    assert payload["issue"]["author_association"] == "NONE"

    assert isinstance(trigger_from_event("issues", payload), Trigger)


def test_other_label_is_ignored() -> None:
    payload = fixture("issues_labeled")
    payload["label"]["name"] = "bug"

    assert isinstance(trigger_from_event("issues", payload), Ignore)


def test_label_match_ignores_case_like_github_expressions() -> None:
    payload = fixture("issues_labeled")
    payload["label"]["name"] = "CodeBot"

    assert isinstance(trigger_from_event("issues", payload), Trigger)


def test_configured_label_replaces_the_default() -> None:
    payload = fixture("issues_labeled")
    payload["label"]["name"] = "ai-fix"

    assert isinstance(trigger_from_event("issues", payload, label="ai-fix"), Trigger)
    assert isinstance(trigger_from_event("issues", payload), Ignore)


def test_unlabeled_action_is_ignored() -> None:
    payload = fixture("issues_labeled")
    payload["action"] = "unlabeled"

    assert isinstance(trigger_from_event("issues", payload), Ignore)


def test_opened_action_is_ignored_even_with_the_label() -> None:
    payload = fixture("issues_labeled")
    payload["action"] = "opened"

    assert isinstance(trigger_from_event("issues", payload), Ignore)


def test_label_applied_by_an_untrusted_author_is_refused() -> None:
    # Issue templates apply their labels on behalf of the author, whatever their permission.
    payload = fixture("issues_labeled")
    payload["sender"] = payload["issue"]["user"]

    decision = trigger_from_event("issues", payload)

    assert isinstance(decision, Refusal)
    assert decision.actor == "drive-by"
    assert decision.number == 42


def test_label_applied_by_a_trusted_author_starts_a_run() -> None:
    payload = fixture("issues_labeled")
    payload["sender"] = payload["issue"]["user"]
    payload["issue"]["author_association"] = "MEMBER"

    assert isinstance(trigger_from_event("issues", payload), Trigger)


def test_label_on_closed_issue_is_ignored() -> None:
    payload = fixture("issues_labeled")
    payload["issue"]["state"] = "closed"

    assert isinstance(trigger_from_event("issues", payload), Ignore)


# issue_comment: created


def test_command_on_issue_starts_issue_run_with_the_instruction() -> None:
    decision = trigger_from_event("issue_comment", fixture("issue_comment_on_issue"))

    assert decision == Trigger(
        kind="issue",
        repo="octo-org/hello-app",
        actor="hubot-dev",
        issue_number=42,
        instruction="also keep the old signature working",
        comment_id=2090000001,
    )


def test_bare_command_on_issue_starts_run_without_instruction() -> None:
    decision = trigger_from_event("issue_comment", comment_on_issue("/codebot"))

    assert isinstance(decision, Trigger)
    assert decision.kind == "issue"
    assert decision.instruction is None


def test_command_on_pr_starts_followup_with_the_instruction() -> None:
    decision = trigger_from_event("issue_comment", fixture("issue_comment_on_pr"))

    assert decision == Trigger(
        kind="pr_followup",
        repo="octo-org/hello-app",
        actor="mona",
        pr_number=57,
        instruction="rename `greet` to `welcome` and update the tests",
        comment_id=2090000002,
    )


def test_multiline_instruction_is_kept_whole() -> None:
    payload = fixture("issue_comment_on_pr")
    payload["comment"]["body"] = "/codebot\r\nfirst do this\r\nthen that"

    decision = trigger_from_event("issue_comment", payload)

    assert isinstance(decision, Trigger)
    assert decision.instruction == "first do this\nthen that"


def test_bare_command_on_pr_asks_politely_for_an_instruction() -> None:
    payload = fixture("issue_comment_on_pr")
    payload["comment"]["body"] = "/codebot   "

    decision = trigger_from_event("issue_comment", payload)

    assert isinstance(decision, Refusal)
    assert decision.number == 57
    assert "/codebot" in decision.polite_message


def test_comment_without_the_command_is_ignored() -> None:
    payload = comment_on_issue("Thanks, /codebot looks useful here")

    assert isinstance(trigger_from_event("issue_comment", payload), Ignore)


def test_command_must_be_a_whole_word() -> None:
    payload = comment_on_issue("/codebotany do things")

    assert isinstance(trigger_from_event("issue_comment", payload), Ignore)


def test_command_ignores_case_like_the_workflow_filter() -> None:
    decision = trigger_from_event("issue_comment", comment_on_issue("/Codebot fix it"))

    assert isinstance(decision, Trigger)
    assert decision.instruction == "fix it"


def test_edited_comment_is_ignored() -> None:
    payload = fixture("issue_comment_on_issue")
    payload["action"] = "edited"

    assert isinstance(trigger_from_event("issue_comment", payload), Ignore)


def test_command_on_closed_issue_is_ignored() -> None:
    payload = fixture("issue_comment_on_issue")
    payload["issue"]["state"] = "closed"

    assert isinstance(trigger_from_event("issue_comment", payload), Ignore)


# Authorization


def test_untrusted_commenter_is_refused_with_a_polite_message() -> None:
    decision = trigger_from_event("issue_comment", fixture("issue_comment_untrusted"))

    assert isinstance(decision, Refusal)
    assert decision.actor == "drive-by"
    assert "NONE" in decision.reason
    assert "@drive-by" in decision.polite_message
    assert (decision.repo, decision.number) == ("octo-org/hello-app", 42)


@pytest.mark.parametrize("association", ["OWNER", "MEMBER", "COLLABORATOR"])
def test_default_allow_list_accepts_owners_members_collaborators(association: str) -> None:
    payload = comment_on_issue("/codebot go", association)

    assert isinstance(trigger_from_event("issue_comment", payload), Trigger)


@pytest.mark.parametrize("association", ["CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "NONE"])
def test_default_allow_list_refuses_contributors_and_strangers(association: str) -> None:
    payload = comment_on_issue("/codebot go", association)

    assert isinstance(trigger_from_event("issue_comment", payload), Refusal)


def test_allow_list_can_be_narrowed() -> None:
    payload = comment_on_issue("/codebot go", "COLLABORATOR")

    decision = trigger_from_event("issue_comment", payload, allowed_associations=("OWNER",))

    assert isinstance(decision, Refusal)


def test_untrusted_comment_without_the_command_is_ignored_not_refused() -> None:
    payload = fixture("issue_comment_untrusted")
    payload["comment"]["body"] = "Any news on this?"

    assert isinstance(trigger_from_event("issue_comment", payload), Ignore)


# The /codebot command itself


@pytest.mark.parametrize(
    ("comment", "instruction"),
    [
        ("/codebot fix the flaky test", "fix the flaky test"),
        ("  /codebot\r\nplease also update the docs\r\n", "please also update the docs"),
        ("/codebot", ""),
        ("/Codebot retry", "retry"),
    ],
)
def test_command_text_is_what_follows_a_leading_codebot(comment: str, instruction: str) -> None:
    assert parse_command(comment) == instruction


@pytest.mark.parametrize(
    "comment",
    ["Thanks! /codebot later", "> /codebot fix it", "/codebotx run", "/code bot", ""],
)
def test_comment_not_starting_with_codebot_is_not_a_command(comment: str) -> None:
    assert parse_command(comment) is None


# The bot's own comments


def test_bot_comment_is_ignored() -> None:
    decision = trigger_from_event("issue_comment", fixture("issue_comment_bot"))

    assert isinstance(decision, Ignore)
    assert "bot" in decision.reason


def test_comment_from_login_ending_in_bot_suffix_is_ignored() -> None:
    payload = fixture("issue_comment_on_pr")
    payload["comment"]["user"]["login"] = "my-app[bot]"

    assert isinstance(trigger_from_event("issue_comment", payload), Ignore)


def test_comment_sent_by_bot_sender_is_ignored() -> None:
    payload = fixture("issue_comment_on_pr")
    payload["sender"]["type"] = "Bot"

    assert isinstance(trigger_from_event("issue_comment", payload), Ignore)


# pull_request_review_comment: created


def test_review_comment_starts_followup_with_its_diff_context() -> None:
    payload = fixture("pull_request_review_comment")

    decision = trigger_from_event("pull_request_review_comment", payload)

    assert isinstance(decision, Trigger)
    assert (decision.kind, decision.pr_number, decision.actor) == ("pr_followup", 57, "mona")
    assert decision.instruction == "use `name.strip()` so whitespace-only names count as empty"
    assert decision.review == ReviewContext(
        path="hello/greet.py",
        line=3,
        diff_hunk=payload["comment"]["diff_hunk"],
        comment_id=1590000001,
        start_line=2,
    )


def test_outdated_review_comment_falls_back_to_its_original_line() -> None:
    payload = fixture("pull_request_review_comment")
    payload["comment"]["line"] = None
    payload["comment"]["original_line"] = 5

    decision = trigger_from_event("pull_request_review_comment", payload)

    assert isinstance(decision, Trigger)
    assert decision.review is not None
    assert decision.review.line == 5


def test_untrusted_review_commenter_is_refused() -> None:
    payload = fixture("pull_request_review_comment")
    payload["comment"]["author_association"] = "CONTRIBUTOR"

    assert isinstance(trigger_from_event("pull_request_review_comment", payload), Refusal)


def test_review_comment_on_closed_pr_is_ignored() -> None:
    payload = fixture("pull_request_review_comment")
    payload["pull_request"]["state"] = "closed"

    assert isinstance(trigger_from_event("pull_request_review_comment", payload), Ignore)


def test_review_comment_without_the_command_is_ignored() -> None:
    payload = fixture("pull_request_review_comment")
    payload["comment"]["body"] = "nit: trailing space"

    assert isinstance(trigger_from_event("pull_request_review_comment", payload), Ignore)


# workflow_dispatch


def test_dispatch_with_spec_input_starts_a_spec_run() -> None:
    decision = trigger_from_event("workflow_dispatch", fixture("workflow_dispatch"))

    assert decision == Trigger(
        kind="spec",
        repo="octo-org/hello-app",
        actor="mona",
        spec_path="specs/examples/greet-empty-name.yml",
        ref="refs/heads/main",
    )


@pytest.mark.parametrize("spec", ["", "/etc/passwd", "../other/spec.yml", "specs/../../x.yml"])
def test_dispatch_spec_outside_the_repository_is_a_config_error(spec: str) -> None:
    payload = fixture("workflow_dispatch")
    payload["inputs"]["spec"] = spec

    with pytest.raises(ConfigError, match="spec"):
        trigger_from_event("workflow_dispatch", payload)


def test_dispatch_without_spec_input_names_the_key() -> None:
    payload = without(fixture("workflow_dispatch"), "inputs.spec")

    with pytest.raises(ConfigError, match=r"`inputs\.spec`"):
        trigger_from_event("workflow_dispatch", payload)


# CI that failed on codebot's PR: workflow_run and check_suite


BRANCH = "codebot/issue-42-support-minutes-in-parse-duration"
SHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"


def test_failed_workflow_run_on_codebots_pr_starts_a_ci_follow_up() -> None:
    decision = trigger_from_event("workflow_run", fixture("workflow_run_failed"))

    assert decision == Trigger(
        kind="ci_followup",
        repo="octo-org/hello-app",
        actor="github-actions[bot]",
        pr_number=57,
        ci_run_id=9876543210,
        ci_source="workflow_run",
        ci_name="CI",
        head_sha=SHA,
    )
    assert decision.number == 57


def test_failed_check_suite_of_another_ci_starts_a_ci_follow_up() -> None:
    decision = trigger_from_event("check_suite", fixture("check_suite_failed"))

    assert isinstance(decision, Trigger)
    assert (decision.kind, decision.pr_number, decision.ci_run_id) == (
        "ci_followup",
        57,
        24170000777,
    )
    assert (decision.ci_source, decision.ci_name, decision.head_sha) == (
        "check_suite",
        "CircleCI Checks",
        SHA,
    )


CI_EVENTS = [("workflow_run", "workflow_run_failed"), ("check_suite", "check_suite_failed")]


@pytest.mark.parametrize(("event", "name"), CI_EVENTS)
@pytest.mark.parametrize("conclusion", ["success", "cancelled", "skipped", "neutral", None])
def test_ci_that_did_not_fail_is_ignored(event: str, name: str, conclusion: str | None) -> None:
    payload = fixture(name)
    payload[event]["conclusion"] = conclusion

    decision = trigger_from_event(event, payload)

    assert isinstance(decision, Ignore)
    assert f"concluded {conclusion}" in decision.reason


@pytest.mark.parametrize(("event", "name"), CI_EVENTS)
@pytest.mark.parametrize("action", ["requested", "in_progress", "rerequested"])
def test_ci_that_has_not_completed_is_ignored(event: str, name: str, action: str) -> None:
    payload = fixture(name)
    payload["action"] = action

    assert isinstance(trigger_from_event(event, payload), Ignore)


@pytest.mark.parametrize(("event", "name"), CI_EVENTS)
@pytest.mark.parametrize("branch", ["main", "feature/codebot/x", "Codebot/issue-1", None])
def test_ci_failure_on_a_branch_outside_the_prefix_is_ignored(
    event: str, name: str, branch: str | None
) -> None:
    payload = fixture(name)
    payload[event]["head_branch"] = branch

    decision = trigger_from_event(event, payload)

    assert isinstance(decision, Ignore)
    assert "not one of codebot's (codebot/*)" in decision.reason


def test_configured_branch_prefix_decides_which_branches_are_codebots() -> None:
    payload = fixture("workflow_run_failed")
    payload["workflow_run"]["head_branch"] = "bots/fix-1"
    payload["workflow_run"]["pull_requests"][0]["head"]["ref"] = "bots/fix-1"

    assert isinstance(trigger_from_event("workflow_run", payload, branch_prefix="bots/"), Trigger)
    assert isinstance(trigger_from_event("workflow_run", payload), Ignore)


def test_workflow_run_on_a_forks_branch_is_ignored() -> None:
    payload = fixture("workflow_run_failed")
    fork = payload["workflow_run"]["head_repository"]
    fork["full_name"], fork["id"] = "mallory/hello-app", 99
    payload["workflow_run"]["pull_requests"] = []  # GitHub lists none for a fork's PR

    decision = trigger_from_event("workflow_run", payload)

    assert isinstance(decision, Ignore)
    assert "fork" in decision.reason


@pytest.mark.parametrize(("event", "name"), CI_EVENTS)
def test_ci_failure_whose_pull_request_comes_from_a_fork_is_ignored(event: str, name: str) -> None:
    payload = fixture(name)
    payload[event]["pull_requests"][0]["head"]["repo"]["id"] = 99  # same branch name, a fork

    decision = trigger_from_event(event, payload)

    assert isinstance(decision, Ignore)
    assert "no open pull request" in decision.reason


@pytest.mark.parametrize(("event", "name"), CI_EVENTS)
def test_ci_failure_without_a_pull_request_is_ignored(event: str, name: str) -> None:
    payload = fixture(name)
    payload[event]["pull_requests"] = []

    assert isinstance(trigger_from_event(event, payload), Ignore)


def test_pull_request_listed_for_another_head_branch_does_not_count() -> None:
    payload = fixture("workflow_run_failed")
    payload["workflow_run"]["pull_requests"][0]["head"]["ref"] = "codebot/other"

    assert isinstance(trigger_from_event("workflow_run", payload), Ignore)


def test_check_suite_of_github_actions_is_left_to_workflow_run() -> None:
    payload = fixture("check_suite_failed")
    payload["check_suite"]["app"]["slug"] = "github-actions"

    decision = trigger_from_event("check_suite", payload)

    assert isinstance(decision, Ignore)
    assert "workflow_run" in decision.reason


@pytest.mark.parametrize(("event", "name"), CI_EVENTS)
def test_ci_failure_is_never_refused_whoever_sent_it(event: str, name: str) -> None:
    payload = fixture(name)
    payload["sender"] = {"login": "drive-by", "type": "User"}

    assert isinstance(trigger_from_event(event, payload, allowed_associations=()), Trigger)


@pytest.mark.parametrize(
    ("event", "name", "key"),
    [
        ("workflow_run", "workflow_run_failed", "workflow_run.id"),
        ("workflow_run", "workflow_run_failed", "workflow_run.head_sha"),
        ("workflow_run", "workflow_run_failed", "repository.id"),
        ("check_suite", "check_suite_failed", "check_suite.id"),
        ("check_suite", "check_suite_failed", "sender.login"),
    ],
)
def test_ci_payload_missing_a_key_is_a_config_error_naming_it(
    event: str, name: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=f"`{key}`"):
        trigger_from_event(event, without(fixture(name), key))


def test_ci_payload_with_a_malformed_head_sha_is_a_config_error() -> None:
    payload = fixture("workflow_run_failed")
    payload["workflow_run"]["head_sha"] = "HEAD; rm -rf /"

    with pytest.raises(ConfigError, match="malformed head_sha"):
        trigger_from_event("workflow_run", payload)


def test_malformed_pull_request_entries_are_skipped_not_trusted() -> None:
    payload = fixture("workflow_run_failed")
    good = payload["workflow_run"]["pull_requests"][0]
    payload["workflow_run"]["pull_requests"] = ["57", {"number": 58}, {**good, "head": "x"}, good]

    decision = trigger_from_event("workflow_run", payload)

    assert isinstance(decision, Trigger) and decision.pr_number == 57


# Other events and malformed payloads


@pytest.mark.parametrize("event", ["push", "pull_request", "schedule"])
def test_other_events_are_ignored(event: str) -> None:
    decision = trigger_from_event(event, {"repository": {"full_name": "octo-org/hello-app"}})

    assert isinstance(decision, Ignore)
    assert event in decision.reason


@pytest.mark.parametrize(
    ("event", "name", "key"),
    [
        ("issues", "issues_labeled", "action"),
        ("issues", "issues_labeled", "label.name"),
        ("issues", "issues_labeled", "issue.number"),
        ("issues", "issues_labeled", "sender.login"),
        ("issues", "issues_labeled", "repository.full_name"),
        ("issue_comment", "issue_comment_on_issue", "comment.body"),
        ("issue_comment", "issue_comment_on_issue", "comment.user"),
        ("issue_comment", "issue_comment_on_issue", "comment.author_association"),
        ("issue_comment", "issue_comment_on_pr", "issue"),
        ("pull_request_review_comment", "pull_request_review_comment", "comment.path"),
        ("pull_request_review_comment", "pull_request_review_comment", "comment.diff_hunk"),
        ("pull_request_review_comment", "pull_request_review_comment", "pull_request.number"),
    ],
)
def test_missing_key_is_a_config_error_naming_it(event: str, name: str, key: str) -> None:
    payload = without(fixture(name), key)

    with pytest.raises(ConfigError) as info:
        trigger_from_event(event, payload)

    assert f"`{key}" in info.value.cause
    assert event in info.value.cause


def test_value_of_wrong_type_is_a_config_error_naming_it() -> None:
    payload = fixture("issue_comment_on_issue")
    payload["issue"]["number"] = "42"

    with pytest.raises(ConfigError, match=r"`issue\.number` of type str, expected int"):
        trigger_from_event("issue_comment", payload)


def test_payload_that_is_not_an_object_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a JSON object"):
        trigger_from_event("issues", [])  # type: ignore[arg-type]


def test_trigger_is_frozen() -> None:
    decision = trigger_from_event("issues", fixture("issues_labeled"))
    assert isinstance(decision, Trigger)

    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.actor = "someone-else"  # type: ignore[misc]


def test_trigger_serialises_to_json_with_its_review_context() -> None:
    payload = fixture("pull_request_review_comment")
    decision = trigger_from_event("pull_request_review_comment", payload)

    data = json.loads(json.dumps(dataclasses.asdict(decision)))

    assert data["review"]["path"] == "hello/greet.py"


# load_event


def test_load_event_reads_name_and_payload() -> None:
    path = FIXTURES / "issues_labeled.json"

    name, payload = load_event({"GITHUB_EVENT_NAME": "issues", "GITHUB_EVENT_PATH": str(path)})

    assert name == "issues"
    assert payload == fixture("issues_labeled")


def test_load_event_without_event_name_says_where_to_run() -> None:
    with pytest.raises(ConfigError, match="GITHUB_EVENT_NAME is not set") as info:
        load_event({"GITHUB_EVENT_PATH": str(FIXTURES / "issues_labeled.json")})

    assert "GitHub Actions" in info.value.fix


def test_load_event_without_event_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="GITHUB_EVENT_PATH is not set"):
        load_event({"GITHUB_EVENT_NAME": "issues"})


def test_load_event_with_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "event.json"

    with pytest.raises(ConfigError, match="cannot read") as info:
        load_event({"GITHUB_EVENT_NAME": "issues", "GITHUB_EVENT_PATH": str(missing)})

    assert str(missing) in info.value.cause


def test_load_event_with_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text('{\n  "action": "labeled",\n  oops\n}\n', encoding="utf-8")

    with pytest.raises(ConfigError, match="not valid JSON \\(line 3"):
        load_event({"GITHUB_EVENT_NAME": "issues", "GITHUB_EVENT_PATH": str(path)})


def test_load_event_with_non_object_json_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "event.json"
    path.write_text("[1, 2]", encoding="utf-8")

    with pytest.raises(ConfigError, match="must be a JSON object, got list"):
        load_event({"GITHUB_EVENT_NAME": "issues", "GITHUB_EVENT_PATH": str(path)})
