"""The stages every run goes through, whoever started it (codebot.local, codebot.github_flow):
the edge where the stages meet the world.

Everything that can fail for a reason the user can fix (spec, settings, engine, image) is
checked by `preflight` (codebot.configure) before the first side effect. After that, the
sandbox is always removed, whatever happens, and a commit is made only for a run that ended
in a reviewable state (codebot.stops).

`solve` reads as its stages: start the sandbox, set it up, run the baseline, loop, verify,
commit, record (~70 lines: the one place that shows what runs beside what, and what is
removed on which exit path). Each stage is a function of what the earlier ones returned.
About 510 lines: the stages share `Run` and read best in order, including what runs
beside them (the parsing ahead, the lanes, the verification checked ahead); what is not a
stage lives elsewhere (codebot.lines, codebot.knowledge.for_run, codebot.verify,
codebot.speculate, codebot.lanes, codebot.environment).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any

from codebot import config as cfg
from codebot import context, environment, ladder, lines, prose, report, stops, tokens
from codebot import knowledge as kn
from codebot.checks import Expectation, baseline_checks
from codebot.decisions import LoopState, StopRules
from codebot.diagnose import environment_problem
from codebot.edits import FileTree
from codebot.environment import Environment
from codebot.errors import ConfigError
from codebot.feedback import feedback_for_model
from codebot.headstart import HeadStart, new_run_id
from codebot.lanes import Lanes, lane_run_ids
from codebot.loop import Loop, LoopResult, run_loop
from codebot.parsing import Ahead
from codebot.protocols import Model, Verifier
from codebot.records import (
    CheckResult,
    GroundingPassage,
    Iteration,
    Message,
    RunRecord,
    Usage,
    iteration_from_dict,
)
from codebot.redact import Redactor
from codebot.sandbox import DockerSandbox, cleanup_orphans
from codebot.sandboxes import Closing, close_sandbox
from codebot.spec import TaskSpec, spec_to_dict
from codebot.speculate import Speculation, alone, speculates
from codebot.stops import StopReason
from codebot.verify import Final, Verified, verify_run
from codebot.workspace import Workspace

Event = Callable[[str], None]


def quiet(_: str) -> None:
    """The default Event sink: progress goes nowhere."""


@dataclass(frozen=True)
class Prior:
    """What an interrupted run had finished, read back from its run.json."""

    run_id: str
    base_commit: str
    iterations: tuple[Iteration, ...]

    @classmethod
    def load(cls, run_dir: Path, spec: TaskSpec) -> Prior:
        data = report.read_run(run_dir)
        reason = data.get("stop_reason")
        if reason not in stops.RESUMABLE:
            raise ConfigError(
                f"run {data.get('run_id')} ended with `{reason}`, which is final",
                f"only runs that stopped with {', '.join(stops.RESUMABLE)} can be resumed",
            )
        if data["spec"].get("slug") != spec.slug:
            raise ConfigError(
                f"run {data['run_id']} was for another task ({data['spec'].get('slug')})", ""
            )
        # An iteration cut short (it ended in a stop) is asked again, not replayed.
        kept = [i for i in data["iterations"] if i["decision"] == "retry"]
        its = tuple(iteration_from_dict(i) for i in kept)
        return cls(data["run_id"], data["base_commit"], its)


@dataclass(frozen=True)
class Solved:
    record: RunRecord
    patch: str
    prompt: tuple[Message, ...]
    redact: Redactor


@dataclass(frozen=True)
class Run:
    """What every stage of one run reads; nothing in it changes while the run goes on."""

    run_id: str
    spec: TaskSpec
    settings: cfg.Settings
    ws: Workspace
    model: str
    redact: Redactor
    on_event: Event
    started_at: str
    t0: float

    def lap(self) -> float:
        return round(time.monotonic() - self.t0, 3)

    def record(
        self,
        result: LoopResult,
        baseline: Sequence[CheckResult],
        timings: Mapping[str, float],
        **finished: Any,
    ) -> RunRecord:
        """The run record; `finished` fills head_commit, files_changed, model_adjustments."""
        return RunRecord(
            run_id=self.run_id,
            spec=spec_to_dict(self.spec),
            model=self.model,
            repo=self.ws.source,
            base_ref=self.ws.base_ref,
            base_commit=self.ws.base_commit,
            branch=self.ws.branch,
            started_at=self.started_at,
            finished_at=_now(),
            stop_reason=result.stop_reason,
            stop_detail=result.stop_detail,
            baseline=tuple(baseline),
            iterations=result.iterations,
            usage=result.usage,
            cost_usd=result.cost_usd,
            timings=dict(timings),
            **finished,
        )


VERIFIED_AHEAD = (
    "the committed tree was checked in a fresh sandbox beside the last iteration's own checks "
    "(codebot.speculate), on exactly the committed bytes"
)
VERIFIED_AS_ITERATION = (
    "the last iteration's own checks were made in a fresh sandbox on exactly the committed "
    "bytes, and are the verification (codebot.speculate: cheap checks run once an iteration)"
)


def _tree(run: Run) -> FileTree:
    """The run's work tree as the loop edits it: the clone, its protected paths and test
    policy."""
    settings, ws = run.settings, run.ws
    return FileTree(ws.path, settings.git.protected_paths, run.spec.tests, ws.base_files())


@dataclass(frozen=True)
class Baseline:
    """Where the loop starts: the setup and checks before any change, and the first prompt.
    `stop` says why the run cannot go on (None when it can): the setup step failed, or
    the environment cannot run the checks (codebot.diagnose)."""

    checks: tuple[CheckResult, ...]
    prompt: tuple[Message, ...]
    python_repo: bool
    timings: Mapping[str, float]
    stop: tuple[StopReason, str] | None = None
    expect: Expectation = field(default_factory=Expectation)
    grounding: tuple[GroundingPassage, ...] = ()  # team knowledge in the first prompt
    spec: TaskSpec | None = None  # the spec the run goes on with, when the baseline changed it
    notes: tuple[str, ...] = ()  # why it changed


def solve(
    spec: TaskSpec,
    settings: cfg.Settings,
    ws: Workspace,
    env: Mapping[str, str],
    on_event: Event = quiet,
    model: Model | None = None,
    prior: Prior | None = None,
    head: HeadStart | None = None,
) -> Solved:
    """Sandbox up, baseline, loop, commit: the part every entry point shares.

    The sandbox is removed on every exit path; the workspace belongs to the caller. run.json
    is rewritten after every iteration, so a run killed outright can still be resumed.
    `head`: the run's id and maybe its sandbox, started ahead (codebot.configure); the
    caller closes it.
    """
    asked, redact = _asked(model, settings, env)
    head = None if prior else head
    run = _begin(spec, settings, ws, asked.name, redact, on_event, prior, head)
    ahead = context.parse_ahead(ws.path, ws.tracked_files(), settings.context_exclude)
    continued = ws.ahead_of_base()  # a rerun or follow-up on a branch with codebot's commits
    deps = _environment(run)
    spares = Speculation(settings, deps, run.run_id, ws)  # the verification's sandboxes
    lanes = Lanes(settings, deps, run.run_id, _tree(run), ws.deleted_since_base())  # best-of-N
    knowledge = _knowledge(run, env)
    try:
        sandbox = _start_sandbox(run, deps, head)
    except BaseException:
        knowledge.close()
        raise
    try:  # right after the start: a Ctrl-C in between would leave the sandbox behind
        if sandbox.swept:
            on_event(f"sandbox: removed what killed runs left behind: {', '.join(sandbox.swept)}")
        start = _baseline(run, sandbox, deps, knowledge, ahead)
        if start.stop is None:  # while the model is asked: beside the baseline, it slowed it
            spares.spare()  # (a model answering in 1 s: the run 0.89x; up by then all the same)
        run = replace(run, spec=start.spec or run.spec)  # e.g. without a lint it cannot run
        verifier = _verifier(run, start, spares)
        result = _loop(run, sandbox, asked, start, prior, knowledge, lanes, verifier)
    except BaseException:
        _close(sandbox, on_event)  # the error in flight is the one to report
        for left in (spares.close(), lanes.close()):
            if left:
                on_event(f"warning: {left}")
        raise
    finally:
        knowledge.close()
    closing = Closing(sandbox, lanes)  # removed while the committed tree is checked
    result, final, beside = _verify(run, result, start, deps, spares)
    commit = _commit(run, result)  # while the sandboxes are removed
    if left := "; ".join(x for x in (closing.wait(), spares.close()) if x):
        on_event(f"warning: {left}")  # e.g. the engine died: the run's own result stands
        result = replace(result, stop_detail=f"{result.stop_detail}; {left}")
    on_event(f"stopped: {result.stop_reason} ({result.stop_detail})")
    notes = (*settings.notes, *start.notes, *asked.notes, *knowledge.notes, *lanes.notes)
    record = run.record(
        result,
        start.checks,
        {**start.timings, **final.timings, "total_s": run.lap()},
        final_checks=final.checks,
        head_commit=commit,
        files_changed=tuple(ws.staged_files()) if commit or result.changed else (),
        model_adjustments=tuple(asked.adjustments),
        notes=(*notes, *_verified_note(beside)),
        environment=deps.summary(),
        continued=continued,
        rungs=asked.rung_usage(),
        grounding=(*start.grounding, *result.grounding),
    )
    return Solved(record, ws.staged_diff(), start.prompt, redact)


def _asked(
    model: Model | None, settings: cfg.Settings, env: Mapping[str, str]
) -> tuple[ladder.LadderModel, Redactor]:
    """The model the run asks (`model`, the operator's ladder, or the configured one), which
    redacts every prompt, set for best-of-N; and the redactor."""
    tokens.warm_up(settings.model.name)  # the tokenizer, when the model has a known one
    redact = Redactor.from_env(env, [settings.model.api_key])
    asked = ladder.engine(model, settings.model, env, redact)
    asked.candidates = settings.candidates  # the cost caps count every candidate's call
    asked.across_rungs = settings.candidates_from == "rungs"
    return asked, redact


def _verifier(run: Run, start: Baseline, spares: Speculation) -> Verifier | None:
    """The verification checked beside each iteration's checks, or as them when they are
    cheap (codebot.speculate); None when it is not checked ahead (then after the loop)."""
    if start.stop is not None or not speculates(run.settings):
        return None
    once = alone(start.checks, start.expect)
    return spares.arm(run.spec, start.expect, start.python_repo, alone=once)


def _verified_note(beside: Verified | None) -> tuple[str, ...]:
    """What run.json says of a verification made in the loop's time, if it was."""
    if beside is None:
        return ()
    return (VERIFIED_AS_ITERATION if beside.iteration else VERIFIED_AHEAD,)


def _verify(
    run: Run, result: LoopResult, start: Baseline, env: Environment, spares: Speculation
) -> tuple[LoopResult, Final, Verified | None]:
    """Stage the run's changes and check the committed tree: with the check made beside the
    last iteration when it checked exactly this tree, else now in a fresh sandbox; and
    the one made beside the last iteration when it was that one."""
    ws = run.ws
    spares.hold()  # git's index is the run's again
    ws.stage(result.changed)
    wanted = stops.STOPS[result.stop_reason].publishable  # else, e.g. on Ctrl-C: no waiting
    checked = spares.verified(ws.staged_tree_id()) if wanted else None
    spare = spares.spare() if wanted and not checked else None
    args = (run.settings, run.spec, ws, spare, result, start.expect, start.python_repo, env)
    result, final = verify_run(*args, run.on_event, ahead=checked)
    return result, final, checked if final.checks else None


def _begin(
    spec: TaskSpec,
    settings: cfg.Settings,
    ws: Workspace,
    model: str,
    redact: Redactor,
    on_event: Event,
    prior: Prior | None,
    head: HeadStart | None,
) -> Run:
    run_id = prior.run_id if prior else head.run_id if head else new_run_id()
    if prior:  # what a killed run left
        for left in (run_id, f"{run_id}-env", f"{run_id}-verify", *lane_run_ids(run_id, 8)):
            cleanup_orphans(left)
    return Run(run_id, spec, settings, ws, model, redact, on_event, _now(), time.monotonic())


def _environment(run: Run) -> Environment:
    """The image the run's sandboxes start from: the cached environment of its setup step,
    built here (in a builder of its own, on the base commit's files) when not cached."""
    began = run.lap()
    ws = run.ws
    env = environment.prepare(
        run.settings, run.spec, run.run_id, ws.read_base_file, sorted(ws.base_files()),
        ws.base_tree, run.on_event,
    )  # fmt: skip
    if env.setup is not None:
        run.on_event("setup: " + lines.checks_line((env.setup,)))
    run.on_event(f"environment: {env.summary()} in {run.lap() - began:.1f}s")
    return env


def _start_sandbox(run: Run, env: Environment, head: HeadStart | None) -> DockerSandbox:
    config = environment.sandbox_config(run.settings, env)
    started = head.sandbox_for(config) if head else None
    return started or DockerSandbox.start(config, run.run_id)


def _knowledge(run: Run, env: Mapping[str, str]) -> kn.Knowledge:
    """The team's written rules for this run (codebot.knowledge.for_run); each problem with
    a source, and how they are ranked, is one progress line."""
    ws = run.ws
    found = kn.for_run(
        kn.KnowledgeOptions.of(run.settings, env), ws.path, ws.base_commit, ws.source
    )
    for note in found.notes:
        run.on_event(note)
    return found


def _baseline(
    run: Run,
    sandbox: DockerSandbox,
    env: Environment,
    knowledge: kn.Knowledge,
    ahead: Ahead,
) -> Baseline:
    """Fill the sandbox, then run the checks before any change; and from what they say, the
    first prompt (its files parsed `ahead`, while all this ran). A setup step that failed (no
    environment) ends it here."""
    timings = {"environment_s": run.lap()}
    if not env.ready and env.setup is not None:
        detail = f"`{env.setup.command}` failed: {env.setup.reason}"
        return Baseline((env.setup,), (), False, timings, stop=("setup_failed", detail))
    environment.fill(sandbox, env, run.ws.path, run.ws.deleted_since_base())
    timings["sandbox_ready_s"] = run.lap()
    run.on_event(f"sandbox: {env.image} ready in {timings['sandbox_ready_s']:.1f}s")
    given = run.spec
    dropped = environment.unrunnable_lint(given.lint, run.settings.detected_lint, sandbox)
    if dropped:
        run.on_event(f"note: {dropped}")
        run = replace(run, spec=replace(given, lint=None))
    setup = env.setup
    python_repo = run.ws.is_python()
    ready = run.lap()
    checks, expect = baseline_checks(sandbox, run.spec, python_repo=python_repo)
    timings = {**timings, "baseline_s": round(run.lap() - ready, 3)}
    run.on_event("baseline: " + lines.checks_line(checks))
    checked = run.lap()
    failure = feedback_for_model(checks, run.settings.feedback_tokens)
    tracked = run.ws.tracked_files()
    settings = run.settings
    passages = kn.Recall(knowledge, run.spec, kn.FIRST_TOKENS)(run.spec.files, failure, ())
    section = context.render_knowledge(passages)
    ctx = context.gather(
        run.ws.path,
        tracked,
        run.spec,
        failure,
        max(0, settings.context_tokens - tokens.estimate_tokens(section)),
        model=settings.model.name or None,
        exclude=settings.context_exclude,
        parsed=ahead.parsed(),
    )
    timings["prompt_s"] = round(run.lap() - checked, 3)  # the first prompt, after the checks
    said = context.baseline_text(failure)
    task = context.render_task(run.spec, ctx, said, section)
    prompt = (Message("system", context.system_prompt()), Message("user", task))
    before = (setup,) if setup is not None else ()
    broken = environment_problem(checks, tracked, _dependency_texts(run.ws, tracked))
    stop: tuple[StopReason, str] | None = ("environment_broken", broken) if broken else None
    grounding = GroundingPassage.shown(passages, 0)
    return Baseline(
        (*before, *checks), prompt, python_repo, timings, stop, expect=expect, grounding=grounding,
        spec=run.spec if run.spec is not given else None, notes=(dropped,) if dropped else (),
    )  # fmt: skip


def _dependency_texts(ws: Workspace, tracked: Sequence[str]) -> dict[str, str]:
    return {p: ws.read_base_file(p) or "" for p in environment.input_paths(tracked, "")}


def _loop(
    run: Run,
    sandbox: DockerSandbox,
    model: Model,
    start: Baseline,
    prior: Prior | None,
    knowledge: kn.Knowledge,
    lanes: Lanes,
    verifier: Verifier | None,
) -> LoopResult:
    """The loop from the first prompt, or from where an interrupted run stopped; or, when
    setup failed, the stop that says so without asking the model."""
    done = prior.iterations if prior else ()
    if start.stop is not None:
        return LoopResult(
            iterations=done,
            stop_reason=start.stop[0],
            stop_detail=start.stop[1],
            usage=Usage(),
            cost_usd=None,
            changed=(),
        )
    settings = run.settings
    loop = Loop(
        spec=run.spec,
        rules=StopRules.of(run.spec),
        tree=_tree(run),
        sandbox=sandbox,
        python_repo=start.python_repo,
        expect=start.expect,
        baseline_green=all(c.passed for c in start.checks),
        continued=run.ws.ahead_of_base(),
        tracked=tuple(run.ws.tracked_files()),
        model=settings.model.name or None,
        feedback_tokens=settings.feedback_tokens,
        recall=kn.Recall(knowledge, run.spec) if knowledge.origins else None,
        candidates=settings.candidates,
        lanes=lanes if lanes.count else None,
        verifier=verifier,
        started=run.t0,
    )
    state = loop.resume(LoopState(history=start.prompt, grounding=start.grounding), done)
    checkpoint = Checkpoint(run, start.checks)
    checkpoint(state.iterations)
    return run_loop(loop, model, state, checkpoint)


@dataclass(frozen=True)
class Checkpoint:
    """After every iteration: run.json rewritten (so a run killed outright can be resumed)
    and one progress line."""

    run: Run
    baseline: tuple[CheckResult, ...]

    def __call__(self, iterations: tuple[Iteration, ...]) -> None:
        partial = LoopResult(
            iterations=iterations,
            stop_reason="interrupted",
            stop_detail=f"stopped after iteration {len(iterations)}",
            usage=sum((i.usage for i in iterations), Usage()),
            cost_usd=None,
            changed=(),
        )
        record = self.run.record(partial, self.baseline, {})
        directory = self.run.settings.runs_dir / self.run.run_id
        report.write_checkpoint(directory, record, self.run.redact)
        if iterations:
            self.run.on_event(lines.iteration_line(iterations[-1]))


def _close(sandbox: DockerSandbox, on_event: Event) -> str:
    left = close_sandbox(sandbox)
    if left:
        on_event(f"warning: {left}")
    return left


def _commit(run: Run, result: LoopResult) -> str | None:
    """Commit what is staged when the run ended in a reviewable state."""
    if not stops.STOPS[result.stop_reason].publishable:
        return None
    summary = next(
        (report.explanation(it.reply) for it in reversed(result.iterations) if it.edits), ""
    )
    git = run.settings.git
    # GitHub reads mentions and closing keywords in commit messages too: the model's and the
    # issue's words are redacted, then made inert.
    message = Template(git.commit_template).safe_substitute(
        title=prose.neutralise(run.redact(run.spec.title)),
        summary=prose.neutralise(run.redact(summary)),
        run_id=run.run_id,
        stop_reason=result.stop_reason,
    )
    return run.ws.commit(run.redact(message), git.author_name, git.author_email)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
