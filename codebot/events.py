"""Turn a GitHub Actions event into one reaction: run (`Trigger`), refuse politely, or ignore.

Pure apart from `load_event`: the payload is data in, a frozen value out, so every rule about
who may start the bot is testable without GitHub. Payloads are untrusted input; a missing key
is a `ConfigError` naming it, never a KeyError deep in the run. A little over 400 lines: the
CI events share the payload readers below, and splitting them off would duplicate those.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeAlias

from codebot.config import TRUSTED_ASSOCIATIONS, GitConfig
from codebot.errors import ConfigError

DEFAULT_LABEL = "codebot"

TriggerKind = Literal["issue", "pr_followup", "spec", "ci_followup"]
CiSource = Literal["workflow_run", "check_suite"]
_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")

# Case-insensitive like the workflow's startsWith() filter, so a "/Codebot" that passed the
# job filter is not silently dropped here.
_COMMAND = re.compile(r"/codebot(?=\s|$)", re.IGNORECASE)


@dataclass(frozen=True)
class ReviewContext:
    """Where a review comment sits in the PR diff, so the model sees what was pointed at.

    `line` is None when GitHub marks the comment outdated (its line left the diff).
    """

    path: str
    line: int | None
    diff_hunk: str
    comment_id: int
    start_line: int | None = None


@dataclass(frozen=True)
class Trigger:
    """A request the bot should act on. `number` is where replies go."""

    kind: TriggerKind
    repo: str
    actor: str
    issue_number: int | None = None
    pr_number: int | None = None
    instruction: str | None = None
    spec_path: str | None = None
    ref: str | None = None
    comment_id: int | None = None
    review: ReviewContext | None = None
    # A CI failure: the workflow run (or check suite) that failed, on which commit, and the
    # workflow's (or CI app's) name.
    ci_run_id: int | None = None
    ci_source: CiSource | None = None
    ci_name: str = ""
    head_sha: str | None = None

    @property
    def number(self) -> int | None:
        return self.pr_number if self.pr_number is not None else self.issue_number


@dataclass(frozen=True)
class Refusal:
    """A request from someone not allowed to start the bot; post `polite_message` at `number`."""

    actor: str
    reason: str
    polite_message: str
    repo: str = ""
    number: int | None = None


@dataclass(frozen=True)
class Ignore:
    """Not addressed to the bot (or from the bot itself); do nothing and say nothing."""

    reason: str


Reaction: TypeAlias = Trigger | Refusal | Ignore


def trigger_from_event(
    event_name: str,
    payload: Mapping[str, Any],
    *,
    allowed_associations: Collection[str] = TRUSTED_ASSOCIATIONS,
    label: str = DEFAULT_LABEL,
    branch_prefix: str = GitConfig.branch_prefix,
) -> Reaction:
    """Decide what `codebot action` does for this event.

    Order matters: bot comments and non-commands are ignored before authorization is checked,
    so the bot never answers itself and never replies to ordinary conversation.
    """
    if not isinstance(payload, Mapping):
        raise ConfigError(
            f"the `{event_name}` event payload is not a JSON object",
            "pass the file GitHub writes at GITHUB_EVENT_PATH",
        )
    allowed = frozenset(a.upper() for a in allowed_associations)
    if event_name == "issues":
        return _issue_labeled(payload, allowed, label)
    if event_name == "issue_comment":
        return _issue_comment(payload, allowed)
    if event_name == "pull_request_review_comment":
        return _review_comment(payload, allowed)
    if event_name == "workflow_dispatch":
        return _dispatch(payload)
    if event_name == "workflow_run":
        return _ci_failed("workflow_run", payload, branch_prefix)
    if event_name == "check_suite":
        return _ci_failed("check_suite", payload, branch_prefix)
    return Ignore(f"event `{event_name}` does not start codebot")


def _issue_labeled(p: Mapping[str, Any], allowed: frozenset[str], label: str) -> Reaction:
    """Adding a label needs triage permission, so the labeler is trusted, and the payload
    carries no association for the sender anyway. One exception: labels an issue template
    applies at creation are added by the issue's author whatever their permission, so when
    the labeler is the author, the author's own association decides."""
    ev = "issues"
    action = _req(p, "action", str, ev)
    if action != "labeled":
        return Ignore(f"issues.{action} does not start codebot")
    name = _req(p, "label.name", str, ev)
    if name.casefold() != label.casefold():
        return Ignore(f"label `{name}` is not `{label}`")
    repo = _req(p, "repository.full_name", str, ev)
    number = _req(p, "issue.number", int, ev)
    actor = _req(p, "sender.login", str, ev)
    if _req(p, "issue.state", str, ev) == "closed":
        return Ignore(f"issue #{number} is closed")
    if actor == _req(p, "issue.user.login", str, ev):
        association = _req(p, "issue.author_association", str, ev)
        if association.upper() not in allowed:
            return _refuse(actor, association, allowed, repo, number)
    return Trigger(kind="issue", repo=repo, actor=actor, issue_number=number)


