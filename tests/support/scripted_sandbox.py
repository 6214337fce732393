"""A strict scripted `Sandbox` (codebot.protocols) and the `scripted_sandbox` fixture.

It plays the world the loop runs commands in: each `run` takes the next scripted `Exec`, whose
`match` must appear in the command, and answers with its exit code and output (and, for a
test command, the JUnit report the command would have written). Like the model server it is
strict: a command beyond the script, or not the one scripted, fails the test at once and is
kept in `unscripted`; `assert_done()` (run by the fixture after every test) also fails on
scripted commands nobody ran. `sync` keeps a copy of every file that reached it, so a test
can see what the checks would have run on.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from codebot.errors import FileTooLarge
from codebot.protocols import ReadBack, Step
from codebot.records import ExecResult

__all__ = ["Exec", "ScriptedSandbox", "scripted_sandbox"]

_JUNIT_PATH = re.compile(r"--junitxml=(\S+)")


@dataclass(frozen=True)
class Exec:
    """One command's scripted result. `raises` is raised instead of answering (a sandbox
    fault, Ctrl-C); `junit` is the report a pytest command writes where it was told to."""

    match: str
    exit_code: int = 0
    output: str = ""
    junit: bytes | None = None
    raises: BaseException | None = None
    duration_s: float = 0.01


class ScriptedSandbox:
    workdir = "/workspace"

    def __init__(self) -> None:
        self._script: deque[Exec] = deque()
        self.commands: list[str] = []
        self.unscripted: list[str] = []
        self.syncs: list[tuple[str, ...] | None] = []
        self.files: dict[str, bytes] = {}
        self._reports: dict[str, bytes] = {}
        self.sealed = False
        self.closed = False

    def script(self, *steps: Exec) -> None:
        self._script.extend(steps)

    def sync(self, root: Path, paths: Sequence[str] | None = None) -> None:
        self.syncs.append(None if paths is None else tuple(paths))
        wanted = (
            [p.relative_to(root).as_posix() for p in root.rglob("*") if ".git" not in p.parts]
            if paths is None
            else list(paths)
        )
        for rel in wanted:
            full = root / rel
            if full.is_file():
                self.files[rel] = full.read_bytes()
            elif not full.exists():
                self.files.pop(rel, None)

    def run(
        self, command: str, timeout_s: float, env: Mapping[str, str] | None = None
    ) -> ExecResult:
        step = self._script.popleft() if self._script else None
        if step is None or step.match not in command:
            self.unscripted.append(command)
            expected = "nothing" if step is None else repr(step.match)
            raise AssertionError(f"unscripted sandbox command {command!r} (expected {expected})")
        self.commands.append(command)
        if step.raises is not None:
            raise step.raises
        found = _JUNIT_PATH.search((env or {}).get("PYTEST_ADDOPTS", ""))
        if step.junit is not None and found:
            self._reports[found.group(1)] = step.junit
        return ExecResult(command, step.exit_code, step.output, step.duration_s)

    def run_steps(
        self, steps: Sequence[Step], paths: Mapping[str, int]
    ) -> tuple[tuple[ExecResult, ...], ReadBack]:
        """Each step as its own scripted command, in order; then the files read back."""
        results = tuple(self.run(s.command, s.timeout_s, s.env) for s in steps)
        got: ReadBack = {}
        for path, limit in paths.items():
            try:
                got[path] = self.read_file(path, limit)
            except FileTooLarge as exc:
                got[path] = exc
        return results, got

    def read_file(self, path: str, max_bytes: int) -> bytes | None:
        data = self._reports.get(path)
        if data is not None and len(data) > max_bytes:
            raise FileTooLarge(path, len(data), max_bytes)
        return data

    def place(self, path: str, data: bytes) -> None:
        """A file the sandboxed code wrote (e.g. a report at a path it learned)."""
        self._reports[path] = data

    def seal(self) -> None:
        self.sealed = True

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        assert not self.unscripted, f"unscripted sandbox command(s): {self.unscripted}"
        left = [s.match for s in self._script]
        assert not left, f"scripted command(s) never run: {left}"


@pytest.fixture
def scripted_sandbox() -> Iterator[ScriptedSandbox]:
    sandbox = ScriptedSandbox()
    yield sandbox
    sandbox.assert_done()
