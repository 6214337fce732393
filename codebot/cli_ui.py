"""The commands around a run: doctor, show, runs, init (registered on `codebot.cli.cli`)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codebot.cli import _echo, _settings, cli
from codebot.redact import Redactor

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from codebot.viewer import RunSummary

_MARKS = {"ok": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}
_COLOURS = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


@cli.command()
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    help="The repository to check (default: the one the current directory is in, if any).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def doctor(repo: Path | None, as_json: bool) -> None:
    """Check that this machine can run codebot, one line per check, each failure with its fix.

    The Docker engine and its version; the sandbox and toolchain images; the environment
    cache; the model endpoint, the model and the key (one request of a few tokens, and what
    it cost); git and the repository; GITHUB_TOKEN when set and the repository is on
    GitHub. Exits 1 when any check fails.
    """
    from codebot.doctor import examine

    report = examine(_settings({}), dict(os.environ), repo)
    if as_json:
        _echo(json.dumps(report.as_json(), indent=2))
    else:
        from rich.text import Text

        redact = Redactor.from_env(os.environ)
        width = max(len(f.check) for f in report.findings)
        lines = [
            Text.assemble(
                (f"{_MARKS[f.status]:<4}", _COLOURS[f.status]),
                f" {f.check:<{width}}  {redact(f'{f.detail} — {f.fix}' if f.fix else f.detail)}",
            )
            for f in report.findings
        ]
        _print(_console(), lines)
    sys.exit(1 if report.failed else 0)


def _runs_dir_option(fn: Any) -> Any:
    return click.option(
        "--runs-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help="Where the runs are (default: the current repository's .git/codebot/runs, "
        "and ./.codebot/runs).",
    )(fn)


@cli.command()
@click.argument("run", default="latest")
@_runs_dir_option
def show(run: str, runs_dir: Path | None) -> None:
    """Show a past run from its run.json: the task, each iteration's edits (as diffs),
    refusals and checks, how it stopped, tokens, cost and timings.

    RUN is `latest` (the default), a run id (or the start of one), or a run directory.
    """
    from codebot import viewer

    directory = viewer.find(run, viewer.runs_dirs(runs_dir, Path.cwd()))
    data = _redacted(viewer.load(directory))
    _print(_console(), viewer.render(data))


@cli.command()
@_runs_dir_option
def runs(runs_dir: Path | None) -> None:
    """List past runs, newest first: id, title, outcome, iterations, cost, time."""
    from codebot import viewer

    dirs = viewer.runs_dirs(runs_dir, Path.cwd())
    found = viewer.summaries(dirs)
    if not found:
        where = ", ".join(str(d) for d in dirs) or "no runs directory here"
        _echo(f"codebot: no runs found ({where})")
        return
    console = _console()
    _print(console, [viewer.runs_table([_redacted_row(r) for r in found], console.width)])


@cli.command("init")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The repository to set up (its committed files are read; files go in its work tree).",
)
@click.option("--check", is_flag=True, help="Only check the existing .codebot.yml.")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
@click.option(
    "--action",
    default="<owner>/codebot@v0",
    show_default=True,
    help="The codebot action the workflow uses, e.g. your-org/codebot@v0.",
)
def init_command(repo: Path, check: bool, force: bool, action: str) -> None:
    """Write a commented .codebot.yml (the commands detected from REPO's own files) and the
    example workflow .github/workflows/codebot.yml into REPO; existing files are kept
    unless --force.

    With --check, say what is wrong with REPO's .codebot.yml, with line numbers (exit 1).
    """
    from codebot import scaffold

    repo = repo.resolve()
    if check:
        _check_config(repo / scaffold.CONFIG)
        return
    from codebot.configure import detect_at

    files = {
        scaffold.CONFIG: scaffold.config_text(detect_at(repo, None)),
        scaffold.WORKFLOW: scaffold.workflow_text(
            scaffold.WORKFLOW_SOURCE.read_text(encoding="utf-8"), action
        ),
    }
    for done in scaffold.write(repo, files, force):
        why = "" if done.how == "wrote" else " (it exists; --force overwrites it)"
        _echo(f"codebot: {done.how} {done.path}{why}")
    if "<owner>" in action:
        _echo("  in the workflow, replace <owner> with the owner of your codebot copy (--action)")
    _echo("  review both, commit them, and add the secret OPENAI_API_KEY (README 'On GitHub')")


def _check_config(path: Path) -> None:
    from codebot import scaffold

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    found = scaffold.problems(text, _settings({}), str(path))
    for problem in found:
        _echo(problem, err=True)
    if found:
        sys.exit(1)
    _echo(f"codebot: {path} is valid")


def _console() -> Console:
    """stdout as rich draws it: colour on a terminal, plain and wide elsewhere (a pipe,
    a file, a test), so lines are not cut at 80 columns."""
    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(highlight=False, width=None if tty else 200, soft_wrap=not tty)


def _print(console: Console, items: Iterable[RenderableType]) -> None:
    """Renderables made from redacted text (`_redacted`), printed without rich's markup,
    so a `[red]` in a model's reply stays text."""
    for item in items:
        console.print(item, markup=False)


def _redacted_row(row: RunSummary) -> RunSummary:
    from dataclasses import replace

    return replace(row, title=Redactor.from_env(os.environ)(row.title))


def _redacted(data: Any, redact: Callable[[str], str] | None = None) -> Any:
    """The record with every string redacted (run.json was redacted when written; the
    environment may hold a secret that was not set then)."""
    redact = redact or Redactor.from_env(os.environ)
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, list):
        return [_redacted(v, redact) for v in data]
    if isinstance(data, dict):
        return {k: _redacted(v, redact) for k, v in data.items()}
    return data
