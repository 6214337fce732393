"""A run's settings and spec, loaded and checked before any side effect.

Without the runner and the model SDK, so that a run's head start (codebot.headstart) can
configure the run while the rest of codebot is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from codebot import config as cfg
from codebot.detect import Detection, detect_from
from codebot.sandbox.engine import ping
from codebot.spec import TaskSpec, load_spec
from codebot.workspace import read_file_at, tracked_files_at

DEFAULT_RUNS_DIR = cfg.Settings().runs_dir  # `.codebot/runs`, relative: "no --runs-dir given"


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


def _peek_base(spec_path: Path) -> str | None:
    """The spec's `base:` (if any), read leniently: full validation happens after."""
    try:
        data: Any = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    base = data.get("base") if isinstance(data, dict) else None
    return base if isinstance(base, str) else None


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
    if settings.max_minutes is not None:
        spec = replace(spec, budget=replace(spec.budget, max_minutes=settings.max_minutes))
    return spec
