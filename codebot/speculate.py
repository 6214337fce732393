"""The verification, checked ahead: beside each iteration's own checks, the tree that
iteration would commit is checked in a fresh sandbox at the same time.

Verification (codebot.verify) checks the committed bytes in a sandbox the loop never
touched, so the loop's long-lived sandbox cannot make a change pass. It used to come after
the loop's green checks, the same checks again, one after the other. Here, when an
iteration's edits are applied, they are staged, the staged tree is checked out and a
thread checks it in the spare sandbox while the loop's own checks run. When the loop's
checks pass and nothing changes before the commit (the staged tree's id is the same),
that result is the verification; when they fail, the thread is abandoned (its sandbox
removed, which ends its commands) and a fresh spare is started for the next iteration,
while the model is asked. Each check still runs on exactly the bytes committed, in a
sandbox of its own: what is saved is the waiting, on a machine with a core to spare.

When the checks are cheap (`alone`: the baseline's, a cold first run, took under
ALONE_UNDER_S, and no first pass of likely failures applies), a warm sandbox cannot save
what running them twice costs: the check in the fresh sandbox is then the iteration's
only one (`instead`), its result the loop's, and the verification when it passes (or
when the run ends on it). Every iteration is then checked fresh, on the bytes it would
commit, and one check run less. Only in a spare whose start is over by the time the edits
are: else (a model that answers at once) the loop's warm sandbox checks too, so a failure
does not wait for a container. Costly checks (a build a warm sandbox caches, a suite a
first pass cuts short) always keep both: the loop's answers first when it fails. A spare
of an environment with a setup step copies in what setup left in the workspace while it
waits (codebot.sandboxes.Spare), so its check fills in only the tree.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack

from codebot.checks import Expectation
from codebot.config import Settings
from codebot.environment import Environment
from codebot.protocols import Sandbox
from codebot.records import CheckResult
from codebot.sandboxes import Spare, close_sandbox
from codebot.spec import TaskSpec
from codebot.verify import Staged, Verified, check_staged, staged
from codebot.workspace import Workspace

# Checks whose baseline took less than this run once an iteration, in the fresh sandbox
# only: the most a warm sandbox could save them is what their cold first run cost.
ALONE_UNDER_S = 2.0


def speculates(settings: Settings) -> bool:
    """Whether a run checks ahead: with one candidate per iteration (best-of-N checks in
    lanes, codebot.candidates), unless turned off (`CODEBOT_VERIFY_AHEAD=off`), and by
    default only on a machine with more than one core (on one, the two checks would only
    take turns)."""
    if settings.candidates != 1 or settings.verify_ahead == "off":
        return False
    return settings.verify_ahead == "on" or (os.cpu_count() or 1) > 1


def alone(baseline: Sequence[CheckResult], expect: Expectation) -> bool:
    """Whether an iteration's checks are cheap enough to run only in the fresh sandbox:
    the baseline's (setup aside: the environment's image keeps what it made) took under
    ALONE_UNDER_S, and no first pass of the likely failures is planned (the loop's
    sandbox would cut a failing suite short). What setup left in the workspace
    (node_modules, say) the spare copies in while it waits."""
    if expect.first is not None:
        return False
    return sum(c.duration_s for c in baseline if c.name != "setup") < ALONE_UNDER_S


class _Job:
    """One tree staged and checked in its own thread. Staging (git's index, then the tree
    checked out) comes first, off the loop's way; `staged` is set once git is done with."""

    def __init__(self, prepare: _Prepare, spare: Spare, check: _Check, alone: bool) -> None:
        self._prepare = prepare
        self._spare = spare
        self._check = check
        self.alone = alone  # its checks are the iteration's own
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()
        self.staged = threading.Event()
        self.checked = threading.Event()  # `result` is final; its sandbox may still be going
        self.tree_id = ""  # git's id of the tree checked, once staged
        self.abandoned = False
        self.result: Verified | None = None
        self.error: BaseException | None = None  # what stopped the check, if anything did
        self.left = ""  # what could not be removed of its sandbox
        self._closer: threading.Thread | None = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="codebot-verify-ahead")
        self.thread.start()

    def _run(self) -> None:
        began = time.monotonic()
        with ExitStack() as tree:
            try:
                try:
                    staged_tree = tree.enter_context(self._prepare())
                    self.tree_id = staged_tree.tree_id
                finally:
                    self.staged.set()
                taken = self._spare.take()
                with self._lock:
                    self._sandbox = taken
                    if self.abandoned:
                        return
                checks = self._check(staged_tree, taken, self._spare.restored)
                took = round(time.monotonic() - began, 3)
                self.result = Verified(checks, "", took, iteration=self.alone)
            except BaseException as exc:  # the verification then runs after the loop
                self.result, self.error = None, exc  # (alone: the loop stops on it)
            finally:
                self.checked.set()  # the run goes on while the sandbox is removed
                with self._lock:
                    sandbox, self._sandbox = self._sandbox, None
                if sandbox is not None:
                    self.left = close_sandbox(sandbox)
                elif self._spare.left:  # never taken: what its failed start left
                    self.left = self._spare.left

    def abandon(self) -> None:
        """Stop it: its sandbox is removed (ending what runs in it) in the background, its
        result unused; `join` waits for both."""
        with self._lock:
            self.abandoned = True
            sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            self._closer = threading.Thread(target=self._close, args=(sandbox,), daemon=True)
            self._closer.start()

    def _close(self, sandbox: Sandbox) -> None:
        self.left = close_sandbox(sandbox)

    def join(self) -> None:
        self.thread.join()
        if self._closer is not None:
            self._closer.join()


