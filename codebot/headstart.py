"""A run's head start: once the run is configured (settings and spec checked, nothing done
yet), its sandbox starts in a thread of its own while the rest of codebot is imported.

The container takes ~0.2 s to start in the engine, most of it waiting; importing the runner,
the context and edit machinery ~0.15 s of work: done one after the other, they added up.
Made for a run with no setup step, whose sandbox depends on its settings alone; the run
takes it only when it would make exactly that one (`sandbox_for`), and else starts its own.
This module imports nothing heavy itself.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codebot.config import SandboxConfig, Settings
    from codebot.sandbox import DockerSandbox
    from codebot.spec import TaskSpec


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


class HeadStart:
    """See the module's docstring: the run's configured spec and settings, its id, and maybe
    its sandbox. Whoever made it must `close` it: a sandbox the run did not take is removed
    then."""

    def __init__(self, spec: TaskSpec, settings: Settings) -> None:
        from codebot.config import run_sandbox

        self.spec, self.settings = spec, settings  # as `codebot.configure.configure` gave them
        self.run_id = new_run_id()
        self._config = run_sandbox(settings, settings.sandbox.image)
        self._lock = threading.Lock()
        self._sandbox: DockerSandbox | None = None
        self._closed = False
        self._left: list[str] = []  # what could not be removed
        self._thread = threading.Thread(target=self._go, daemon=True, name="codebot-head-start")
        self._thread.start()

    def _go(self) -> None:
        from codebot.sandbox import DockerSandbox

        if self.spec.setup:  # its sandbox comes from the environment the run prepares first
            return
        try:
            sandbox = DockerSandbox.start(self._config, self.run_id)
        except Exception:  # the run starts its own, and says what fails then
            return
        with self._lock:
            taken = not self._closed
            if taken:
                self._sandbox = sandbox
        if not taken:  # closed meanwhile
            self._remove(sandbox)

    def sandbox_for(self, config: SandboxConfig) -> DockerSandbox | None:
        """The sandbox started ahead, now the caller's, when it was made with `config`;
        else None, one made otherwise removed first (the caller's takes its name)."""
        self._thread.join()
        with self._lock:
            sandbox, self._sandbox = self._sandbox, None
        if sandbox is None or config == self._config:
            return sandbox
        self._remove(sandbox)
        return None

    def close(self) -> str:
        """Remove the sandbox nobody took (waiting for its start, if it is starting); what
        could not be removed, as one line (said once)."""
        with self._lock:
            self._closed = True
            sandbox, self._sandbox = self._sandbox, None
        if sandbox is not None:
            self._remove(sandbox)
        self._thread.join()  # `_go` sees `_closed` and removes what it made
        left, self._left = "; ".join(self._left), []
        return left

    def _remove(self, sandbox: DockerSandbox) -> None:
        from codebot.sandboxes import close_sandbox

        if left := close_sandbox(sandbox):
            self._left.append(left)
