"""`codebot bench`: the project's quality benchmark, run and judged.

Each task directory holds `repo/` (plus an optional deterministic `generate.py` that adds
files to it), `task.yaml`, `reference.diff` and `hidden/`. A task's repository is committed
fresh, the spec is run through `codebot.local.execute` like any dry-run, and the result is
judged by tests the bot never saw: `hidden/` is copied into a checkout of the branch the run
left (or of the base, when it left none) and its tests run in a DockerSandbox, never on the
host. The run records give the rest: iterations, prompt tokens, stop reason, and whether
the files the reference changes were in the first prompt at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from codebot import config as cfg
from codebot.errors import CodebotError, SpecError
from codebot.local import RunRequest, execute
from codebot.oracle import MODEL_NAME, OracleServer
from codebot.records import to_jsonable
from codebot.runner import Event, quiet
from codebot.sandbox import DockerSandbox, ping
from codebot.spec import load_spec
from codebot.text import clip

JUDGE_TIMEOUT_S = 180
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
_CHANGED = re.compile(r"^(?:\+\+\+ b/|--- a/)(.+?)\s*$", re.MULTILINE)
_EXISTING = re.compile(r"^--- a/(.+?)\s*$", re.MULTILINE)


class BenchError(CodebotError):
    """A task directory is malformed, or the harness itself could not run."""

    exit_code = 2


@dataclass(frozen=True)
class Task:
    name: str
    directory: Path
    title: str
    reference: str
    changed: tuple[str, ...]  # every path the reference diff touches
    existing: tuple[str, ...]  # those of them in the base commit: what a prompt could show
    hidden_tests: tuple[str, ...]  # test files under hidden/, as paths in the repository

    @property
    def spec_path(self) -> Path:
        return self.directory / "task.yaml"

    @property
    def generator(self) -> Path | None:
        script = self.directory / "generate.py"
        return script if script.is_file() else None


@dataclass(frozen=True)
class Verdict:
    solved: bool
    detail: str  # pytest's summary line, or why the judge could not run


@dataclass(frozen=True)
class TaskResult:
    name: str
    solved: bool
    stop_reason: str
    iterations: int
    prompt_tokens: tuple[int, ...]  # one per model call
    in_first_prompt: bool
    missing_from_prompt: tuple[str, ...]
    wall_s: float
    cost_usd: float | None
    judge: str
    error: str = ""  # a harness error: the task was not measured


@dataclass(frozen=True)
class BenchReport:
    model: str
    oracle: bool
    machine: str
    total_s: float
    results: tuple[TaskResult, ...]

    @property
    def errors(self) -> tuple[TaskResult, ...]:
        return tuple(r for r in self.results if r.error)


def load_tasks(root: Path, only: Sequence[str] = ()) -> list[Task]:
    """Every task directory under `root` (sorted), or just those named in `only`."""
    if not root.is_dir():
        raise BenchError(f"task directory {root} does not exist", "pass --tasks DIR")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_")))
    unknown = sorted(set(only) - {d.name for d in dirs})
    if unknown:
        raise BenchError(f"no task named {', '.join(unknown)} in {root}", "check --only")
    tasks = [load_task(d) for d in dirs if not only or d.name in only]
    if not tasks:
        raise BenchError(f"{root} holds no task directories", "add one, see benchmarks/tasks")
    titles = [t.title for t in tasks]
    twice = sorted({t for t in titles if titles.count(t) > 1})
    if twice:  # the oracle tells tasks apart by their title
        raise BenchError(f"several tasks in {root} have the title {twice[0]!r}", "rename one")
    return tasks


def load_task(directory: Path) -> Task:
    """Check that a task directory has every part before anything runs, and say which not."""
    has_files = (directory / "repo").is_dir() or (directory / "generate.py").is_file()
    missing = [
        part
        for part, ok in (
            ("repo/ (or generate.py)", has_files),
            ("task.yaml", (directory / "task.yaml").is_file()),
            ("reference.diff", (directory / "reference.diff").is_file()),
            ("hidden/", (directory / "hidden").is_dir()),
        )
        if not ok
    ]
    if missing:
        raise BenchError(f"task {directory} has no {', '.join(missing)}", _LAYOUT)
    try:
        spec = load_spec(directory / "task.yaml")
    except SpecError as exc:
        raise BenchError(f"task {directory}: {exc.cause}", exc.fix) from None
    reference = (directory / "reference.diff").read_text(encoding="utf-8")
    changed = tuple(dict.fromkeys(_CHANGED.findall(reference)))
    if not changed:
        raise BenchError(f"task {directory}: reference.diff changes no file", _LAYOUT)
    hidden = directory / "hidden"
    tests = tuple(sorted(p.relative_to(hidden).as_posix() for p in hidden.rglob("test_*.py")))
    if not tests:
        raise BenchError(f"task {directory}: hidden/ holds no test_*.py file", _LAYOUT)
    existing = tuple(dict.fromkeys(_EXISTING.findall(reference)))
    return Task(
        directory.name, directory.resolve(), spec.title, reference, changed, existing, tests
    )


_LAYOUT = "a task directory holds repo/, task.yaml, reference.diff (a/ b/ prefixes) and hidden/"


def materialise(task: Task, dest: Path) -> Path:
    """The task's repository as a fresh git repo with one commit on `main`."""
    if dest.exists():
        raise BenchError(f"{dest} already exists", "pass a new --runs-dir")
    if (task.directory / "repo").is_dir():
        shutil.copytree(task.directory / "repo", dest)
    dest.mkdir(parents=True, exist_ok=True)
    if task.generator is not None:  # the benchmark's own script, not the task's code
        _call([sys.executable, str(task.generator), str(dest)], task.directory)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", f"{task.name}: starting point")
    return dest