def _issue_comment(p: Mapping[str, Any], allowed: frozenset[str]) -> Reaction:
    command = _comment_gate(p, "issue_comment", "issue", "#", allowed)
    if not isinstance(command, _Command):
        return command
    if p["issue"].get("pull_request") is None:
        return Trigger(
            kind="issue",
            repo=command.repo,
            actor=command.actor,
            issue_number=command.number,
            instruction=command.instruction,
            comment_id=command.comment_id,
        )
    return _followup(command)


def _review_comment(p: Mapping[str, Any], allowed: frozenset[str]) -> Reaction:
    ev = "pull_request_review_comment"
    command = _comment_gate(p, ev, "pull_request", "pull request #", allowed)
    if not isinstance(command, _Command):
        return command
    if command.instruction is None:  # refused before the diff position is read
        return _followup(command)
    comment = p["comment"]
    review = ReviewContext(
        path=_req(p, "comment.path", str, ev),
        line=_opt_int(comment, "line") or _opt_int(comment, "original_line"),
        diff_hunk=_req(p, "comment.diff_hunk", str, ev),
        comment_id=command.comment_id,
        start_line=_opt_int(comment, "start_line"),
    )
    return _followup(command, review)


def _followup(command: _Command, review: ReviewContext | None = None) -> Reaction:
    """A command on a pull request: more work on its branch, which needs an instruction."""
    if command.instruction is None:
        return _needs_instruction(command.actor, command.repo, command.number)
    return Trigger(
        kind="pr_followup",
        repo=command.repo,
        actor=command.actor,
        pr_number=command.number,
        instruction=command.instruction,
        comment_id=command.comment_id,
        review=review,
    )


def _dispatch(p: Mapping[str, Any]) -> Reaction:
    """Dispatching a workflow needs write access, so the dispatcher is trusted."""
    ev = "workflow_dispatch"
    spec = _req(p, "inputs.spec", str, ev).strip()
    path = PurePosixPath(spec)
    if not spec or path.is_absolute() or ".." in path.parts:
        raise ConfigError(
            f"workflow_dispatch input `spec` must be a path inside the repository (got {spec!r})",
            "pass a relative path such as specs/examples/fix-bug.yml",
        )
    ref = p.get("ref")
    return Trigger(
        kind="spec",
        repo=_req(p, "repository.full_name", str, ev),
        actor=_req(p, "sender.login", str, ev),
        spec_path=spec,
        ref=ref if isinstance(ref, str) and ref else None,
    )


