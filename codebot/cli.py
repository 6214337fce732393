"""The command line. The only place that prints, and that turns errors into exit codes."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from codebot import __version__, stops
from codebot import config as cfg
from codebot.errors import CodebotError
from codebot.redact import Redactor

# The commands import what they use when they run: the SDKs (openai, PyGithub, docker,
# GitPython) cost most of a second, which `codebot --help` and a mistyped flag should not pay.
if TYPE_CHECKING:
    from codebot.github_flow import GitHubOutcome
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
            "--runs-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where run files go (default: .codebot/runs).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


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
def dry_run(spec: Path, repo: Path, **flags: Any) -> None:
    """Run every stage except push and PR.

    Works in an isolated clone, runs the checks in a sandbox, and leaves a local branch
    codebot/<slug> in REPO plus patch.diff, pr.md and run.json under .codebot/runs/<run-id>/.
    """
    from codebot.local import RunRequest

    _run(RunRequest(spec, repo.resolve(), _settings(flags)))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@_model_options
def resume(run_dir: Path, **flags: Any) -> None:
    """Continue an interrupted dry-run from its run directory (.codebot/runs/<run-id>).

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
    _run(RunRequest(spec, repo, _settings(flags), resume=run_dir))


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to create the example repository (default: a new folder under .codebot/examples).",
)
@_model_options
def example(directory: Path | None, **flags: Any) -> None:
    """Create the bundled example repository (a failing test) and dry-run its task on it."""
    from codebot.local import RunRequest

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
    _echo(f"example repository: {target}", err=True)
    spec = EXAMPLES / "parse-duration.yaml"
    _run(RunRequest(spec, target.resolve(), _settings(flags)))


def _artifact_option(fn: Any) -> Any:

    return click.option(
        "--artifact",
        type=click.Path(file_okay=False, path_type=Path),
        help="Only plan (read-only token is enough): write nothing to GitHub or the remote, "
        "leave the branch bundle, PR text and comments in this new directory for "
        "`codebot publish`.",
    )(fn)


@cli.command()
@click.argument("reference", metavar="OWNER/REPO#N")
@_artifact_option
@_model_options
def issue(reference: str, artifact: Path | None, **flags: Any) -> None:
    """Turn a GitHub issue into a pull request.

    Clones the repository, works on branch codebot/issue-N-<slug> (the same branch and PR
    on every run for that issue), pushes it and opens or updates one pull request; comments
    on the issue when the run starts and ends. Needs GITHUB_TOKEN (and GITHUB_API_URL for
    GitHub Enterprise).
    """
    from codebot import github_flow, publish
    from codebot.forge import GitHubForge

    match = re.fullmatch(r"([\w.-]+/[\w.-]+)#(\d+)", reference)
    if not match:
        raise click.BadParameter("expected OWNER/REPO#N, e.g. octo/app#12", param_hint="REFERENCE")
    env = dict(os.environ)
    forge = GitHubForge.from_env(env)
    outcome = github_flow.run_issue(
        forge, match[1], int(match[2]), _settings(flags), env, _progress,
        artifact=artifact and publish.new_directory(artifact),
    )  # fmt: skip
    _finish_github(outcome)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@_model_options
def run(spec: Path, **flags: Any) -> None:
    """Run a spec against the GitHub repository it names (`repo: OWNER/NAME`), push, open a PR.

    Use `dry-run` to work on a local repository without pushing.
    """
    from codebot import github_flow
    from codebot.forge import GitHubForge
    from codebot.spec import load_spec

    settings = _settings(flags)
    text = spec.read_text(encoding="utf-8") if spec.is_file() else None
    loaded = load_spec(spec, {"test": "(from .codebot.yml)"})
    if not loaded.repo or text is None:
        raise click.UsageError(f"{spec} has no `repo: OWNER/NAME`; use `codebot dry-run` instead")
    env = dict(os.environ)
    forge = GitHubForge.from_env(env)
    outcome = github_flow.run_spec(
        forge, loaded.repo, text, str(spec), settings, env, on_event=_progress
    )
    _finish_github(outcome)


@cli.command()
@_artifact_option
@_model_options
def action(artifact: Path | None, **flags: Any) -> None:
    """Act on the GitHub Actions event in GITHUB_EVENT_NAME / GITHUB_EVENT_PATH.

    Writes pr-url, stop-reason and cost-usd to $GITHUB_OUTPUT. With --artifact, the plan
    job of a split workflow: nothing is written to GitHub, and the exit code is 0 once the
    plan is written (`codebot publish` exits with the run's).
    """
    from codebot import github_flow, publish

    env = dict(os.environ)
    where = artifact and publish.new_directory(artifact)
    outcome = github_flow.run_action(env, _settings(flags), _progress, artifact=where)
    _finish_github(outcome, env.get("GITHUB_OUTPUT"))


