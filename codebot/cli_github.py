"""The GitHub commands: issue, run, action, publish (registered on `codebot.cli.cli`)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codebot import stops
from codebot.cli import (
    Output,
    _echo,
    _model_options,
    _output_options,
    _print_outcome,
    _progress,
    _settings,
    _watching,
    cli,
)

if TYPE_CHECKING:
    from codebot.github_flow import GitHubOutcome


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
@_output_options
def issue(reference: str, artifact: Path | None, output: Output, **flags: Any) -> None:
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
    with _watching(output) as on_event:
        outcome = github_flow.run_issue(
            forge, match[1], int(match[2]), _settings(flags), env, on_event,
            artifact=artifact and publish.new_directory(artifact),
        )  # fmt: skip
    _finish_github(outcome, output)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
@_model_options
@_output_options
def run(spec: Path, output: Output, **flags: Any) -> None:
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
    with _watching(output) as on_event:
        outcome = github_flow.run_spec(
            forge, loaded.repo, text, str(spec), settings, env, on_event=on_event
        )
    _finish_github(outcome, output)


@cli.command()
@_artifact_option
@_model_options
@_output_options
def action(artifact: Path | None, output: Output, **flags: Any) -> None:
    """Act on the GitHub Actions event in GITHUB_EVENT_NAME / GITHUB_EVENT_PATH.

    Writes pr-url, head-commit, stop-reason and cost-usd to $GITHUB_OUTPUT. With --artifact,
    the plan job of a split workflow: nothing is written to GitHub, and the exit code is 0
    once the plan is written (`codebot publish` exits with the run's).
    """
    from codebot import github_flow, publish

    env = dict(os.environ)
    where = artifact and publish.new_directory(artifact)
    with _watching(output) as on_event:
        outcome = github_flow.run_action(env, _settings(flags), on_event, artifact=where)
    _finish_github(outcome, output, env.get("GITHUB_OUTPUT"))


@cli.command("publish")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
def publish_command(directory: Path) -> None:
    """Check a plan (`--artifact DIR` of `action` or `issue`), then push, open or update the PR
    and comment.

    Every file must match DIR/manifest.json and its size cap; the branch must be codebot's and
    fast-forward from the remote's base; no new commit may touch a protected path. Nothing is
    pushed or posted otherwise. Needs GITHUB_TOKEN with write access, never the model key.
    Writes pr-url, head-commit, stop-reason and cost-usd to $GITHUB_OUTPUT; exits with the
    run's code.
    """
    from codebot import publish
    from codebot.forge import GitHubForge

    env = dict(os.environ)
    forge = GitHubForge.from_env(env)
    done = publish.publish(directory, forge, _settings({}), env, on_event=_progress)
    url = done.pull.url if done.pull else ""
    _echo(f"codebot: published the plan in {directory} ({done.stop_reason})")
    _echo(f"  pull request: {url or 'none'}; {done.comments} comment(s) posted")
    if done.head_commit:
        _echo(f"  commit:       {done.head_commit} (on the branch on GitHub)")
    output = env.get("GITHUB_OUTPUT")
    _write_outputs(output, url, done.stop_reason, done.cost_usd, head=done.head_commit)
    sys.exit(stops.exit_code(done.stop_reason))


def _finish_github(outcome: GitHubOutcome, output: Output, output_file: str | None = None) -> None:
    from codebot.local import RunOutcome

    err = output.json  # stdout then holds only the JSON
    if outcome.record is not None and outcome.files is not None:
        _print_outcome(RunOutcome(outcome.record, outcome.files, outcome.record.branch), output)
    else:
        _echo(f"codebot: {outcome.stop_reason}: {outcome.message}", err)
    if outcome.pull is not None:
        _echo(f"  pull request: {outcome.pull.url}", err)
    if outcome.artifact is not None:
        _echo(f"  plan:       {outcome.artifact} (push it with `codebot publish`)", err)
    if output.json and outcome.files is not None:
        _echo(outcome.files.run_json.read_text(encoding="utf-8").rstrip("\n"))
    elif output.json:
        _echo(json.dumps({"stop_reason": outcome.stop_reason, "message": outcome.message}))
    cost = outcome.record.cost_usd if outcome.record else None
    url = outcome.pull.url if outcome.pull else ""
    budget = (outcome.record.spec.get("budget") or {}) if outcome.record else {}
    # The commit on the pushed branch (GitHub's own through the API); a plan pushed nothing.
    head = (outcome.record.head_commit or "") if outcome.record and outcome.pull else ""
    cap = budget.get("max_cost_usd")
    _write_outputs(output_file, url, outcome.stop_reason, cost, cap, head=head)
    sys.exit(0 if outcome.artifact else stops.exit_code(outcome.stop_reason))


def _write_outputs(
    output_file: str | None,
    url: str,
    stop_reason: str,
    cost: float | None,
    cap: float | None = None,
    *,
    head: str = "",
) -> None:
    if output_file:
        with open(output_file, "a", encoding="utf-8") as out:
            out.write(f"pr-url={url}\n")
            out.write(f"head-commit={head}\n")
            out.write(f"stop-reason={stop_reason}\n")
            out.write(f"cost-usd={'' if cost is None else f'{cost:.4f}'}\n")
            out.write(f"cost-cap-usd={'' if cap is None else f'{cap:.4f}'}\n")
