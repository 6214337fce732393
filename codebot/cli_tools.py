"""The tool commands: bench, batch, detect, setup (registered on `codebot.cli.cli`)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from codebot.cli import _echo, _model_options, _progress, _settings, cli


@cli.command()
@click.option(
    "--tasks",
    "tasks_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="The directory holding the task directories, e.g. benchmarks/tasks.",
)
@click.option(
    "--oracle",
    is_flag=True,
    help="Ask a built-in local model that answers with each task's reference diff "
    "(line numbers drifted first, exact after) instead of the configured endpoint.",
)
@click.option("--only", multiple=True, metavar="NAME", help="Run only this task (repeatable).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("benchmarks/results"),
    show_default=True,
    help="Where quality.md and quality.json are written.",
)
@_model_options
def bench(tasks_dir: Path, oracle: bool, only: tuple[str, ...], out: Path, **flags: Any) -> None:
    """Run the quality benchmark: each task's spec on a fresh repository, judged by its hidden
    tests in a sandbox.

    Exits 0 whatever the tasks' outcome (it is a measurement), non-zero when the harness
    itself failed. Task repositories and run files go under --runs-dir (default: a new
    .codebot/runs/bench-<time> folder).
    """
    from codebot.bench import load_tasks, render_table, run_bench, write_results

    tasks = load_tasks(tasks_dir, only)
    runs = flags.get("runs_dir") or Path(".codebot/runs") / time.strftime("bench-%Y%m%d-%H%M%S")
    settings, env = _settings(flags), dict(os.environ)
    report = run_bench(tasks, settings, runs.resolve(), oracle=oracle, env=env, on_event=_progress)
    files = write_results(report, out)
    _echo(render_table(report))
    solved = sum(r.solved for r in report.results)
    _echo(f"\n{solved}/{len(report.results)} solved in {report.total_s:.0f} s")
    _echo(f"  results: {', '.join(str(f) for f in files)}")
    _echo(f"  runs:    {runs}")
    if report.errors:
        names = ", ".join(r.name for r in report.errors)
        _echo(f"codebot: the harness failed on {names}; see the error column", err=True)
        sys.exit(1)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The git repository every task works on (each in its own clone).",
)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option(
    "--emit-matrix",
    is_flag=True,
    help="Print a GitHub Actions job matrix (one task per runner) instead of running.",
)
@_model_options
def batch(
    paths: tuple[Path, ...], repo: Path, workers: int, emit_matrix: bool, **flags: Any
) -> None:
    """Run several task specs (files, or directories of *.yaml) at once, WORKERS at a time.

    Each task is a `codebot dry-run` of its own (own clone, own sandbox); one failing task
    never stops the others; Ctrl-C stops them all, each cleaning up. Prints one summary
    table; exits 0 when every task passed, 1 otherwise.
    """
    from codebot.batch import find_specs, matrix, run_batch, summary_rows

    specs = find_specs(paths)
    if emit_matrix:
        _echo(json.dumps(matrix(specs, Path.cwd())))
        return
    runs = flags.get("runs_dir") or Path(".codebot/runs") / time.strftime("batch-%Y%m%d-%H%M%S")
    extra = [a for k, v in flags.items() if v is not None and k != "runs_dir"
             for a in (f"--{k.replace('_', '-')}", str(v))]  # fmt: skip
    report = run_batch(specs, repo.resolve(), Path(runs).resolve(), workers, _progress, extra)
    _echo("\n".join(summary_rows(report)))
    _echo(f"\n{report.passed}/{len(report.runs)} passed in {report.wall_s:.1f} s "
          f"with {workers} worker(s); run files under {runs}")  # fmt: skip
    sys.exit(0 if report.passed == len(report.runs) else 1)


@cli.command("detect")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The git repository to look at. Only its committed files at HEAD are read.",
)
def detect_command(repo: Path) -> None:
    """Print a .codebot.yml fragment with the setup, build, lint and test commands that
    REPO's own files (CI workflows, tox, package.json, pyproject, go.mod, Makefile...)
    ask for, each under a comment naming the file and line it came from."""
    from codebot.configure import detect_at
    from codebot.detect import to_yaml

    _echo(to_yaml(detect_at(repo.resolve(), None)).rstrip("\n"))


@cli.command("setup")
@click.option("--check", is_flag=True, help="Also run the checks once on the base branch.")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The git repository. Only its committed files at HEAD are used.",
)
def setup_command(check: bool, repo: Path) -> None:
    """Build (or find in the cache) REPO's environment: its setup step, run once with the
    network the operator allows, kept as an image that later runs start from offline.

    With --check, run the repository's checks once in it and say whether the environment
    works (exit 0) or not (exit 1, with the cause and the fix), before any model is asked.
    """
    from codebot.setup_check import check_environment

    report = check_environment(repo.resolve(), _settings({}), run_checks=check, on_event=_progress)
    env = report.environment
    _echo(f"codebot: toolchain {report.toolchain}; environment {env.summary()}")
    for c in report.checks:
        result = "passed" if c.passed else f"failed ({c.reason})"
        _echo(f"  {c.name}: `{c.command}` {result}")
    if report.problem:
        _echo(f"  environment: does not work: {report.problem}")
    elif check and env.ready:
        _echo("  environment: works (the checks ran; failures, if any, are the code's)")
    sys.exit(0 if report.works else 1)