def _ci_failed(ev: CiSource, p: Mapping[str, Any], prefix: str) -> Reaction:
    """CI that failed on codebot's own branch with its open PR: a follow-up nobody has to
    ask for. Never a Refusal: no person asked, so there is nobody to answer. Forks are out:
    their code is not codebot's to push to, and their CI is not its business."""
    if (action := _req(p, "action", str, ev)) != "completed":
        return Ignore(f"{ev}.{action} does not start codebot")
    node = _req(p, ev, Mapping, ev)
    if (conclusion := node.get("conclusion")) != "failure":
        return Ignore(f"{ev} concluded {conclusion}, not failure")
    app = node.get("app")
    if ev == "check_suite" and _opt_str(app, "slug") == "github-actions":
        return Ignore("GitHub Actions failures are followed through workflow_run events")
    branch = node.get("head_branch")
    if not isinstance(branch, str) or not branch.startswith(prefix):
        return Ignore(f"{ev} on branch {branch!r}, not one of codebot's ({prefix}*)")
    repo = _req(p, "repository.full_name", str, ev)
    if ev == "workflow_run" and _opt_str(node.get("head_repository"), "full_name") != repo:
        return Ignore(f"{ev} on a fork's branch {branch}")
    number = _own_pull(node.get("pull_requests"), branch, _req(p, "repository.id", int, ev))
    if number is None:
        return Ignore(f"{ev} on {branch} has no open pull request from {repo} itself")
    sha = _req(p, f"{ev}.head_sha", str, ev)
    if not _SHA.fullmatch(sha):
        raise ConfigError(f"the `{ev}` event payload has a malformed head_sha {sha[:80]!r}", "")
    name = node.get("name") if ev == "workflow_run" else _opt_str(app, "name")
    return Trigger(
        kind="ci_followup",
        repo=repo,
        actor=_req(p, "sender.login", str, ev),
        pr_number=number,
        ci_run_id=_req(p, f"{ev}.id", int, ev),
        ci_source=ev,
        ci_name=name if isinstance(name, str) else "",
        head_sha=sha,
    )


def _own_pull(pulls: object, branch: str, repo_id: int) -> int | None:
    """The number of the PR from `branch` whose head and base are both this repository."""
    for pull in pulls if isinstance(pulls, list) else []:
        if not isinstance(pull, Mapping):
            continue
        head, base = pull.get("head"), pull.get("base")
        ends = [_opt_int(_map(_map(end).get("repo")), "id") for end in (head, base)]
        if _map(head).get("ref") == branch and ends == [repo_id, repo_id]:
            return _opt_int(pull, "number")
    return None


@dataclass(frozen=True)
class _Command:
    """A /codebot comment that passed the gate; `instruction` is None for a bare command."""

    repo: str
    number: int
    actor: str
    instruction: str | None
    comment_id: int


def _comment_gate(
    p: Mapping[str, Any], ev: str, on: str, named: str, allowed: frozenset[str]
) -> _Command | Reaction:
    """What every comment event passes before it may run: a new /codebot command by a
    person, on an open issue or PR (`on`), from an allowed association. The command when
    it passes; else what to do instead."""
    skip = _skip_comment(p, ev)
    if skip is not None:
        return skip
    repo = _req(p, "repository.full_name", str, ev)
    number = _req(p, f"{on}.number", int, ev)
    actor = _req(p, "comment.user.login", str, ev)
    if _req(p, f"{on}.state", str, ev) == "closed":
        return Ignore(f"{named}{number} is closed")
    association = _req(p, "comment.author_association", str, ev)
    if association.upper() not in allowed:
        return _refuse(actor, association, allowed, repo, number)
    instruction = parse_command(_req(p, "comment.body", str, ev)) or None
    return _Command(repo, number, actor, instruction, _req(p, "comment.id", int, ev))


def _skip_comment(p: Mapping[str, Any], ev: str) -> Ignore | None:
    """Comments the bot must not answer: edits and deletions, its own, and non-commands."""
    action = _req(p, "action", str, ev)
    if action != "created":
        return Ignore(f"{ev}.{action} does not start codebot")
    login = _req(p, "comment.user.login", str, ev)
    sender = p.get("sender")
    sender_type = sender.get("type") if isinstance(sender, Mapping) else None
    if sender_type == "Bot" or p["comment"]["user"].get("type") == "Bot" or login.endswith("[bot]"):
        return Ignore(f"comment by bot `{login}`")
    if parse_command(_req(p, "comment.body", str, ev)) is None:
        return Ignore("comment does not start with /codebot")
    return None