def judge(
    task: Task, repo: Path, branch: str | None, sandbox: cfg.SandboxConfig, run_id: str = ""
) -> Verdict:
    """Run the hidden tests on the branch (or the base) in a sandbox: solved iff they pass."""
    run_id = run_id or f"bench-judge-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="codebot-judge-") as tmp:
        tree = Path(tmp) / "tree"
        _git(repo, "clone", "-q", "--no-hardlinks", *(["-b", branch] if branch else []),
             str(repo), str(tree))  # fmt: skip
        shutil.copytree(task.directory / "hidden", tree, dirs_exist_ok=True)
        tests = " ".join(shlex.quote(t) for t in task.hidden_tests)
        with DockerSandbox.start(sandbox, run_id) as box:
            box.sync(tree)
            result = box.run(
                f"python3 -m pytest -q -p no:cacheprovider -- {tests}", JUDGE_TIMEOUT_S
            )
    lines = [line for line in result.output.splitlines() if line.strip()]
    detail = "timed out" if result.timed_out else clip(lines[-1] if lines else "no output", 120)
    return Verdict(result.exit_code == 0 and not result.timed_out, detail)


def shown_in_prompt(prompt: str, path: str) -> bool:
    """Whether the prompt shows `path`'s content: a header line naming it (alone, or followed
    by a region such as a line range) with a code fence on one of the next two lines. A
    name that is only in the file list does not count."""
    lines = prompt.splitlines()
    for i, line in enumerate(lines):
        head = line.strip().lstrip("#*` ").rstrip("*`: ")
        if head != path and not re.match(rf"{re.escape(path)}[\s:(\[,—-]", head):
            continue
        if any(nxt.lstrip().startswith(("```", "~~~")) for nxt in lines[i + 1 : i + 3]):
            return True
    return False


def run_task(
    task: Task, settings: cfg.Settings, work: Path, env: Mapping[str, str], on_event: Event
) -> TaskResult:
    """One task: a fresh repo, a dry-run of its spec, the judge."""
    repo = materialise(task, work / task.name / "repo")
    t0 = time.monotonic()
    try:
        outcome = execute(
            RunRequest(task.spec_path, repo, replace(settings, runs_dir=work / task.name)),
            env=env,
            on_event=lambda line: on_event(f"{task.name}: {line}"),
        )
    except CodebotError as exc:
        return _failed(task, time.monotonic() - t0, f"run: {exc.one_line()}")
    except Exception as exc:  # a crash in one task must not lose the others' figures
        return _failed(task, time.monotonic() - t0, f"run crashed: {type(exc).__name__}: {exc}")
    wall = time.monotonic() - t0
    record = outcome.record
    prompt = outcome.files.prompt.read_text(encoding="utf-8")
    missing = tuple(p for p in task.existing if not shown_in_prompt(prompt, p))
    try:
        verdict = judge(task, repo, outcome.branch, settings.sandbox)
    except CodebotError as exc:
        verdict, error = Verdict(False, "judge failed"), f"judge: {exc.one_line()}"
    else:
        error = ""
    return TaskResult(
        name=task.name,
        solved=verdict.solved,
        stop_reason=record.stop_reason,
        iterations=len(record.iterations),
        prompt_tokens=tuple(it.usage.prompt_tokens for it in record.iterations),
        in_first_prompt=not missing,
        missing_from_prompt=missing,
        wall_s=round(wall, 2),
        cost_usd=record.cost_usd,
        judge=verdict.detail,
        error=error,
    )


