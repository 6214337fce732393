"""One run from spec to local branch and run files: the edge where the stages meet the world.

Everything that can fail for a reason the user can fix (spec, settings, engine, image, repo)
is checked before the first side effect. After that, the workspace and the sandbox are
always removed, whatever happens, and a branch appears in the user's repo only for a run
that ended in a reviewable state.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any

import yaml

from codebot import config as cfg
from codebot import context, report
from codebot.checks import feedback_for_model, run_checks, run_setup
from codebot.errors import ConfigError, SandboxError
from codebot.llm import OpenAIModel
from codebot.loop import Limits, LoopResult, run_loop
from codebot.protocols import Model
from codebot.records import (
    CheckResult,
    Completion,
    Iteration,
    Message,
    RunRecord,
    StopReason,
    Usage,
    iteration_from_dict,
)
from codebot.redact import Redactor
from codebot.sandbox import DockerSandbox, cleanup_orphans, ping
from codebot.spec import TaskSpec, load_spec, spec_to_dict
from codebot.workspace import Workspace, read_file_at

# Runs that end here leave a branch: the change is reviewable even if checks still fail.
PUBLISHABLE: tuple[StopReason, ...] = ("passed", "max_iterations", "token_budget", "cost_budget")
# Runs that end here can be resumed from their record.
RESUMABLE: tuple[StopReason, ...] = ("interrupted", "model_error", "sandbox_error")

Event = Callable[[str], None]


@dataclass(frozen=True)
class RunOutcome:
    record: RunRecord
    files: report.RunFiles
    branch: str | None


@dataclass(frozen=True)
class RunRequest:
    spec_path: Path
    repo: Path
    settings: cfg.Settings
    issue: int | None = None
    resume: Path | None = None  # an interrupted run's directory (holding run.json)


@dataclass(frozen=True)
class Prior:
    """What an interrupted run had finished, read back from its run.json."""

    run_id: str
    base_commit: str
    iterations: tuple[Iteration, ...]

    @classmethod
    def load(cls, run_dir: Path, spec: TaskSpec) -> Prior:
        try:
            data = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read {run_dir}/run.json: {exc}", "pass a run directory"
            ) from None
        if data.get("stop_reason") not in RESUMABLE:
            raise ConfigError(
                f"run {data.get('run_id')} ended with `{data.get('stop_reason')}`, which is final",
                f"only runs that stopped with {', '.join(RESUMABLE)} can be resumed",
            )
        if data["spec"].get("slug") != spec.slug:
            raise ConfigError(
                f"run {data['run_id']} was for another task ({data['spec'].get('slug')})", ""
            )
        # An iteration cut short (decision give_up) is asked again, not replayed.
        kept = [i for i in data["iterations"] if i["decision"] == "retry"]
        its = tuple(iteration_from_dict(i) for i in kept)
        return cls(data["run_id"], data["base_commit"], its)


class RedactingModel:
    """Wraps a Model so that no configured secret can reach the endpoint in a prompt."""

    def __init__(self, inner: Model, redact: Redactor) -> None:
        self.inner, self.redact, self.name = inner, redact, inner.name

    def complete(self, messages: Sequence[Message]) -> Completion:
        return self.inner.complete([Message(m.role, self.redact(m.content)) for m in messages])


def prepare(request: RunRequest) -> tuple[TaskSpec, cfg.Settings]:
    """Load settings and spec and fail early, before any side effect."""
    base = _peek_base(request.spec_path)
    repo_file = read_file_at(request.repo, base, ".codebot.yml")
    settings = cfg.with_repo_file(request.settings, repo_file)
    spec = with_overrides(load_spec(request.spec_path, settings.spec_defaults), settings)
    preflight(settings)
    return spec, settings


def preflight(settings: cfg.Settings) -> None:
    """What must hold before any side effect: a model to ask and a sandbox to run in."""
    cfg.require_model(settings)
    ping(settings.sandbox.image)


def with_overrides(spec: TaskSpec, settings: cfg.Settings) -> TaskSpec:
    """The operator's limits (flags, action inputs) win over the spec's."""
    if settings.max_iterations is not None:
        spec = replace(spec, max_iterations=settings.max_iterations)
    if settings.max_cost_usd is not None:
        spec = replace(spec, budget=replace(spec.budget, max_cost_usd=settings.max_cost_usd))
    return spec


def execute(
    request: RunRequest,
    env: Mapping[str, str] | None = None,
    on_event: Event = lambda _: None,
    model: Model | None = None,
) -> RunOutcome:
    """`codebot dry-run`: everything but push and PR; the branch is copied back locally."""
    spec, settings = prepare(request)
    env = os.environ if env is None else env
    prior = Prior.load(request.resume, spec) if request.resume else None
    base = prior.base_commit if prior else spec.base
    ws = Workspace.create(request.repo, spec.slug, base, settings.git.branch_prefix)
    try:
        on_event(f"workspace: isolated clone on branch {ws.branch}")
        if prior:
            on_event(f"resuming run {prior.run_id} after iteration {len(prior.iterations)}")
        solved = solve(spec, settings, ws, env, on_event, model, prior)
        files = report.write_run(
            settings.runs_dir / solved.record.run_id,
            solved.record,
            solved.patch,
            solved.prompt,
            solved.redact,
            request.issue,
        )
        if solved.record.head_commit is not None:
            ws.publish_local()
        branch = ws.branch if solved.record.head_commit is not None else None
        return RunOutcome(solved.record, files, branch)
    finally:
        ws.cleanup()


@dataclass(frozen=True)
class Solved:
    record: RunRecord
    patch: str
    prompt: tuple[Message, ...]
    redact: Redactor


def solve(
    spec: TaskSpec,
    settings: cfg.Settings,
    ws: Workspace,
    env: Mapping[str, str],
    on_event: Event = lambda _: None,
    model: Model | None = None,
    prior: Prior | None = None,
) -> Solved:
    """Sandbox up, baseline, loop, commit: the part every entry point shares.

    The sandbox is removed on every exit path; the workspace belongs to the caller. run.json
    is rewritten after every iteration, so a run killed outright can still be resumed.
    """
    started_at, t0 = _now(), time.monotonic()
    redact = Redactor.from_env(env, [settings.model.api_key])
    model = RedactingModel(model or OpenAIModel(settings.model), redact)
    run_id = prior.run_id if prior else time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    if prior:
        cleanup_orphans(run_id)  # what a killed run of this id may have left
    timings: dict[str, float] = {}

    def record_of(
        result: LoopResult, baseline: tuple[CheckResult, ...], head: str | None
    ) -> RunRecord:
        return RunRecord(
            run_id=run_id,
            spec=spec_to_dict(spec),
            model=model.name,
            repo=ws.source,
            base_ref=ws.base_ref,
            base_commit=ws.base_commit,
            branch=ws.branch,
            started_at=started_at,
            finished_at=_now(),
            stop_reason=result.stop_reason,
            stop_detail=result.stop_detail,
            baseline=baseline,
            iterations=result.iterations,
            usage=result.usage,
            cost_usd=result.cost_usd,
            head_commit=head,
            files_changed=tuple(ws.changed_files()) if head or result.changed else (),
            timings=timings,
            model_adjustments=tuple(getattr(model.inner, "adjustments", ())),
        )

    def checkpoint(baseline: tuple[CheckResult, ...], done: list[Iteration]) -> None:
        usage = sum((i.usage for i in done), Usage())
        partial = LoopResult(tuple(done), "interrupted", f"stopped after iteration {len(done)}",
                             usage, None, ())  # fmt: skip
        report.write_checkpoint(
            settings.runs_dir / run_id, record_of(partial, baseline, None), redact
        )

    sandbox = DockerSandbox.start(settings.sandbox, run_id)
    if sandbox.swept:
        on_event(f"sandbox: removed what killed runs left behind: {', '.join(sandbox.swept)}")
    try:
        setup = _prepare(sandbox, settings.sandbox.image, ws, spec, timings, t0, on_event)
        baseline: tuple[CheckResult, ...] = () if setup is None else (setup,)
        setup_done = _lap(t0)
        prompt: tuple[Message, ...] = ()
        if setup is not None and not setup.passed:
            result = LoopResult(tuple(prior.iterations) if prior else (), "setup_failed",
                                f"`{setup.command}` failed: {setup.reason}", Usage(), None,
                                ())  # fmt: skip
        else:
            python_repo = ws.is_python()
            baseline += run_checks(sandbox, spec, (), python_repo=python_repo)
            timings["baseline_s"] = round(_lap(t0) - setup_done, 3)
            on_event("baseline: " + _checks_line(baseline))
            failure = feedback_for_model(baseline, settings.feedback_tokens)
            ctx = context.gather(
                ws.path, ws.tracked_files(), spec, failure, settings.context_tokens
            )
            baseline_text = context.check_output(failure) or "All checks pass before any change."
            task = context.render_task(spec, ctx, baseline_text)
            prompt = (Message("system", context.system_prompt()), Message("user", task))
            limits = Limits(settings.git.protected_paths, python_repo, settings.feedback_tokens)
            done: list[Iteration] = list(prior.iterations) if prior else []
            checkpoint(baseline, done)

            def on_iteration(it: Iteration) -> None:
                done.append(it)
                checkpoint(baseline, done)
                announce(it)

            announce = _announce(on_event)
            result = run_loop(spec, model, sandbox, ws.path, prompt, limits, on_iteration,
                              prior.iterations if prior else ())  # fmt: skip
    except BaseException:
        _close(sandbox, on_event)  # the error in flight is the one to report
        raise
    left = _close(sandbox, on_event)
    if left:  # e.g. the engine died: the run's own result stands, and names what is left
        result = replace(result, stop_detail=f"{result.stop_detail}; {left}")
    on_event(f"stopped: {result.stop_reason} ({result.stop_detail})")
    head = _commit(ws, spec, settings, result, run_id, redact)
    timings["total_s"] = _lap(t0)
    return Solved(record_of(result, baseline, head), ws.diff(), prompt, redact)


def _prepare(
    sandbox: DockerSandbox,
    image: str,
    ws: Workspace,
    spec: TaskSpec,
    timings: dict[str, float],
    t0: float,
    on_event: Event,
) -> CheckResult | None:
    """Fill the sandbox and run the spec's setup; leave it sealed off every network.

    Setup (the one step that may have the network) runs on the base commit's files, so on
    a branch that already holds model-written commits (a PR codebot continues) none of
    that code runs there. The branch's own files go in after the seal."""
    ahead = spec.setup is not None and ws.ahead_of_base()
    if ahead:
        with ws.base_tree() as base:
            sandbox.sync(base)
    else:
        sandbox.sync(ws.path)
    timings["sandbox_ready_s"] = _lap(t0)
    on_event(f"sandbox: {image} ready in {timings['sandbox_ready_s']:.1f}s")
    setup = run_setup(sandbox, spec)
    sandbox.seal()  # a network, if the operator allowed one, served the setup step only
    if ahead:
        sandbox.sync(ws.path)
        sandbox.sync(ws.path, ws.deleted_since_base())
    if setup is not None:
        timings["setup_s"] = round(_lap(t0) - timings["sandbox_ready_s"], 3)
        on_event("setup: " + _checks_line((setup,)))
    return setup


