"""The command line. The only place that prints, and that turns errors into exit codes."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from codebot import __version__, stops
from codebot import config as cfg
from codebot.errors import CodebotError
from codebot.redact import Redactor

# The commands import what they use when they run: the SDKs (openai, PyGithub, docker,
# GitPython) cost most of a second, which `codebot --help` and a mistyped flag should not pay.
if TYPE_CHECKING:
    from codebot.headstart import HeadStart
    from codebot.local import RunOutcome, RunRequest

EXAMPLES = Path(__file__).resolve().parent.parent / "specs" / "examples"


def _model_options(fn: Any) -> Any:
    options = [
        click.option("--model", help="Model name (default: $CODEBOT_MODEL)."),
        click.option("--base-url", help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)."),
        click.option(
            "--max-iterations", type=click.IntRange(1, 50), help="Override the spec's limit."
        ),
        click.option(
            "--candidates",
            type=click.IntRange(1, 8),
            help="Best-of-N: replies asked per iteration, each checked; the first that passes "
            "wins (default: $CODEBOT_CANDIDATES, else 1).",
        ),
        click.option(
            "--candidates-from",
            type=click.Choice(["samples", "rungs"]),
            help="Best-of-N candidates as samples of one model, or one from each rung of the "
            "model ladder (default: $CODEBOT_CANDIDATES_FROM, else samples).",
        ),
        click.option(
            "--candidate-workers",
            type=click.IntRange(1, 8),
            help="Candidates checked at once, each in a copy of the work tree with a sandbox "
            "of its own (default: $CODEBOT_CANDIDATE_WORKERS, else one per CPU core).",
        ),
        click.option(
            "--runs-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where run files go (default: the repository's .git/codebot/runs for local "
            "runs, .codebot/runs for GitHub runs).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@dataclass(frozen=True)
class Output:
    """How a run command reports: `quiet` drops the progress, `json` prints the run record
    on stdout at the end (every other line then goes to stderr, so stdout parses)."""

    quiet: bool = False
    json: bool = False


def _output_options(fn: Any) -> Any:
    """--quiet and --json, passed to the command as one `output: Output`."""

    def wrapped(*args: Any, quiet: bool, as_json: bool, **kwargs: Any) -> Any:
        return fn(*args, output=Output(quiet, as_json), **kwargs)

    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    wrapped = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print the run record (run.json) on stdout at the end; other lines go to stderr.",
    )(wrapped)
    return click.option(
        "--quiet", "-q", is_flag=True, help="No progress lines; only the final ones."
    )(wrapped)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codebot")
def cli() -> None:
    """codebot: turn a task spec into a reviewed-ready branch, every check run in a Docker sandbox.

    The API key is read from $OPENAI_API_KEY only (never a flag, so it stays out of shell
    history and process lists).
    """


@cli.command("dry-run")
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The git repository to work on. Its working tree is never modified.",
)
@_model_options
@_output_options
def dry_run(spec: Path, repo: Path, output: Output, **flags: Any) -> None:
    """Run every stage except push and PR.

    Works in an isolated clone, runs the checks in a sandbox, and leaves a local branch
    codebot/<slug> in REPO plus patch.diff, pr.md and run.json under REPO's
    .git/codebot/runs/<run-id>/ (or --runs-dir).
    """
    from codebot.configure import RunRequest, configure
    from codebot.headstart import HeadStart

    request = RunRequest(spec, repo.resolve(), _settings(flags))
    # Checked before any side effect; then the sandbox starts while the runner is imported.
    head = HeadStart(*configure(request))
    _run(request, output, head)


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@_model_options
@_output_options
def resume(run_dir: Path, output: Output, **flags: Any) -> None:
    """Continue an interrupted dry-run from its run directory (`codebot runs` lists them).

    Finished iterations are replayed from the record (no model call, no checks); the run
    goes on from the next one with the same run id.
    """
    from codebot import report
    from codebot.local import RunRequest

    data = report.read_run(run_dir)
    try:
        spec, repo = Path(data["spec"]["source"]), Path(data["repo"])
    except (KeyError, TypeError) as exc:
        raise click.ClickException(f"{run_dir}/run.json names no spec or repo ({exc})") from None
    flags.setdefault("runs_dir", None)
    flags["runs_dir"] = flags["runs_dir"] or run_dir.parent
    _run(RunRequest(spec, repo, _settings(flags), resume=run_dir), output)


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to create the example repository (default: a new folder under .codebot/examples).",
)
@_model_options
@_output_options
def example(directory: Path | None, output: Output, **flags: Any) -> None:
    """Create the bundled example repository (a failing test) and dry-run its task on it."""
    from codebot.configure import preflight
    from codebot.local import RunRequest

    settings = _settings(flags)
    preflight(settings)  # an endpoint and an engine first: no example left behind for nothing
    source = EXAMPLES / "parse-duration"
    if not source.is_dir():
        raise click.ClickException(f"the bundled example is missing at {source}")
    target = directory or Path(".codebot/examples") / time.strftime("parse-duration-%Y%m%d-%H%M%S")
    if target.exists() and any(target.iterdir()):
        raise click.ClickException(f"{target} is not empty; pass --dir with a new folder")
    shutil.copytree(source, target, dirs_exist_ok=True)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=example", "-c", "user.email=example@localhost",
                  "commit", "-q", "-m", "Example project with a failing test"]):  # fmt: skip
        subprocess.run(["git", *args], cwd=target, check=True)
    _echo(f"example repository: {target.resolve()}", err=True)
    spec = EXAMPLES / "parse-duration.yaml"
    _run(RunRequest(spec, target.resolve(), settings), output)


def _echo(text: str, err: bool = False) -> None:
    """Everything the CLI prints goes through the redactor, like every other output."""
    click.echo(Redactor.from_env(os.environ)(text), err=err)


def _progress(line: str) -> None:
    _echo(f"  {line}", err=True)


@contextlib.contextmanager
def _watching(output: Output) -> Iterator[Callable[[str], None]]:
    """A run's progress sink for where stderr goes (codebot.ui), redacted like every line
    the CLI prints, and closed before the final lines whatever happens."""
    from codebot import ui

    redact = Redactor.from_env(os.environ)

    def console() -> Any:
        from rich.console import Console

        return Console(stderr=True)

    sink = ui.choose(
        quiet=output.quiet,
        env=os.environ,
        tty=sys.stderr.isatty(),
        write=lambda line: click.echo(line, err=True),
        console=console,
    )
    try:
        yield lambda line: sink(redact(line))
    finally:
        sink.close()


def _settings(flags: dict[str, Any]) -> cfg.Settings:
    return cfg.with_flags(
        cfg.from_env(),
        model=flags.get("model"),
        base_url=flags.get("base_url"),
        runs_dir=flags.get("runs_dir"),
        max_iterations=flags.get("max_iterations"),
        candidates=flags.get("candidates"),
        candidates_from=flags.get("candidates_from"),
        candidate_workers=flags.get("candidate_workers"),
    )


def _run(request: RunRequest, output: Output, head: HeadStart | None = None) -> None:
    """Run `request` (with its head start, which is closed whatever happens)."""
    try:
        from codebot.local import execute

        with _watching(output) as on_event:
            outcome = execute(request, on_event=on_event, head=head)
    finally:
        if head is not None:
            head.close()  # a no-op once `execute` has closed it
    _print_outcome(outcome, output)
    if output.json:
        _echo(outcome.files.run_json.read_text(encoding="utf-8").rstrip("\n"))
    sys.exit(stops.exit_code(outcome.record.stop_reason))


def _print_outcome(outcome: RunOutcome, output: Output = Output()) -> None:
    """The final lines: how the run ended, the branch, and the absolute path of each run
    file that holds something (after a failed setup there is no patch and no prompt)."""
    r, err = outcome.record, output.json
    cost = "cost unknown" if r.cost_usd is None else f"${r.cost_usd:.4f}"
    spent = f"{r.usage.total_tokens:,} tokens, {cost}"
    if r.passed:
        _echo(f"codebot: all checks passed after {len(r.iterations)} iteration(s); {spent}", err)
    elif r.stop_reason == "nothing_to_do":
        _echo(f"codebot: nothing to change ({r.stop_detail}); {spent}", err)
    else:  # the detail may name iterations itself: say the count apart, never "after N after N"
        _echo(
            f"codebot: stopped ({r.stop_reason}): {r.stop_detail}; "
            f"{len(r.iterations)} iteration(s), {spent}",
            err,
        )
    if outcome.branch:
        _echo(f"  branch:     {outcome.branch} (in {r.repo})", err)
    else:
        _echo("  branch:     none (nothing reviewable was produced)", err)
    f = outcome.files
    named = (
        ("patch", f.patch),
        ("PR draft", f.pr_md),
        ("prompt", f.prompt),
        ("run record", f.run_json),
    )
    for label, path in named:
        if _holds_something(path):
            _echo(f"  {label + ':':<11} {path.resolve()}", err)


def _holds_something(path: Path) -> bool:
    try:
        return bool(path.read_text(encoding="utf-8", errors="replace").strip())
    except OSError:
        return False


# The commands defined in their own modules register themselves on `cli` when imported.
from codebot import cli_github, cli_knowledge, cli_tools, cli_ui  # noqa: E402, F401


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    # The main thread mostly waits on the engine while a thread imports the model SDK (~0.4 s
    # of work): at the default 5 ms, each wake-up after an engine reply could wait that long
    # for the interpreter. 0.5 ms: the trivial task in 0.95x the time (A/B, 11 runs).
    sys.setswitchinterval(0.0005)
    try:
        cli(standalone_mode=False)
    except CodebotError as exc:
        _echo(f"codebot: error: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _echo("codebot: interrupted", err=True)
        sys.exit(stops.INTERRUPTED_EXIT)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _echo("codebot: interrupted; nothing was left behind", err=True)
        sys.exit(stops.INTERRUPTED_EXIT)


def run() -> None:
    """The `codebot` program: `main`, then an exit that skips the interpreter's teardown.

    Freeing every module and object one by one takes ~0.15 s after a run (a tenth of a
    trivial task), and nothing is left to it: the threads the program waits for are joined
    and the exit handlers run (temporary files, executors) exactly as at a normal exit, the
    output is flushed, and only then does the process end. An error that is no exit (a bug)
    takes the normal way out, traceback and all."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = _status(exc.code)
    finish(code)


def finish(code: int) -> NoReturn:
    """End the process as a normal exit would, less the interpreter's teardown (see `run`)."""
    shutdown = getattr(threading, "_shutdown", None)  # what the interpreter does first
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _status(code: object) -> int:
    """The process status `sys.exit(code)` gives: None is 0, a number itself, else 1 (the
    value printed, as Python does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1
