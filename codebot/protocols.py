"""The seams. loop.py depends on these, never on an SDK.

Each protocol has one real implementation (llm.OpenAIModel, sandbox.DockerSandbox,
forge.GitHubForge) and one socket-level test double in tests/support/.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from codebot.records import Completion, ExecResult, Message


class Model(Protocol):
    name: str

    def complete(self, messages: Sequence[Message]) -> Completion:
        """One chat completion. Raises ModelError once retries are spent."""
        ...


class Sandbox(Protocol):
    """An isolated place to run the target repo's commands, alive for one run."""

    workdir: str

    def sync(self, root: Path, paths: Sequence[str] | None = None) -> None:
        """Copy `paths` (relative to `root`; all tracked content when None) into the sandbox
        workspace; a path missing under `root` is deleted in the sandbox."""
        ...

    def run(
        self, command: str, timeout_s: float, env: Mapping[str, str] | None = None
    ) -> ExecResult:
        """Run a shell command in the workspace; kill it and everything it started after
        `timeout_s`."""
        ...

    def read_file(self, path: str) -> bytes | None:
        """Read a file from the sandbox (absolute, or relative to the workspace)."""
        ...

    def seal(self) -> None:
        """Cut the sandbox off every network for the rest of its life (a no-op when it never
        had one). Called after the setup step, before any other command runs."""
        ...

    def close(self) -> None:
        """Remove the container and everything it owns. Safe to call twice."""
        ...
