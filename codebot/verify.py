"""The last check before a commit: the tree about to be committed, checked out fresh into a
new sandbox, through the same checks.

The loop's sandbox lives for the whole run, so code from one iteration could leave files,
processes or settings that make a later check pass (a `sitecustomize.py` in the user site, a
file only the sandbox has). The PR reports this run, on exactly the committed bytes, instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from codebot import environment, stops
from codebot.checks import Expectation, run_base_tests, run_checks
from codebot.config import Settings
from codebot.edits import is_test_path
from codebot.environment import Environment
from codebot.errors import SandboxError
from codebot.loop import LoopResult
from codebot.protocols import Sandbox
from codebot.records import CheckResult
from codebot.sandboxes import Spare, close_sandbox
from codebot.spec import TaskSpec
from codebot.workspace import Workspace


@dataclass(frozen=True)
class Final:
    """The checks of the committed tree in a fresh sandbox (none when nothing is committed)."""

    checks: tuple[CheckResult, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)


def verify_run(
    settings: Settings,
    spec: TaskSpec,
    ws: Workspace,
    spare: Spare | None,
    result: LoopResult,
    expect: Expectation,
    python_repo: bool,
    env: Environment,
    on_event: Callable[[str], None],
    ahead: Verified | None = None,
) -> tuple[LoopResult, Final]:
    """Check what is about to be committed (when something is, and the run is reviewable);
    a loop that saw green but whose committed tree fails is not `passed` but `unverified`.
    `ahead`: that check, already made beside the loop's last one on exactly the staged tree
    (codebot.speculate); `spare` (None then) is not needed."""
    if not stops.STOPS[result.stop_reason].publishable or not ws.has_staged_change():
        if spare is not None:
            spare.discard()
        return result, Final()
    try:
        if ahead is not None:
            verified = ahead
        else:
            assert spare is not None, "a verification after the loop needs a spare sandbox"
            verified = verify(spec, ws, spare, expect, python_repo=python_repo, env=env)
    except SandboxError as exc:
        why = f"while checking the committed tree in a fresh sandbox: {exc.one_line()}"
        return replace(result, stop_reason="sandbox_error", stop_detail=why), Final()
    except KeyboardInterrupt:
        why = "interrupted while checking the committed tree in a fresh sandbox"
        return replace(result, stop_reason="interrupted", stop_detail=why), Final()
    said = ", ".join(_said(c) for c in verified.checks)
    how = ""
    if ahead is not None and ahead.iteration:
        how = " (the last iteration's own checks, in a fresh sandbox)"
    elif ahead is not None:
        how = " (checked beside the last iteration's checks)"
    on_event(f"verify: {said}{how}")
    if verified.leftover:
        on_event(f"warning: {verified.leftover}")
    final = Final(verified.checks, {"verify_s": verified.duration_s})
    if result.stop_reason == "passed" and not verified.passed:
        failed = ", ".join(c.name for c in verified.checks if not c.passed)
        detail = f"{result.stop_detail}, but the committed tree fails {failed} in a fresh sandbox"
        return replace(result, stop_reason="unverified", stop_detail=detail), final
    return result, final


def _said(check: CheckResult) -> str:
    return f"{check.name} {'passed' if check.passed else 'failed (' + check.reason + ')'}"


@dataclass(frozen=True)
class Verified:
    checks: tuple[CheckResult, ...]
    leftover: str = ""  # what could not be removed afterwards ("" when all is gone)
    duration_s: float = 0.0
    iteration: bool = False  # these were the last iteration's own checks (codebot.speculate)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)


@dataclass(frozen=True)
class Staged:
    """The tree about to be committed, checked out fresh into `root` (removed when the
    `staged` block ends), and what its checks need to know: `tree_id` (git's id of the
    index's tree: the same id, the same bytes), the base files it deletes, the changed files
    it has, and the test files it adds (which must fail on the base code)."""

    tree_id: str
    root: Path
    deletions: tuple[str, ...]
    changed: tuple[str, ...]
    added_tests: tuple[str, ...]


@contextmanager
def staged(ws: Workspace) -> Iterator[Staged]:
    """What is staged in `ws` now, checked out while the block runs."""
    with ws.staged_tree() as tree:
        changed = _existing(ws.staged_files(), tree)
        yield Staged(
            ws.staged_tree_id(), tree, tuple(ws.staged_deletions()), tuple(changed),
            tuple(_added_tests(ws, changed)),
        )  # fmt: skip


def check_staged(
    spec: TaskSpec,
    tree: Staged,
    sandbox: Sandbox,
    expect: Expectation,
    *,
    python_repo: bool,
    env: Environment,
    restored: bool = False,
) -> tuple[CheckResult, ...]:
    """The checks of a staged tree in a fresh sandbox; the sandbox is the caller's (`restored`:
    what setup left in the workspace is in it already, codebot.sandboxes.Spare)."""
    environment.fill(sandbox, env, tree.root, tree.deletions, restored=restored)
    checks = run_checks(  # the full suite only: a verdict, not a search
        sandbox, spec, tree.changed, python_repo=python_repo, expect=expect, select=False
    )
    if tree.added_tests and all(c.passed for c in checks):
        checks += (run_base_tests(sandbox, spec, list(tree.added_tests), expect),)
    return checks


def verify(
    spec: TaskSpec,
    ws: Workspace,
    spare: Spare,
    expect: Expectation,
    *,
    python_repo: bool,
    env: Environment,
) -> Verified:
    """Run the checks on the staged tree in a sandbox of its own (`<run id>-verify`), made
    from the run's environment (no setup again: the cached image holds what it installed)."""
    began = time.monotonic()
    with staged(ws) as tree:
        sandbox = spare.take()
        try:
            checks = check_staged(
                spec, tree, sandbox, expect, python_repo=python_repo, env=env,
                restored=spare.restored,
            )  # fmt: skip
        except BaseException:
            close_sandbox(sandbox)
            raise
        return Verified(checks, close_sandbox(sandbox), round(time.monotonic() - began, 3))


def _added_tests(ws: Workspace, paths: Sequence[str]) -> list[str]:
    base = ws.base_files()
    return [p for p in paths if p not in base and is_test_path(p)]


def _existing(paths: Sequence[str], root: Path) -> list[str]:
    return [p for p in paths if (root / p).is_file()]