def _failed(task: Task, wall: float, error: str) -> TaskResult:
    return TaskResult(task.name, False, "error", 0, (), False, (), round(wall, 2), None, "", error)


def run_bench(
    tasks: Sequence[Task],
    settings: cfg.Settings,
    work: Path,
    *,
    oracle: bool = False,
    env: Mapping[str, str] | None = None,
    on_event: Event = quiet,
) -> BenchReport:
    """Every task in order, against the configured endpoint or the built-in oracle."""
    env = dict(os.environ if env is None else env)
    ping(settings.sandbox.image)
    t0 = time.monotonic()
    with contextlib.ExitStack() as stack:
        if oracle:
            server = stack.enter_context(OracleServer())
            for task in tasks:
                server.register(task.title, task.reference)
            settings = cfg.with_flags(
                settings, model=MODEL_NAME, base_url=server.base_url, api_key="oracle"
            )
        cfg.require_model(settings)
        results = []
        for task in tasks:
            on_event(f"{task.name}: starting")
            result = run_task(task, settings, work, env, on_event)
            on_event(f"{task.name}: {_verdict_word(result)} ({result.judge or result.error})")
            results.append(result)
    total = round(time.monotonic() - t0, 1)
    return BenchReport(settings.model.name, oracle, machine(), total, tuple(results))


def _verdict_word(result: TaskResult) -> str:
    return "error" if result.error else "solved" if result.solved else "not solved"


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, cores={cores}"
    )


def save_figures(out: Path, name: str, markdown: str, result: object) -> None:
    """A benchmark's figures: `<name>.md` for people and `<name>.json` for tools, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(markdown.rstrip("\n") + "\n", encoding="utf-8")
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


def _git(cwd: Path, *args: str) -> None:
    _call(["git", *args], cwd, {**os.environ, **_GIT_ENV})


def _call(argv: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> None:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(
            f"`{' '.join(argv[:3])} ...` failed in {cwd}: {clip(done.stderr.strip(), 300)}", ""
        )


def to_json(report: BenchReport) -> dict[str, object]:
    return {
        "machine": report.machine,
        "model": report.model,
        "oracle": report.oracle,
        "total_s": report.total_s,
        "solved": sum(r.solved for r in report.results),
        "tasks": [to_jsonable(r) for r in report.results],
    }


def render_table(report: BenchReport) -> str:
    """The summary as a Markdown table, one row per task (what `codebot bench` prints)."""
    rows = [
        "| task | solved | stop | iterations | prompt tokens per call | in first prompt "
        "| wall (s) | cost |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report.results:
        shown = "yes" if r.in_first_prompt else "no: " + ", ".join(r.missing_from_prompt)
        cost = "–" if r.cost_usd is None else f"${r.cost_usd:.4f}"
        tokens = ", ".join(f"{t:,}" for t in r.prompt_tokens) or "–"
        stop = f"error: {r.error}" if r.error else r.stop_reason
        solved = "yes" if r.solved else "no"
        rows.append(
            f"| {r.name} | {solved} | {stop} | {r.iterations} | {tokens} | {shown} "
            f"| {r.wall_s:.1f} | {cost} |"
        )
    return "\n".join(rows)


def write_results(report: BenchReport, out: Path) -> tuple[Path, Path]:
    """quality.md (for people) and quality.json (for tools), both from the same report."""
    out.mkdir(parents=True, exist_ok=True)
    data, solved = to_json(report), sum(r.solved for r in report.results)
    json_path, md_path = out / "quality.json", out / "quality.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    model = f"{report.model} (built-in oracle)" if report.oracle else report.model
    md_path.write_text(
        f"# codebot quality benchmark\n\n{report.machine}; model {model}; "
        f"{solved}/{len(report.results)} solved in {report.total_s:.0f} s\n\n"
        f"{render_table(report)}\n\n{_LEGEND}",
        encoding="utf-8",
    )
    return md_path, json_path


_LEGEND = """\
- solved: the hidden acceptance tests pass on the branch the run left (on the base when none).
- stop: the run's stop reason; `passed` means codebot's own checks went green.
- prompt tokens per call: as the endpoint reported them, one number per model call.
- in first prompt: whether every file the reference diff changes (that exists before the
  change) was shown in the first prompt, whole or by a region; else the files that were not.
- wall: the run alone (clone, sandbox, baseline, loop, verification), not the judge.
"""
