"""Every way a run can end, in one table: its wording, its exit code, and what it leaves.

The CLI's exit code, the PR body's headline, the issue comment, and the runner's decisions
(commit a branch? may it be resumed?) all read this table, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from codebot.errors import ModelError, SandboxError

StopReason = Literal[
    "passed",
    "max_iterations",
    "token_budget",
    "cost_budget",
    "time_budget",
    "no_progress",
    "unverified",
    "nothing_to_do",
    "model_error",
    "sandbox_error",
    "setup_failed",
    "environment_broken",
    "interrupted",
]

INTERRUPTED_EXIT = 130  # what a shell reports for a job ended by Ctrl-C (128 + SIGINT)


@dataclass(frozen=True)
class StopKind:
    """`text`: the headline for people; `publishable`: the change is committed to a branch
    for review even though it may be incomplete; `resumable`: `codebot resume` can go on."""

    text: str
    exit_code: int
    publishable: bool = False
    resumable: bool = False


STOPS: dict[StopReason, StopKind] = {
    "passed": StopKind("all checks passed", 0, publishable=True),
    "max_iterations": StopKind(
        "stopped: iteration limit reached with checks still failing", 1, publishable=True
    ),
    "token_budget": StopKind("stopped: token budget spent", 1, publishable=True),
    "cost_budget": StopKind("stopped: cost budget spent", 1, publishable=True),
    "time_budget": StopKind("stopped: time budget spent", 1, publishable=True),
    "no_progress": StopKind("stopped: the model made no progress", 1, publishable=True),
    "unverified": StopKind(
        "stopped: the committed change fails its checks in a fresh sandbox", 1, publishable=True
    ),
    # The checks pass before any change and the model says the task is already done: no
    # branch, no PR, and not a failure (exit 0); the record and the comment say why.
    "nothing_to_do": StopKind("nothing to change: the task is already done", 0),
    "model_error": StopKind(
        "stopped: the LLM endpoint failed", ModelError.exit_code, resumable=True
    ),
    "sandbox_error": StopKind(
        "stopped: the sandbox failed", SandboxError.exit_code, resumable=True
    ),
    "setup_failed": StopKind("stopped: the setup command failed", 1),
    # The checks cannot start (no toolchain, a declared dependency not installed, no test
    # found): no reply could fix that, so the model is not asked.
    "environment_broken": StopKind("stopped: the environment cannot run the checks", 1),
    "interrupted": StopKind("stopped: interrupted", INTERRUPTED_EXIT, resumable=True),
}

RESUMABLE: tuple[StopReason, ...] = tuple(r for r, k in STOPS.items() if k.resumable)


def text(reason: str) -> str:
    """The headline for a stop reason (a reason this version does not know is shown as is)."""
    kind = STOPS.get(reason)  # type: ignore[call-overload]
    return kind.text if kind else f"stopped: {reason}"


def exit_code(reason: str) -> int:
    """The CLI's exit code for a run that ended with `reason` (0 for refused / ignored)."""
    kind = STOPS.get(reason)  # type: ignore[call-overload]
    return kind.exit_code if kind else 0
