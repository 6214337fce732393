"""Many tasks at once: one `codebot dry-run` process per task, `workers` at a time.

Each task runs in a process of its own (its own clone, sandbox and model client), so runs
share no mutable state, a task that fails or crashes never stops the others, and stopping
the batch (Ctrl-C, SIGTERM) reaches every running task, which cleans up after itself as a
single run does. The processes are forked from a server that has imported codebot once
(codebot.batch_task). The results are read back from each run's run.json. For more than
one machine, `matrix()` gives a GitHub Actions job matrix with one task per runner.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from codebot.errors import ConfigError
from codebot.spec import load_spec

SPEC_SUFFIXES = (".yaml", ".yml")
# Each task is forked from a server that imported codebot and the model SDK once
# (codebot.batch_task): a fresh interpreter would spend ~0.75 s of CPU on that per task.
_LAUNCHER = multiprocessing.get_context("forkserver")
_LAUNCHER.set_forkserver_preload(["codebot.batch_task"])


@dataclass(frozen=True)
class TaskRun:
    """One task's end: from its run.json when it wrote one, else from its process."""

    spec: str
    exit_code: int
    stop_reason: str
    iterations: int
    tokens: int
    cost_usd: float | None
    wall_s: float
    peak_rss_mb: float
    branch: str
    run_dir: str
    error: str = ""


@dataclass(frozen=True)
class BatchReport:
    runs: tuple[TaskRun, ...]
    workers: int
    wall_s: float

    @property
    def passed(self) -> int:
        return sum(r.stop_reason == "passed" for r in self.runs)


def find_specs(paths: Sequence[Path]) -> list[Path]:
    """The spec files named, or found (not recursively) in the directories named; each is
    validated now, so a bad one stops the batch before any task starts."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in SPEC_SUFFIXES)
        else:
            found.append(path)
    if not found:
        raise ConfigError("no task spec found", "name spec files or a directory of *.yaml")
    for spec in found:
        load_spec(spec, {"test": "(checked per run)"})
    return found


def matrix(specs: Sequence[Path], root: Path) -> dict[str, Any]:
    """A GitHub Actions `strategy.matrix` with one entry per task (paths relative to root)."""
    include = []
    for spec in specs:
        relative = spec.resolve().relative_to(root.resolve()).as_posix()
        include.append({"spec": relative, "id": load_spec(spec, {"test": "-"}).slug})
    return {"include": include}


def run_batch(
    specs: Sequence[Path],
    repo: Path,
    runs_dir: Path,
    workers: int,
    on_event: Callable[[str], None],
    extra_args: Sequence[str] = (),
) -> BatchReport:
    """Run every task, `workers` at a time; a task's failure is its own."""
    started = time.monotonic()
    queue = list(enumerate(specs))
    results: dict[int, TaskRun] = {}
    lock = threading.Lock()
    running: dict[int, BaseProcess] = {}
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            with lock:
                if not queue:
                    return
                index, spec = queue.pop(0)
            result = _one(spec, index, repo, runs_dir, extra_args, running, lock, on_event)
            with lock:
                results[index] = result

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, workers))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        _stop_all(running, lock)
        for thread in threads:
            thread.join()
        raise
    ordered = tuple(results[i] for i in sorted(results))
    return BatchReport(ordered, workers, round(time.monotonic() - started, 2))


def _one(
    spec: Path,
    index: int,
    repo: Path,
    runs_dir: Path,
    extra_args: Sequence[str],
    running: dict[int, BaseProcess],
    lock: threading.Lock,
    on_event: Callable[[str], None],
) -> TaskRun:
    """One task in its own process; its progress lines are passed on with its name."""
    own = runs_dir / f"{index:03d}-{spec.stem}"
    argv = ["dry-run", str(spec), "--repo", str(repo), "--runs-dir", str(own), *extra_args]
    t0 = time.monotonic()
    receive, send = _LAUNCHER.Pipe(duplex=False)
    proc = _LAUNCHER.Process(target=_task_main, args=(argv, send), daemon=False)
    with lock:
        proc.start()
        running[index] = proc
    send.close()
    out, code, peak = "", None, 0.0
    with contextlib.suppress(EOFError, OSError):
        while True:
            kind, *said = receive.recv()
            if kind == "err":
                on_event(f"{spec.stem}: {said[0].decode('utf-8', 'replace').rstrip()}")
            elif kind == "out":
                out = said[0].decode("utf-8", "replace")
            else:
                code, peak = said[0], said[1] / 1024  # KiB on Linux
    proc.join()
    with lock:
        running.pop(index, None)
    if code is None:  # it ended before it could say: its status, a signal as a shell shows it
        status = proc.exitcode or 0
        code = status if status >= 0 else 128 - status
    return _result(spec, code, own, time.monotonic() - t0, peak, out)


def _task_main(argv: Sequence[str], send: Any) -> None:
    from codebot.batch_task import main

    main(argv, send)


def _result(spec: Path, code: int, own: Path, wall: float, peak: float, out: str) -> TaskRun:
    records = sorted(own.glob("*/run.json"))
    if not records:
        said = out.strip().splitlines()[-1:] or ["no run record"]
        return TaskRun(str(spec), code, "error", 0, 0, None, round(wall, 2), round(peak, 1),
                       "", "", error=said[0])  # fmt: skip
    data = json.loads(records[-1].read_text(encoding="utf-8"))
    branch = data["branch"] if data.get("head_commit") else ""
    return TaskRun(
        spec=str(spec),
        exit_code=code,
        stop_reason=str(data.get("stop_reason")),
        iterations=len(data.get("iterations", [])),
        tokens=int(data.get("usage", {}).get("total_tokens", 0)),
        cost_usd=data.get("cost_usd"),
        wall_s=round(wall, 2),
        peak_rss_mb=round(peak, 1),
        branch=branch,
        run_dir=str(records[-1].parent),
    )


def _stop_all(running: dict[int, BaseProcess], lock: threading.Lock) -> None:
    """SIGTERM to every task (each removes its sandbox and clone, as on Ctrl-C)."""
    with lock:
        procs = list(running.values())
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + 60
    for proc in procs:
        proc.join(max(0.1, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()


def summary_rows(report: BatchReport) -> list[str]:
    rows = [
        "| task | stop | iterations | tokens | cost | wall (s) | peak RSS (MB) | branch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report.runs:
        cost = "–" if r.cost_usd is None else f"${r.cost_usd:.4f}"
        stop = r.stop_reason if not r.error else f"error: {r.error[:80]}"
        rows.append(
            f"| {Path(r.spec).name} | {stop} | {r.iterations} | {r.tokens:,} | {cost} "
            f"| {r.wall_s} | {r.peak_rss_mb} | {r.branch or '–'} |"
        )
    return rows
