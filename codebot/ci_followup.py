"""When the repository's own CI fails on codebot's PR: one more run on the same branch, told
what CI said, without anybody tagging the bot.

A loop between codebot's pushes and CI cannot happen, by construction:
- every attempt is recorded in the PR body's hidden run list (codebot.pr_history) twice:
  *before* it runs, so a crash, a run that pushes nothing or a later event all see it; and
  by its run's own summary, which goes into the body with the push that could start CI;
- attempts per PR are capped (`github.ci_attempts`, default 2, never above MAX_ATTEMPTS);
  at the cap codebot says so once on the PR and pushes nothing more;
- a CI run is answered at most once (its id is in the same list), and only while it ran on
  the branch's current head: a newer push supersedes it.
The record lives in the PR body, not in memory, because every workflow job starts from
nothing. Changing it takes write access, which is also what it takes to push to the branch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from codebot import ci_logs, context, github_flow, pr_history, prompts, prose
from codebot import config as cfg
from codebot.errors import ConfigError
from codebot.events import CiSource, Trigger
from codebot.protocols import Forge
from codebot.records import FailedJob, PullInfo
from codebot.redact import Redactor
from codebot.runner import Event
from codebot.text import clip

MAX_ATTEMPTS = 5  # the ceiling on github.ci_attempts, whatever a .codebot.yml asks for
FAILURE_BUDGET = 8_000  # characters of CI output the model is sent, over all failed jobs
JOBS_SHOWN = 4
_JOB_BUDGET_MIN = 1_500


@dataclass(frozen=True)
class CiRun:
    """The CI run a trigger reports. `key` is how the PR body records it."""

    source: CiSource
    id: int
    name: str
    sha: str

    @classmethod
    def of(cls, trigger: Trigger) -> CiRun:
        t = trigger
        if t.ci_source is None or t.ci_run_id is None or not t.head_sha or t.pr_number is None:
            raise ConfigError("a ci_followup trigger needs its PR, CI run id, source and commit")
        return cls(t.ci_source, t.ci_run_id, t.ci_name, t.head_sha)

    @property
    def key(self) -> str:
        return f"{'run' if self.source == 'workflow_run' else 'suite'}:{self.id}"

    @property
    def label(self) -> str:
        name = prose.inline(self.name)[:100]
        if self.source == "workflow_run":
            return f"workflow “{name}” (run {self.id})" if name else f"workflow run {self.id}"
        return f"check suite {self.id} of “{name}”" if name else f"check suite {self.id}"


@dataclass(frozen=True)
class FollowUp:
    """A CI follow-up cleared to run, its attempt already recorded in the PR body."""

    repo: str
    pr_number: int
    instruction: str
    attempt: int
    cap: int


def run_ci_followup(
    forge: Forge,
    trigger: Trigger,
    settings: cfg.Settings,
    env: Mapping[str, str],
    on_event: Event = lambda _: None,
    artifact: Path | None = None,
) -> github_flow.GitHubOutcome:
    """Answer a failed CI run on codebot's PR: skip it, stop at the cap, or follow up.

    With `artifact` (the read-only plan job of a split workflow) nothing is written to
    GitHub from here: an attempt is then recorded only by its run's own summary, published
    with its change (which is all a loop needs: no push, no new CI run), and the stop at the
    cap is silent."""
    claimed = claim(forge, trigger, settings, env, record=artifact is None)
    if isinstance(claimed, github_flow.GitHubOutcome):
        return claimed
    on_event(f"CI follow-up {claimed.attempt} of {claimed.cap}")
    repo, number, instruction = claimed.repo, claimed.pr_number, claimed.instruction
    if artifact is None:
        return github_flow.run_followup(forge, repo, number, instruction, settings, env, on_event)
    return github_flow.run_followup(
        forge, repo, number, instruction, settings, env, on_event, artifact=artifact
    )


def claim(
    forge: Forge,
    trigger: Trigger,
    settings: cfg.Settings,
    env: Mapping[str, str],
    *,
    record: bool = True,
) -> FollowUp | github_flow.GitHubOutcome:
    """Everything before the run: the decision and, when `record`, its record in the PR body
    (the attempt, or the stop and its one comment). It needs a token that may write the PR
    but not the model key, so a split workflow can run it in a job of its own."""
    ci = CiRun.of(trigger)
    repo, number = trigger.repo, int(trigger.pr_number or 0)
    pull = forge.pull(repo, number)
    body = forge.open_pr_body(repo, pull.head) if pull.state == "open" else None
    runs = pr_history.earlier_runs(body)
    skip = _skip_reason(forge, repo, pull, body, ci, settings)
    if skip:
        return _ignored(skip)
    cap = attempts_allowed(cfg.with_repo_file(settings, forge.read_file(repo, ".codebot.yml")))
    if cap == 0:
        return _ignored("CI follow-ups are off (github.ci_attempts is 0)")
    attempts = pr_history.ci_attempts(runs)
    if len(attempts) >= cap:
        if not record:
            return _spent(ci, attempts)
        redact = Redactor.from_env(env, [settings.model.api_key])
        return _stop(forge, repo, pull, body, runs, ci, redact)
    jobs = _failed(forge, repo, ci)
    if not jobs:
        return _ignored(f"{ci.label} reports no failed job to read")
    if record:
        entry = pr_history.ci_entry(pr_history.CI_ATTEMPT, ci.key, _now())
        forge.edit_pr_body(repo, number, pr_history.with_entry(body, entry))
    attempt = len(attempts) + 1
    return FollowUp(repo, number, ci_instruction(ci, jobs, attempt, cap), attempt, cap)


def attempts_allowed(settings: cfg.Settings) -> int:
    """The cap from the settings, kept between 0 and MAX_ATTEMPTS."""
    return max(0, min(MAX_ATTEMPTS, int(settings.github.ci_attempts)))


def ci_instruction(ci: CiRun, jobs: Sequence[FailedJob], attempt: int, cap: int) -> str:
    """What the follow-up asks: the failed jobs, their output cut to what matters, inside
    the untrusted check-output wrapper (the repository's code wrote it)."""
    shown = jobs[:JOBS_SHOWN]
    budget = max(_JOB_BUDGET_MIN, FAILURE_BUDGET // max(1, len(shown)))
    parts = [_job_text(job, ci.source, budget) for job in shown]
    if len(jobs) > len(shown):
        names = ", ".join(j.name for j in jobs[len(shown) :])
        parts.append(f"More failed jobs, not shown: {clip(names, 300)}")
    text = prompts.render(
        "ci_failure.md",
        key=ci.key,
        attempt=attempt,
        cap=cap,
        what=ci.label,
        sha=ci.sha[:12],
        jobs="\n".join(parts),
    )
    return text.strip()


def _job_text(job: FailedJob, source: CiSource, budget: int) -> str:
    steps = f"; failed steps: {', '.join(job.failed_steps)}" if job.failed_steps else ""
    # A job log is raw output to search; a check run's output was written for people already.
    said = ci_logs.failures(job.log, budget) if source == "workflow_run" else clip(job.log, budget)
    heading = f"Job `{job.name}` ({job.conclusion}){steps}:"
    return f"{heading}\n{context.check_output(said) or '(no output)'}"


def _skip_reason(
    forge: Forge,
    repo: str,
    pull: PullInfo,
    body: str | None,
    ci: CiRun,
    settings: cfg.Settings,
) -> str:
    """Why this CI run gets no answer at all ("" when it does)."""
    if pull.state != "open" or body is None:
        return f"{repo}#{pull.number} is not an open pull request"
    if not pull.head.startswith(settings.git.branch_prefix):
        return f"{repo}#{pull.number} is not codebot's ({pull.head})"
    if pull.head_sha != ci.sha:
        return (
            f"{ci.label} ran on {ci.sha[:7]}, but {pull.head} is now at "
            f"{pull.head_sha[:7] or 'an unknown commit'}: the newer push supersedes it"
        )
    if ci.key in pr_history.handled_ci(pr_history.earlier_runs(body)):
        return f"{ci.label} was already answered"
    if github_flow.LOCK_LABEL in forge.issue(repo, pull.number).labels:
        return f"another codebot run is working on #{pull.number}; its push supersedes this"
    return ""


def _failed(forge: Forge, repo: str, ci: CiRun) -> tuple[FailedJob, ...]:
    if ci.source == "workflow_run":
        return forge.failed_jobs(repo, ci.id)
    return forge.failed_checks(repo, ci.id)


def _stop(
    forge: Forge,
    repo: str,
    pull: PullInfo,
    body: str | None,
    runs: Sequence[pr_history.RunSummary],
    ci: CiRun,
    redact: Redactor,
) -> github_flow.GitHubOutcome:
    """At the cap: say so once on the PR. The stop is recorded before it is said, so a
    failure in between leaves the PR without the comment rather than with two."""
    attempts = pr_history.ci_attempts(runs)
    if any(r.kind == pr_history.CI_STOPPED for r in runs):
        return _ignored(f"CI still fails after {len(attempts)} attempts; codebot already stopped")
    entry = pr_history.ci_entry(pr_history.CI_STOPPED, ci.key, _now())
    forge.edit_pr_body(repo, pull.number, pr_history.with_entry(body, entry))
    forge.comment(repo, pull.number, prose.neutralise(redact(stop_comment(ci, runs))))
    return _spent(ci, attempts)


def _spent(ci: CiRun, attempts: Sequence[str]) -> github_flow.GitHubOutcome:
    message = f"{ci.label} failed after {len(attempts)} CI follow-up(s); codebot stopped"
    return github_flow.GitHubOutcome("ci_attempts_spent", message=message)


def stop_comment(ci: CiRun, runs: Sequence[pr_history.RunSummary]) -> str:
    """What codebot tried and that it stops: each attempt with what its run said it changed."""
    tried = tried_so_far(runs)
    lines = [
        f"🛑 CI still fails ({ci.label}, on commit `{ci.sha[:7]}`) after {len(tried)} "
        "automatic fix attempt(s), so codebot stops following CI on this pull request "
        "and pushes nothing more.",
        "",
        "What it tried:",
        *(f"- {line}" for line in tried),
        "",
        "To go on, comment `/codebot` with an instruction, or push a fix.",
    ]
    return "\n".join(lines)


def tried_so_far(runs: Sequence[pr_history.RunSummary]) -> list[str]:
    """One line per CI attempt, with what the run that answered it said it changed."""
    lines = []
    for key in pr_history.ci_attempts(runs):
        what = key.replace("run:", "CI run ").replace("suite:", "check suite ") or "a CI run"
        answers = [r for r in runs if r.kind == pr_history.CI_FOLLOW_UP and r.ci == key]
        if key and answers:
            run = answers[-1]
            said = run.explanation or "no explanation"
            lines.append(f"after {what}: run `{run.run_id}` ({run.stop_reason}): {said}")
        else:
            lines.append(f"after {what}: no change was pushed")
    return lines


def _ignored(reason: str) -> github_flow.GitHubOutcome:
    return github_flow.GitHubOutcome("ignored", message=reason)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
