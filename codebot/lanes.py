"""The run's lanes (protocols.Lanes): where best-of-N candidates are checked beside the run's
own work tree and sandbox.

Each lane is a copy of the clone's work tree in a directory of its own (never `.git`) and a
sandbox started from the run's environment image and filled like the run's. They are made
in the background as soon as the run's environment is known, so they start while the
baseline runs and no iteration waits for a container; they live for the run and are removed
with it, in the background too. A lane that cannot be made is a note in the record, and the
candidates go to the places that could be made.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from codebot import environment
from codebot.config import Settings
from codebot.edits import FileTree
from codebot.environment import Environment
from codebot.errors import SandboxError
from codebot.sandbox import DockerSandbox
from codebot.sandboxes import close_sandbox


def lane_count(settings: Settings) -> int:
    """How many lanes a run gets: a worker per candidate up to the worker limit, less the
    run's own place (0: candidates are checked one after another in it)."""
    return max(0, min(settings.candidates, settings.candidate_workers) - 1)


def lane_run_ids(run_id: str, count: int) -> list[str]:
    """The sandbox names (run ids) of a run's lanes, for the clean-up of a killed run."""
    return [f"{run_id}-lane{k + 1}" for k in range(count)]


class _Lane:
    """One lane being made in its own thread."""

    def __init__(self, run_id: str, make: _Maker) -> None:
        self.run_id = run_id
        self.tree: FileTree | None = None
        self.sandbox: DockerSandbox | None = None
        self.error: BaseException | None = None
        self._make = make
        self.thread = threading.Thread(target=self._start, daemon=True, name=f"codebot-{run_id}")
        self.thread.start()

    def _start(self) -> None:
        try:
            self.tree, self.sandbox = self._make(self)
        except BaseException as exc:  # handed to whoever asks for the lane
            self.error = exc


class _Maker:
    """Makes a lane: the copy of the work tree, then the sandbox filled from it."""

    def __init__(
        self, settings: Settings, env: Environment, tree: FileTree, deleted: Sequence[str]
    ) -> None:
        self._config = environment.sandbox_config(settings, env)
        self._env = env
        self._tree = tree
        self._deleted = tuple(deleted)

    def __call__(self, lane: _Lane) -> tuple[FileTree, DockerSandbox]:
        root = Path(tempfile.mkdtemp(prefix=f"codebot-{lane.run_id}-"))
        lane.tree = replace(self._tree, root=root)  # removed by `close` whatever happens next
        shutil.copytree(
            self._tree.root,
            root,
            symlinks=True,
            ignore=shutil.ignore_patterns(".git"),
            dirs_exist_ok=True,
        )
        sandbox = DockerSandbox.start(self._config, lane.run_id)
        try:
            environment.fill(sandbox, self._env, root, self._deleted)
        except BaseException:
            close_sandbox(sandbox)
            raise
        return lane.tree, sandbox


class Lanes:
    """A run's lanes, made in the background from the start (see the module's docstring).
    Whoever made them must `close` them."""

    def __init__(
        self,
        settings: Settings,
        env: Environment,
        run_id: str,
        tree: FileTree,
        deleted: Sequence[str] = (),
    ) -> None:
        make = _Maker(settings, env, tree, deleted)
        count = lane_count(settings) if env.ready else 0
        self._lanes = [_Lane(name, make) for name in lane_run_ids(run_id, count)]
        self.notes: list[str] = []  # a lane that could not be made, for the run record
        self._noted: set[int] = set()
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self._lanes)

    def lane(self, k: int) -> tuple[FileTree, DockerSandbox]:
        lane = self._lanes[k]
        lane.thread.join()
        if lane.error is not None or lane.tree is None or lane.sandbox is None:
            why = (
                lane.error.one_line()
                if isinstance(lane.error, SandboxError)
                else str(lane.error or "it was not made")
            )
            with self._lock:
                if k not in self._noted:
                    self._noted.add(k)
                    self.notes.append(
                        f"best-of-N lane {k + 1} could not be made ({why}); its candidates "
                        "were checked in the other places"
                    )
            raise SandboxError(f"lane {k + 1} could not be made: {why}", "")
        return lane.tree, lane.sandbox

    def close(self) -> str:
        """Remove every lane's sandbox and copy (at once); what could not be removed, as one
        line ("" when all is gone). Safe to call twice."""
        for lane in self._lanes:
            lane.thread.join()
        left: list[str] = []
        closers = [
            threading.Thread(target=lambda s=lane.sandbox: left.append(close_sandbox(s)))
            for lane in self._lanes
            if lane.sandbox is not None
        ]
        for closer in closers:
            closer.start()
        for lane in self._lanes:
            if lane.tree is not None:
                shutil.rmtree(lane.tree.root, ignore_errors=True)
            lane.sandbox, lane.tree = None, None
        for closer in closers:
            closer.join()
        return "; ".join(x for x in left if x)