def _close(sandbox: DockerSandbox, on_event: Event) -> str:
    """Remove the sandbox; what could not be removed, as one line ("" when all is gone)."""
    try:
        sandbox.close()
    except SandboxError as exc:
        on_event(f"warning: {exc.one_line()}")
        return exc.one_line()
    return ""


def _commit(
    ws: Workspace,
    spec: TaskSpec,
    settings: cfg.Settings,
    result: LoopResult,
    run_id: str,
    redact: Redactor,
) -> str | None:
    if result.stop_reason not in PUBLISHABLE:
        return None
    summary = next(
        (report.explanation(it.reply) for it in reversed(result.iterations) if it.edits), ""
    )
    message = Template(settings.git.commit_template).safe_substitute(
        title=spec.title, summary=summary, run_id=run_id, stop_reason=result.stop_reason
    )
    return ws.commit(redact(message), settings.git.author_name, settings.git.author_email)


def _peek_base(spec_path: Path) -> str | None:
    """The spec's `base:` (if any), read leniently: full validation happens after."""
    try:
        data: Any = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    base = data.get("base") if isinstance(data, dict) else None
    return base if isinstance(base, str) else None


def _announce(on_event: Event) -> Callable[[Any], None]:
    def emit(it: Any) -> None:
        refused = sum(e.status == "refused" for e in it.edits)
        on_event(
            f"iteration {it.number}: {len(it.edits) - refused} edit(s) applied, {refused} refused; "
            f"{_checks_line(it.checks)}; {it.usage.total_tokens} tokens; {it.duration_s:.1f}s"
        )

    return emit


def _checks_line(checks: Sequence[Any]) -> str:
    if not checks:
        return "checks not run"
    return ", ".join(
        f"{c.name} {'passed' if c.passed else 'failed (' + c.reason + ')'}" for c in checks
    )


def _lap(t0: float) -> float:
    return round(time.monotonic() - t0, 3)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