@cli.command("publish")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
def publish_command(directory: Path) -> None:
    """Check a plan (`--artifact DIR` of `action` or `issue`), then push, open or update the PR
    and comment.

    Every file must match DIR/manifest.json and its size cap; the branch must be codebot's and
    fast-forward from the remote's base; no new commit may touch a protected path. Nothing is
    pushed or posted otherwise. Needs GITHUB_TOKEN with write access, never the model key.
    Writes pr-url, stop-reason and cost-usd to $GITHUB_OUTPUT; exits with the run's code.
    """
    from codebot import publish
    from codebot.forge import GitHubForge

    env = dict(os.environ)
    forge = GitHubForge.from_env(env)
    done = publish.publish(directory, forge, _settings({}), env, on_event=_progress)
    url = done.pull.url if done.pull else ""
    _echo(f"codebot: published the plan in {directory} ({done.stop_reason})")
    _echo(f"  pull request: {url or 'none'}; {done.comments} comment(s) posted")
    _write_outputs(env.get("GITHUB_OUTPUT"), url, done.stop_reason, done.cost_usd)
    sys.exit(stops.exit_code(done.stop_reason))


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
    from codebot.detect import to_yaml
    from codebot.local import detect_at

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


def _echo(text: str, err: bool = False) -> None:
    """Everything the CLI prints goes through the redactor, like every other output."""
    click.echo(Redactor.from_env(os.environ)(text), err=err)


def _progress(line: str) -> None:
    _echo(f"  {line}", err=True)


def _finish_github(outcome: GitHubOutcome, output_file: str | None = None) -> None:
    from codebot.local import RunOutcome

    if outcome.record is not None and outcome.files is not None:
        _print_outcome(RunOutcome(outcome.record, outcome.files, outcome.record.branch))
    else:
        _echo(f"codebot: {outcome.stop_reason}: {outcome.message}")
    if outcome.pull is not None:
        _echo(f"  pull request: {outcome.pull.url}")
    if outcome.artifact is not None:
        _echo(f"  plan:       {outcome.artifact} (push it with `codebot publish`)")
    cost = outcome.record.cost_usd if outcome.record else None
    url = outcome.pull.url if outcome.pull else ""
    _write_outputs(output_file, url, outcome.stop_reason, cost)
    sys.exit(0 if outcome.artifact else stops.exit_code(outcome.stop_reason))


def _write_outputs(output_file: str | None, url: str, stop_reason: str, cost: float | None) -> None:
    if output_file:
        with open(output_file, "a", encoding="utf-8") as out:
            out.write(f"pr-url={url}\n")
            out.write(f"stop-reason={stop_reason}\n")
            out.write(f"cost-usd={'' if cost is None else f'{cost:.4f}'}\n")


def _settings(flags: dict[str, Any]) -> cfg.Settings:
    return cfg.with_flags(
        cfg.from_env(),
        model=flags.get("model"),
        base_url=flags.get("base_url"),
        runs_dir=flags.get("runs_dir"),
        max_iterations=flags.get("max_iterations"),
    )


def _run(request: RunRequest) -> None:
    from codebot.local import execute

    outcome = execute(request, on_event=_progress)
    _print_outcome(outcome)
    sys.exit(stops.exit_code(outcome.record.stop_reason))


def _print_outcome(outcome: RunOutcome) -> None:
    r = outcome.record
    cost = "cost unknown" if r.cost_usd is None else f"${r.cost_usd:.4f}"
    spent = f"{r.usage.total_tokens:,} tokens, {cost}"
    if r.passed:
        _echo(f"codebot: all checks passed after {len(r.iterations)} iteration(s); {spent}")
    elif r.stop_reason == "nothing_to_do":
        _echo(f"codebot: nothing to change ({r.stop_detail}); {spent}")
    else:  # the detail may name iterations itself: say the count apart, never "after N after N"
        _echo(
            f"codebot: stopped ({r.stop_reason}): {r.stop_detail}; "
            f"{len(r.iterations)} iteration(s), {spent}"
        )
    if outcome.branch:
        _echo(f"  branch:     {outcome.branch} (in {r.repo})")
    else:
        _echo("  branch:     none (nothing reviewable was produced)")
    f = outcome.files
    _echo(f"  patch:      {f.patch}")
    _echo(f"  PR draft:   {f.pr_md}")
    _echo(f"  run record: {f.run_json}")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
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