def parse_command(body: str) -> str | None:
    """The text after a leading `/codebot` ("" when bare), or None when the comment does not
    start with it: a quoted or mid-text mention is conversation, not a command."""
    text = body.replace("\r\n", "\n").lstrip()
    match = _COMMAND.match(text)
    return text[match.end() :].strip() if match else None


def _refuse(
    actor: str, association: str, allowed: frozenset[str], repo: str, number: int
) -> Refusal:
    who = ", ".join(sorted(a.lower() for a in allowed)) or "nobody"
    return Refusal(
        actor=actor,
        reason=f"author_association {association} is not one of {sorted(allowed)}",
        polite_message=(
            f"Thanks for the request, @{actor}! codebot only takes instructions from "
            f"repository roles it has been configured to trust ({who}), so it will not act "
            "on this one. A maintainer can start it by commenting `/codebot <instruction>` "
            "or by adding the label to the issue."
        ),
        repo=repo,
        number=number,
    )


def _needs_instruction(actor: str, repo: str, number: int) -> Refusal:
    return Refusal(
        actor=actor,
        reason="/codebot on a pull request without an instruction",
        polite_message=(
            f"@{actor}, tell me what to change on this pull request, for example "
            "`/codebot rename the helper and update its tests`."
        ),
        repo=repo,
        number=number,
    )


def _req(payload: Mapping[str, Any], dotted: str, kind: type[Any], event: str) -> Any:
    """The value at `dotted` (e.g. "comment.user.login"), or a ConfigError naming the key."""
    node: Any = payload
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise ConfigError(
                f"the `{event}` event payload has no `{dotted}`",
                "run codebot on the payload GitHub sends (GITHUB_EVENT_PATH), not a hand-made one",
            )
        node = node[part]
    # bool is an int subclass; a true/false where a number belongs is malformed too.
    if not isinstance(node, kind) or (kind is int and isinstance(node, bool)):
        raise ConfigError(
            f"the `{event}` event payload has `{dotted}` of type {type(node).__name__}, "
            f"expected {kind.__name__}",
            "run codebot on the payload GitHub sends (GITHUB_EVENT_PATH)",
        )
    return node


def _opt_int(node: Mapping[str, Any], key: str) -> int | None:
    value = node.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _map(node: object) -> Mapping[str, Any]:
    return node if isinstance(node, Mapping) else {}


def _opt_str(node: object, key: str) -> str | None:
    value = node.get(key) if isinstance(node, Mapping) else None
    return value if isinstance(value, str) else None


def load_event(env: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """Read the event name and payload GitHub Actions provides to every job."""
    outside = "run `codebot action` inside a GitHub Actions job (or set both variables)"
    name = env.get("GITHUB_EVENT_NAME", "").strip()
    if not name:
        raise ConfigError("GITHUB_EVENT_NAME is not set", outside)
    raw_path = env.get("GITHUB_EVENT_PATH", "").strip()
    if not raw_path:
        raise ConfigError("GITHUB_EVENT_PATH is not set", outside)
    path = Path(raw_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the event payload at GITHUB_EVENT_PATH={path} ({exc.strerror})",
            "point GITHUB_EVENT_PATH at the JSON file GitHub wrote for this job",
        ) from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: event payload is not valid JSON (line {exc.lineno}: {exc.msg})",
            "point GITHUB_EVENT_PATH at the JSON file GitHub wrote for this job",
        ) from None
    if not isinstance(payload, dict):
        raise ConfigError(
            f"{path}: event payload must be a JSON object, got {type(payload).__name__}",
            "point GITHUB_EVENT_PATH at the JSON file GitHub wrote for this job",
        )
    return name, payload