_Check = Callable[[Staged, Sandbox, bool], tuple[CheckResult, ...]]
_Prepare = Callable[[], AbstractContextManager[Staged]]


class Speculation:
    """`protocols.Verifier` for a run once `arm`ed: see the module's docstring. It owns the
    run's spare sandboxes, whether it checks ahead or not (then the verification after the
    loop takes `spare`); whoever made it must `close` it. The first spare starts when
    `spare` is first called (the runner calls it once the baseline is in: beside the
    baseline's tests it slowed them, and the first model call with them; a check runs
    `alone` only in a spare already up, which a model's answer usually gives it time for)."""

    def __init__(
        self,
        settings: Settings,
        env: Environment,
        run_id: str,
        ws: Workspace,
        spare: Spare | None = None,
    ) -> None:
        self._settings, self._env, self._run_id, self._ws = settings, env, run_id, ws
        self._spare: Spare | None = spare
        self._check: _Check | None = None  # set by `arm`
        self._alone = False  # set by `arm`: see `alone`
        self._job: _Job | None = None
        self._failed: _Job | None = None  # alone: the last check done whose tree failed
        self._abandoned: list[_Job] = []
        self._made = 0 if spare is None else 1  # spares made

    def arm(
        self, spec: TaskSpec, expect: Expectation, python_repo: bool, *, alone: bool = False
    ) -> Speculation:
        """Ready to check ahead, with the checks the baseline taught (before `start`);
        `alone`: each check here is the iteration's only one (see the module's docstring)."""
        env = self._env
        self._alone = alone
        self._check = lambda tree, sandbox, restored: check_staged(
            spec, tree, sandbox, expect, python_repo=python_repo, env=env, restored=restored
        )
        return self

    def start(self, changed: Sequence[str]) -> None:
        """Stage `changed` as it is now and check it in the spare sandbox, in a thread."""
        assert self._check is not None, "arm() comes before start()"
        self.cancel()
        paths = tuple(changed)
        spare = self._take_spare()
        alone = self._alone and spare.ready  # else a failure would wait for a container
        self._job = _Job(lambda: self._stage(paths), spare, self._check, alone)

    def _stage(self, paths: Sequence[str]) -> AbstractContextManager[Staged]:
        self._ws.stage(paths)
        return staged(self._ws)

    def hold(self) -> None:
        """Wait until no check here is using git's index (before the caller stages)."""
        if self._job is not None:
            self._job.staged.wait()

    def cancel(self) -> None:
        """The loop's checks did not pass: drop the check under way (once its tree is
        staged, so the next edits cannot reach it)."""
        if self._drop():
            self.spare()  # the next check's sandbox starts now, while the model is asked

    def _drop(self) -> bool:
        """Abandon the check under way, if any (once its tree is staged); whether there was."""
        job, self._job = self._job, None
        if job is None:
            return False
        job.staged.wait()
        if job.alone and job.checked.is_set() and job.result is not None:
            self._failed = job  # the iteration's own checks: still its tree's verification
        job.abandon()
        self._abandoned.append(job)
        return True

    def instead(self) -> tuple[CheckResult, ...] | None:
        """Armed `alone`: the checks of the tree `start` staged, once done, as the
        iteration's own (what stopped them, e.g. a SandboxError, is raised here, as the
        loop's own checks would raise it); None when not alone."""
        job = self._job
        if job is None or not job.alone:
            return None
        job.checked.wait()
        if job.error is not None:
            raise job.error
        return None if job.result is None else job.result.checks

    def verified(self, tree_id: str) -> Verified | None:
        """The check of the tree `tree_id`, once it is done; None when there is none (it
        failed to run, or the tree to commit is another)."""
        job = self._job or self._failed  # a run may end on a failing iteration
        if job is None:
            return None
        job.staged.wait()
        if job.tree_id != tree_id:
            return None
        job.checked.wait()
        return job.result

    def spare(self) -> Spare:
        """A spare sandbox not used yet, for a verification after the loop."""
        if self._spare is None:
            self._made += 1  # each its own name: an abandoned one may not be gone yet
            name = "verify" if self._made == 1 else f"verify{self._made}"
            self._spare = Spare(self._settings, self._env, self._run_id, name)
        return self._spare

    def close(self) -> str:
        """End every check and remove every sandbox it made (the used check's too, which its
        result did not wait for); what could not be removed."""
        self._drop()  # and no spare to replace it: the run is over
        left = []
        for job in self._abandoned:
            job.join()
            left.append(job.left)
        self._abandoned = []
        left.append(self._spare.discard() if self._spare is not None else "")
        self._spare = None
        return "; ".join(x for x in left if x)

    def _take_spare(self) -> Spare:
        spare = self.spare()
        self._spare = None  # the next check needs another
        return spare
