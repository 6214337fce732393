"""Runs on GitHub: an issue, a follow-up on the bot's PR, or a spec, to one pushed branch and
one pull request; and the dispatch of a GitHub Actions event.

The branch is always a codebot branch, never the default or a protected one, and is pushed
(or its commits made through the GitHub API, codebot.gitapi) without force. Everything sent
to GitHub (PR body, comments, review replies) passes through the redactor.
With an artifact directory a run is only planned (read-only; `codebot publish` writes it).
Longer than our usual module: the one-job run and its plan half share every stage here, so
they cannot drift apart.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from codebot import ci_followup, gitapi, pr_history, prompts, prose, publish, report, stops
from codebot import config as cfg
from codebot.configure import preflight, with_overrides
from codebot.detect import detect_from
from codebot.errors import CodebotError, ConfigError, ForgeError
from codebot.events import Ignore, Refusal, ReviewContext, Trigger, load_event, trigger_from_event
from codebot.forge import GitHubForge
from codebot.issue_spec import spec_from_issue
from codebot.protocols import Forge
from codebot.records import IssueInfo, PullInfo, RepoInfo, RunRecord
from codebot.redact import Redactor
from codebot.runner import Event, solve
from codebot.spec import TaskSpec, parse_spec, slugify, spec_from_data
from codebot.workspace import Workspace, remote_branches

LOCK_LABEL = "codebot:running"
SpecFor = Callable[[Workspace, cfg.Settings], TaskSpec]


@dataclass(frozen=True)
class GitHubOutcome:
    """What a GitHub run ended in. `stop_reason` is the record's, or refused / ignored."""

    stop_reason: str
    record: RunRecord | None = None
    files: report.RunFiles | None = None
    pull: PullInfo | None = None
    message: str = ""
    artifact: Path | None = None  # where a plan went (`--artifact`), for `codebot publish`


@dataclass(frozen=True)
class Target:
    """Where a run works (`branch`) and where it reports (`number`, an issue or PR, and the
    review comment that asked for it, whose thread gets a reply)."""

    repo: str
    number: int
    branch: str
    title: str
    closes: int | None
    review_comment: int | None = None


def run_issue(
    forge: Forge,
    full_name: str,
    number: int,
    settings: cfg.Settings,
    env: Mapping[str, str],
    on_event: Event = lambda _: None,
    instruction: str | None = None,
    artifact: Path | None = None,
) -> GitHubOutcome:
    """An issue to a branch and one PR; with `artifact`, only the plan of them (read-only)."""
    issue = forge.issue(full_name, number)
    if issue.is_pull_request:
        raise ConfigError(
            f"{full_name}#{number} is a pull request", "comment `/codebot <instruction>` on it"
        )
    if issue.state != "open":
        raise ConfigError(f"issue {full_name}#{number} is closed", "reopen it to run codebot")
    repo = forge.repo(full_name)
    branch = _issue_branch(repo, number, issue.title, settings, env.get("GITHUB_TOKEN"))
    target = Target(full_name, number, branch, issue.title, number)
    spec_for = partial(_issue_spec, issue, instruction)
    return _run_remote(forge, repo, target, spec_for, settings, env, on_event, artifact)


def run_followup(
    forge: Forge,
    full_name: str,
    pr_number: int,
    instruction: str,
    settings: cfg.Settings,
    env: Mapping[str, str],
    on_event: Event = lambda _: None,
    review: ReviewContext | None = None,
    artifact: Path | None = None,
) -> GitHubOutcome:
    """A `/codebot <instruction>` on the bot's own PR: more commits on the same branch."""
    pull = forge.pull(full_name, pr_number)
    if not pull.head.startswith(settings.git.branch_prefix) or pull.state != "open":
        raise ConfigError(
            f"{full_name}#{pr_number} is not an open codebot pull request",
            f"codebot only follows up on its own open PRs (branches {settings.git.branch_prefix}*)",
        )
    found = re.search(r"issue-(\d+)-", pull.head)
    closes, thread = int(found[1]) if found else None, review.comment_id if review else None
    target = Target(full_name, pr_number, pull.head, pull.title, closes, thread)
    spec_for = partial(_followup_spec, pull, instruction, review)
    repo = forge.repo(full_name)
    return _run_remote(forge, repo, target, spec_for, settings, env, on_event, artifact)


