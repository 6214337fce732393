"""Runs on a local repository: `codebot dry-run`, `resume` and `example`.

Settings and spec are loaded and checked before any side effect; the work happens in an
isolated clone, and only a finished, reviewable run leaves a branch in the user's repository.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from codebot import config as cfg
from codebot import report
from codebot.detect import Detection, detect_from
from codebot.protocols import Model
from codebot.records import RunRecord
from codebot.runner import Event, Prior, preflight, quiet, solve, with_overrides
from codebot.spec import TaskSpec, load_spec
from codebot.workspace import Workspace, read_file_at, tracked_files_at

DEFAULT_RUNS_DIR = cfg.Settings().runs_dir  # `.codebot/runs`, relative: "no --runs-dir given"


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


def configure(request: RunRequest) -> tuple[TaskSpec, cfg.Settings]:
    """Load settings and spec and fail early, before any side effect."""
    base = _peek_base(request.spec_path)
    found = detect_at(request.repo, base)
    repo_file = read_file_at(request.repo, base, ".codebot.yml")
    settings = cfg.with_repo_file(cfg.with_detected(request.settings, found), repo_file)
    settings = replace(settings, runs_dir=runs_dir_for(request.repo, settings.runs_dir))
    spec = with_overrides(load_spec(request.spec_path, settings.spec_defaults), settings)
    settings = replace(settings, notes=(*settings.notes, *cfg.detected_notes(spec, found)))
    preflight(settings)
    return spec, settings


def runs_dir_for(repo: Path, asked: Path) -> Path:
    """Where a run on `repo` keeps its files, as an absolute path: `--runs-dir` when given,
    else the repository's own `.git/codebot/runs`, which git never tracks, no clean of the
    work tree removes, and any later command finds again from the repository."""
    if asked != DEFAULT_RUNS_DIR:
        return asked.resolve()
    return git_dir(repo.resolve()) / "codebot" / "runs"


def git_dir(top: Path) -> Path:
    """The repository's git directory: `.git`, or where a `.git` file (a linked worktree, a
    submodule) points."""
    marker = top / ".git"
    if marker.is_file():
        text = marker.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            return (top / text.removeprefix("gitdir:").strip()).resolve()
    return marker


def detect_at(repo: Path, ref: str | None) -> Detection:
    """What the repository's committed files at `ref` say about its commands."""
    return detect_from(tracked_files_at(repo, ref), lambda path: read_file_at(repo, ref, path))


def execute(
    request: RunRequest,
    env: Mapping[str, str] | None = None,
    on_event: Event = quiet,
    model: Model | None = None,
) -> RunOutcome:
    """`codebot dry-run`: everything but push and PR; the branch is copied back locally."""
    spec, settings = configure(request)
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


def _peek_base(spec_path: Path) -> str | None:
    """The spec's `base:` (if any), read leniently: full validation happens after."""
    try:
        data: Any = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    base = data.get("base") if isinstance(data, dict) else None
    return base if isinstance(base, str) else None
