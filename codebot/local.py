"""Runs on a local repository: `codebot dry-run`, `resume` and `example`.

Settings and spec are loaded and checked before any side effect; the work happens in an
isolated clone, and only a finished, reviewable run leaves a branch in the user's repository.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from codebot import report
from codebot.configure import RunRequest, configure
from codebot.headstart import HeadStart
from codebot.protocols import Model
from codebot.records import RunRecord
from codebot.runner import Event, Prior, quiet, solve
from codebot.workspace import Workspace

__all__ = ["RunOutcome", "RunRequest", "execute"]


@dataclass(frozen=True)
class RunOutcome:
    record: RunRecord
    files: report.RunFiles
    branch: str | None


def execute(
    request: RunRequest,
    env: Mapping[str, str] | None = None,
    on_event: Event = quiet,
    model: Model | None = None,
    head: HeadStart | None = None,
) -> RunOutcome:
    """`codebot dry-run`: everything but push and PR; the branch is copied back locally.
    `head`: the run's head start, made from `request` (configured, its sandbox maybe
    starting); closed here whatever happens."""
    try:
        return _execute(request, env, on_event, model, head)
    finally:
        if head is not None and (left := head.close()):
            on_event(f"warning: {left}")


def _execute(
    request: RunRequest,
    env: Mapping[str, str] | None,
    on_event: Event,
    model: Model | None,
    head: HeadStart | None,
) -> RunOutcome:
    spec, settings = (head.spec, head.settings) if head else configure(request)
    env = os.environ if env is None else env
    prior = Prior.load(request.resume, spec) if request.resume else None
    base = prior.base_commit if prior else spec.base
    ws = Workspace.create(request.repo, spec.slug, base, settings.git.branch_prefix)
    try:
        on_event(f"workspace: isolated clone on branch {ws.branch}")
        if prior:
            on_event(f"resuming run {prior.run_id} after iteration {len(prior.iterations)}")
        solved = solve(spec, settings, ws, env, on_event, model, prior, head)
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
