"""The sandboxes around a run's own: the verification's, started ahead while the loop runs,
and the run's, removed in the background while the committed tree is checked. Both are
joined before the run ends, so nothing is left behind."""

from __future__ import annotations

import threading
from typing import Protocol

from codebot import environment
from codebot.config import Settings
from codebot.environment import Environment
from codebot.errors import SandboxError
from codebot.protocols import Sandbox
from codebot.sandbox import DockerSandbox


def close_sandbox(sandbox: Sandbox) -> str:
    """Remove a sandbox; what could not be removed, as one line ("" when all is gone). The
    run's own result stands either way: a leftover is named, not raised."""
    try:
        sandbox.close()
    except SandboxError as exc:
        return exc.one_line()
    return ""


class Spare:
    """The verification sandbox, started in the background while the loop runs, so checking
    the committed tree does not wait for a container to start. Whoever made it must end it:
    `take` it for the verification, or `discard` it."""

    def __init__(
        self, settings: Settings, env: Environment, run_id: str, name: str = "verify"
    ) -> None:
        self._config = environment.sandbox_config(settings, env)
        self._run_id = f"{run_id}-{name}"
        self._restores = env.restores_workspace
        self._sandbox: DockerSandbox | None = None
        self._error: BaseException | None = None
        self.restored = False  # what setup left in the workspace is in it (environment.fill)
        self.left = ""  # what `discard` could not remove
        self._thread = threading.Thread(target=self._start, daemon=True, name="codebot-spare")
        if env.ready:  # no environment, no run to verify
            self._thread.start()

    def _start(self) -> None:
        """Start it and, for an environment with a setup step, copy in what setup left in
        the workspace (environment.restore) while it waits: off the path of whoever takes
        it, who only fills in the tree."""
        try:
            sandbox = DockerSandbox.start(self._config, self._run_id)
        except BaseException as exc:  # handed to whoever takes it
            self._error = exc
            return
        try:
            if self._restores:
                environment.restore(sandbox)
                self.restored = True
        except BaseException as exc:
            self._error = exc
            self.left = close_sandbox(sandbox)
            return
        self._sandbox = sandbox

    @property
    def ready(self) -> bool:
        """Whether its start (and restore) is over: `take` would not wait."""
        return self._thread.ident is not None and not self._thread.is_alive()

    def take(self) -> DockerSandbox:
        if self._thread.ident is None:  # never started in the background
            self._start()
        else:
            self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._sandbox is not None
        sandbox, self._sandbox = self._sandbox, None
        return sandbox

    def discard(self) -> str:
        """Remove it unused; what could not be removed, as one line."""
        if self._thread.ident:
            self._thread.join()
        sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            self.left = close_sandbox(sandbox)
        return self.left  # or what a failed restore left (`_start`)


class Closable(Protocol):
    def close(self) -> str:
        """Remove it; what could not be removed, as one line."""
        ...


class Closing:
    """A sandbox (and anything else to close with it, e.g. the run's lanes) being removed in
    the background; `wait` says what could not be removed."""

    def __init__(self, sandbox: DockerSandbox, *others: Closable) -> None:
        self._left = ""
        self._thread = threading.Thread(target=self._close, args=(sandbox, others), daemon=True)
        self._thread.start()

    def _close(self, sandbox: DockerSandbox, others: tuple[Closable, ...]) -> None:
        left = [close_sandbox(sandbox), *(other.close() for other in others)]
        self._left = "; ".join(x for x in left if x)

    def wait(self) -> str:
        self._thread.join()
        return self._left