def run_spec(
    forge: Forge,
    full_name: str,
    spec_text: str | None,
    spec_path: str,
    settings: cfg.Settings,
    env: Mapping[str, str],
    on_event: Event = lambda _: None,
    artifact: Path | None = None,
) -> GitHubOutcome:
    """`codebot run SPEC` (text given) or a dispatched spec path read from the default branch."""
    repo = forge.repo(full_name)
    # Validate what can be validated before any side effect; the repo's .codebot.yml
    # (which may supply `test`) is only known after the clone.
    probe = parse_spec(spec_text, spec_path, {"test": "(from .codebot.yml)"}) if spec_text else None
    slug = probe.slug if probe else slugify(spec_path.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    target = Target(full_name, 0, f"{settings.git.branch_prefix}{slug}", "", None)
    spec_for = partial(_file_spec, spec_text, spec_path)
    return _run_remote(forge, repo, target, spec_for, settings, env, on_event, artifact)


def run_action(
    env: Mapping[str, str],
    settings: cfg.Settings,
    on_event: Event = lambda _: None,
    artifact: Path | None = None,
) -> GitHubOutcome:
    """`codebot action`: read the event GitHub Actions gives us and act on it. With
    `artifact`, write nothing to GitHub: what would be written is left there instead."""
    name, payload = load_event(env)
    reaction = trigger_from_event(
        name,
        payload,
        allowed_associations=settings.github.allowed_associations,
        label=settings.github.trigger_label,
        branch_prefix=settings.git.branch_prefix,
    )
    if isinstance(reaction, Ignore):
        return GitHubOutcome("ignored", message=reaction.reason)
    forge = GitHubForge.from_env(env)
    if isinstance(reaction, Refusal):
        if reaction.repo and reaction.number is not None and artifact is not None:
            plan = publish.Plan(reaction.repo, reaction.number, comments=(reaction.polite_message,))
            publish.write_artifact(artifact, plan)
        elif reaction.repo and reaction.number is not None:
            forge.comment(reaction.repo, reaction.number, reaction.polite_message)
        return GitHubOutcome("refused", message=reaction.reason, artifact=artifact)
    return _dispatch(forge, reaction, settings, env, on_event, artifact)


def _dispatch(
    forge: Forge,
    t: Trigger,
    settings: cfg.Settings,
    env: Mapping[str, str],
    on_event: Event,
    artifact: Path | None,
) -> GitHubOutcome:
    if t.kind == "issue" and t.issue_number is not None:
        return run_issue(
            forge, t.repo, t.issue_number, settings, env, on_event, t.instruction, artifact
        )
    if t.kind == "pr_followup" and t.pr_number is not None:
        instruction = t.instruction or ""
        return run_followup(
            forge, t.repo, t.pr_number, instruction, settings, env, on_event, t.review, artifact
        )
    if t.kind == "spec" and t.spec_path:
        return run_spec(forge, t.repo, None, t.spec_path, settings, env, on_event, artifact)
    if t.kind == "ci_followup":
        return ci_followup.run_ci_followup(forge, t, settings, env, on_event, artifact)
    raise ConfigError(f"cannot act on a `{t.kind}` trigger without its number or path", "")


def _issue_spec(
    issue: IssueInfo, instruction: str | None, ws: Workspace, s: cfg.Settings
) -> TaskSpec:
    """The issue is the task; an instruction given with the command comes last, after it."""
    spec = spec_from_issue(issue, s.spec_defaults, ws.read_base_file("AGENTS.md"))
    if not instruction:
        return spec
    request = _request("issue_instruction.md", instruction)
    return replace(spec, description=f"{spec.description}\n\n{request}")


def _followup_spec(
    pull: PullInfo, instruction: str, review: ReviewContext | None, ws: Workspace, s: cfg.Settings
) -> TaskSpec:
    """The request is the whole task: the PR's branch already holds the earlier work."""
    description = _request("followup.md", instruction, review)
    spec_id = pull.head.removeprefix(s.git.branch_prefix)[:60]
    data: dict[str, object] = {"title": pull.title[:200], "description": description, "id": spec_id}
    if review is not None:  # the file the comment is on comes first, then the repo's own
        named = s.spec_defaults.get("files")
        others = [f for f in named if f != review.path] if isinstance(named, list) else []
        data["files"] = [review.path, *others]
    return spec_from_data(data, pull.url, s.spec_defaults)


def _file_spec(text: str | None, path: str, ws: Workspace, s: cfg.Settings) -> TaskSpec:
    """The spec given as text, else the file as it is on the branch the clone started from."""
    text = text if text is not None else ws.read_base_file(path)
    if text is None:
        raise ConfigError(f"{path} does not exist on {ws.base_ref}", "")
    return parse_spec(text, path, s.spec_defaults)


def _request(template: str, instruction: str, review: ReviewContext | None = None) -> str:
    """A /codebot comment as the model reads it: the instruction under `template`'s heading,
    then the diff lines a review comment points at."""
    parts = [_render(template, instruction=instruction)]
    if review is not None:
        parts.append(_render("review_comment.md", where=_lines(review), diff_hunk=review.diff_hunk))
    return "\n\n".join(parts)


def _lines(review: ReviewContext) -> str:
    """The lines a review comment was made on (`a.py lines 3..5`); its path alone when GitHub
    no longer knows them (an outdated comment)."""
    if review.line is None:
        return review.path
    if review.start_line is not None and review.start_line < review.line:
        return f"{review.path} lines {review.start_line}..{review.line}"
    return f"{review.path} line {review.line}"


def _render(name: str, **values: str) -> str:
    """A template as one paragraph: the newline ending the file is not part of the text."""
    return prompts.render(name, **values).removesuffix("\n")


def _run_remote(
    forge: Forge,
    repo: RepoInfo,
    target: Target,
    spec_for: SpecFor,
    settings: cfg.Settings,
    env: Mapping[str, str],
    on_event: Event,
    artifact: Path | None = None,
) -> GitHubOutcome:
    preflight(settings)
    _check_branch(forge, repo, target.branch, settings)
    redact = Redactor.from_env(env, [settings.model.api_key])
    job = _Job(forge, repo, target, spec_for, env, on_event, redact)
    if artifact is not None:
        return _plan(job, settings, artifact)
    with _locked(forge, target):
        ws = job.clone()
        sent: gitapi.Sent | None = None
        try:
            start = f"🤖 codebot is working on this in branch `{ws.branch}`."
            run = _solve_remote(job, settings, ws, partial(job.say, start))
            record, files, pull = run.record, run.write(run.record), None
            if record.head_commit is not None:
                try:
                    pull, sent = _publish(job, ws, run)
                except CodebotError as exc:
                    run.write(replace(record, published=f"not published: {exc.one_line()}"))
                    raise
                # The branch's commit is GitHub's when it made it (commit_via_api), not ours.
                how = f"{sent.how}; pull request {pull.url}"
                record = replace(record, head_commit=sent.head, published=how)
                files = run.write(record)
            job.say(_final_comment(record, None if pull is None else f"#{pull.number}"))
            link = None if sent is None else publish.commit_link(job.repo.url, sent.head)
            job.reply(_reply(record, link))
            return GitHubOutcome(record.stop_reason, record, files, pull)
        except CodebotError as exc:
            stopped = f"⚠️ codebot stopped: {exc.one_line()}"
            job.say(stopped)
            with contextlib.suppress(CodebotError):  # the error in flight is the one to raise
                job.reply(stopped)
            raise
        finally:
            ws.cleanup()


@dataclass(frozen=True)
class _Job:
    """One run on GitHub, as every stage of it reads it."""

    forge: Forge
    repo: RepoInfo
    target: Target
    spec_for: SpecFor
    env: Mapping[str, str]
    on_event: Event
    redact: Redactor

    def clone(self) -> Workspace:
        r, token = self.repo, self.env.get("GITHUB_TOKEN")
        return Workspace.clone(r.clone_url, self.target.branch, r.default_branch, token)

    def say(self, text: str) -> None:
        for safe in self.as_said(text):
            self.forge.comment(self.target.repo, self.target.number, safe)

    def reply(self, text: str) -> None:
        """Answer in the thread of the review comment that started the run, if one did."""
        t = self.target
        if t.review_comment is not None:
            for safe in self.as_said(text):
                self.forge.reply_to_review_comment(t.repo, t.number, t.review_comment, safe)

    def answering(self, plan: publish.Plan, text: str) -> publish.Plan:
        """`plan` replying `text` in the thread of the review comment that started the run,
        if one did (as `reply` would)."""
        t = self.target
        if t.review_comment is None:
            return plan
        thread = publish.ReviewThread(t.review_comment, t.number)
        return replace(plan, review_comment=thread, reply="".join(self.as_said(text)))

    def as_said(self, text: str) -> tuple[str, ...]:
        """A comment as `say` posts it (it quotes stop details and errors: redacted first,
        then made inert), or none without an issue or PR to post it on."""
        return (prose.neutralise(self.redact(text)),) if self.target.number else ()


@dataclass(frozen=True)
class _Solved:
    """A run on GitHub before anything is published. `write` writes its run files."""

    record: RunRecord
    title: str
    body: str  # empty when there is no commit to propose
    settings: cfg.Settings
    write: Callable[[RunRecord], report.RunFiles]


def _solve_remote(
    job: _Job, settings: cfg.Settings, ws: Workspace, started: Callable[[], None] = lambda: None
) -> _Solved:
    """Configure from the base commit, run, and render the PR's title and body: what a
    one-job run and a plan both do before either writes anything."""
    found = detect_from(sorted(ws.base_files()), ws.read_base_file)
    settings = cfg.with_detected(settings, found)
    settings = cfg.with_repo_file(settings, ws.read_base_file(".codebot.yml"))
    spec = with_overrides(job.spec_for(ws, settings), settings)
    settings = replace(settings, notes=(*settings.notes, *cfg.detected_notes(spec, found)))
    started()
    solved = solve(spec, settings, ws, job.env, job.on_event)
    record, closes, redact = solved.record, job.target.closes, job.redact
    # Earlier runs on this PR, as its body lists them: the new body keeps them.
    earlier = pr_history.earlier_runs(job.forge.open_pr_body(job.repo.full_name, ws.branch))

    def write(record: RunRecord) -> report.RunFiles:
        return report.write_run(settings.runs_dir / record.run_id, record, solved.patch,
                                solved.prompt, redact, closes, earlier)  # fmt: skip

    title = prose.inline(redact(job.target.title or spec.title))
    body = ""
    if record.head_commit is not None:
        body = redact(report.render_pr_body(record, solved.patch, closes, earlier, redact=redact))
    return _Solved(record, title, body, settings, write)


def _plan(job: _Job, settings: cfg.Settings, artifact: Path) -> GitHubOutcome:
    """The read-only half of a run: everything up to the first write to GitHub or the
    remote, left in `artifact` for `codebot publish`. No lock label and no start comment
    (both are writes): the workflow's concurrency group keeps runs apart instead."""
    t = job.target
    ws = job.clone()
    try:
        run = _solve_remote(job, settings, ws)
        record, s = run.record, run.settings
        change = record.head_commit is not None
        if change:
            record = replace(record, published=f"planned {ws.branch}; artifact {artifact}")
        files = run.write(record)
        said = _final_comment(record, publish.PULL_PLACEHOLDER if change else None)
        reply = _reply(record, publish.COMMIT_PLACEHOLDER if change else None)
        plan = publish.Plan(
            t.repo, t.number, branch=ws.branch if change else "", closes=t.closes,
            base_branch=job.repo.default_branch, base_commit=ws.base_commit,
            head_commit=record.head_commit or "", title=run.title, body=run.body,
            draft=_draft(s.github.draft, record.passed), labels=s.github.labels,
            reviewers=s.github.reviewers, stop_reason=record.stop_reason, run_id=record.run_id,
            cost_usd=record.cost_usd, comments=job.as_said(said),
        )  # fmt: skip
        publish.write_artifact(artifact, job.answering(plan, reply), ws, files.run_json)
        job.on_event(f"plan written to {artifact}; `codebot publish` it to push")
        return GitHubOutcome(record.stop_reason, record, files, artifact=artifact)
    except CodebotError as exc:
        stopped = f"⚠️ codebot stopped: {exc.one_line()}"
        failed = publish.Plan(t.repo, t.number, comments=job.as_said(stopped))
        with contextlib.suppress(CodebotError, OSError):  # the error in flight is the one to tell
            publish.write_artifact(artifact, job.answering(failed, stopped))
        raise
    finally:
        ws.cleanup()


def _publish(job: _Job, ws: Workspace, run: _Solved) -> tuple[PullInfo, gitapi.Sent]:
    """Push the branch (or make its commits through the GitHub API), never forced, then open
    or update its one pull request."""
    github = run.settings.github
    sent = gitapi.send_branch(job.forge, job.repo.full_name, ws, github.commit_via_api)
    job.on_event(sent.how)
    pull = job.forge.open_or_update_pr(
        job.repo.full_name,
        head=ws.branch,
        base=job.repo.default_branch,
        title=run.title,
        body=run.body,
        draft=_draft(github.draft, run.record.passed),
        labels=github.labels,
        reviewers=github.reviewers,
    )
    return pull, sent


def _reply(record: RunRecord, commit: str | None) -> str:
    """The answer in a review comment's thread: the commit made for it (`commit`, as
    publish.commit_link names it), or why there is none."""
    why = f"{stops.text(record.stop_reason)} ({record.stop_detail})"
    if commit is None:
        if record.stop_reason == "nothing_to_do":
            why = f"nothing to change: {record.stop_detail}"
        return f"Nothing was pushed for this comment: {why}."
    done = f"Addressed in {commit}."
    return done if record.passed else f"{done} Not every check passed: {why}."


def _issue_branch(
    repo: RepoInfo, number: int, title: str, settings: cfg.Settings, token: str | None
) -> str:
    """The issue's existing codebot branch if there is one (titles change), else a new name."""
    prefix = f"{settings.git.branch_prefix}issue-{number}-"
    existing = sorted(b for b in remote_branches(repo.clone_url, token) if b.startswith(prefix))
    return existing[0] if existing else prefix + slugify(title, 40)


def _check_branch(forge: Forge, repo: RepoInfo, branch: str, settings: cfg.Settings) -> None:
    if branch == repo.default_branch or not branch.startswith(settings.git.branch_prefix):
        raise ConfigError(
            f"refusing to push to `{branch}` of {repo.full_name}",
            f"codebot pushes only to its own {settings.git.branch_prefix}* branches",
        )
    if forge.is_protected(repo.full_name, branch):
        raise ConfigError(f"branch `{branch}` of {repo.full_name} is protected", "")


class _locked:
    """A `codebot:running` label on the issue/PR: a second run is refused while it is there."""

    def __init__(self, forge: Forge, target: Target) -> None:
        self.forge, self.target = forge, target

    def __enter__(self) -> None:
        if not self.target.number:
            return
        if LOCK_LABEL in self.forge.issue(self.target.repo, self.target.number).labels:
            raise ForgeError(
                f"another codebot run is working on {self.target.repo}#{self.target.number}",
                f"wait for it to finish, or remove the `{LOCK_LABEL}` label if it crashed",
            )
        self.forge.add_label(self.target.repo, self.target.number, LOCK_LABEL)

    def __exit__(self, *exc: object) -> None:
        if self.target.number:
            self.forge.remove_label(self.target.repo, self.target.number, LOCK_LABEL)


def _draft(policy: str, passed: bool) -> bool:
    return policy == "always" or (policy == "auto" and not passed)


def _final_comment(record: RunRecord, pull: str | None) -> str:
    """`pull` names the PR the change went to (`#12`), None when there is none."""
    cost = "" if record.cost_usd is None else f", ${record.cost_usd:.4f}"
    stats = (
        f"{len(record.iterations)} iteration(s), {record.usage.total_tokens:,} tokens{cost}; "
        f"run `{record.run_id}`"
    )
    if record.passed and pull is not None:
        return f"✅ Pull request {pull} is ready for review: all checks passed ({stats})."
    if record.stop_reason == "nothing_to_do":
        return f"✅ Nothing to change: {record.stop_detail} ({stats})."
    why = f"{stops.text(record.stop_reason)} ({record.stop_detail})"
    if pull is not None:
        return f"⚠️ {why}. The partial change is in draft pull request {pull} ({stats})."
    return f"⚠️ {why}, with no change to propose ({stats})."
