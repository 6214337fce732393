"""Several commands in one exec: a check round's lint and tests, one after the other.

Each exec costs ~50 ms on top of its command here (runc joins the container's namespaces
and cgroup), and each command is followed by its cleanup exec: a round of lint then tests
took four execs, now two. The wrapper runs each step as `commands` runs one (its time
limit, leftovers killed after it) and writes a separator after each step but the last: a
newline, a nonce drawn for this exec, and the step's exit code. The last step's exit code is
the exec's own, and the cleanup exec after it is the one `commands` runs.

What a step shows cannot be changed by a later one: the earlier output is on the host
before a later step starts. A step may learn the nonce (the wrapper's command line is
readable) and print a separator, or kill the shell running the steps: then the number of
separators is not one fewer than the steps, and every step fails, saying so. A forged
separator can only ever make a step fail, never pass.
"""

from __future__ import annotations

import secrets
import shlex
import time
from collections.abc import Sequence
from typing import Any

from codebot.config import SandboxConfig
from codebot.protocols import ReadBack, Step
from codebot.records import ExecResult
from codebot.sandbox.commands import (
    BASE_ENV,
    CappedOutput,
    CgroupCounters,
    after_run,
    collect,
    exit_code,
)

# $1 the nonce; then each step's time limit and command. After every step but the last: the
# separator, then the next step; the last step's exit code is the wrapper's.
_WRAPPER = (
    "n=$1; shift; kill -9 -1 2>/dev/null; while [ $# -gt 1 ]; do "
    'timeout --kill-after=2 "$1" sh -c "$2" 2>&1; rc=$?; kill -9 -1 2>/dev/null; shift 2; '
    'if [ $# -lt 2 ]; then exit $rc; fi; printf "\\n%s %s\\n" "$n" "$rc"; done'
)
UNSPLIT = (
    "codebot ran these commands in one exec and cannot tell their output apart: a command "
    "printed the separator between them, or ended the shell that ran them; each counts as failed"
)
_CODE_ROOM = 8  # the longest exit code a separator carries, with its newline


class _Sections:
    """The exec's output cut at each separator: each part capped as `CappedOutput` caps one
    command's, the exit code and arrival time of each separator."""

    def __init__(self, limit: int, mark: bytes) -> None:
        self._limit, self._mark = limit, mark
        self.parts = [CappedOutput(limit)]
        self.codes: list[int | None] = []
        self.times: list[float] = []
        self._pending = bytearray()

    def add(self, chunk: bytes) -> None:
        self._pending += chunk
        mark = self._mark
        while True:
            at = self._pending.find(mark)
            if at < 0:  # a separator may begin at the end: keep what could be its start
                self._give(max(0, len(self._pending) - len(mark) + 1))
                return
            end = self._pending.find(b"\n", at + len(mark), at + len(mark) + _CODE_ROOM)
            if end < 0 and len(self._pending) - at - len(mark) < _CODE_ROOM:
                self._give(at)  # wait for the rest of the separator
                return
            code = bytes(self._pending[at + len(mark) : end]) if end >= 0 else b""
            if end < 0 or not code.isdigit():  # the nonce, but no separator: plain output
                self._give(at + 1)
                continue
            self._give(at)
            del self._pending[: end + 1 - at]
            self.codes.append(int(code))
            self.times.append(time.monotonic())
            self.parts.append(CappedOutput(self._limit))

    def finish(self) -> None:
        self._give(len(self._pending))

    def _give(self, n: int) -> None:
        if n > 0:
            self.parts[-1].add(bytes(self._pending[:n]))
            del self._pending[:n]


def run_steps(
    api: Any,
    container: str,
    config: SandboxConfig,
    counters: CgroupCounters,
    steps: Sequence[Step],
    read: dict[str, int],
) -> tuple[tuple[ExecResult, ...], ReadBack]:
    """Run `steps` in one exec (see the module's docstring), then the cleanup exec, which
    reads `read` (absolute paths, each with its byte limit) back."""
    nonce = secrets.token_hex(12)
    argv = ["sh", "-c", _WRAPPER, "sh", nonce]
    for step in steps:
        argv += [f"{max(step.timeout_s, 0.01):.2f}", _with_env(step)]
    started = time.monotonic()
    exec_id = api.exec_create(
        container, argv, user=config.user, workdir=config.workdir, environment=dict(BASE_ENV)
    )["Id"]
    sections = _Sections(config.max_output_bytes, f"\n{nonce} ".encode())
    fired = collect(api, container, config, exec_id, sum(s.timeout_s for s in steps), sections.add)
    sections.finish()
    last = exit_code(api, exec_id)
    ended = time.monotonic()
    oom_kills, forks_refused, files = after_run(api, container, config.user, read)
    if len(sections.codes) != len(steps) - 1:
        counters.record_oom_kills(oom_kills, -1, False)  # the counters move on all the same
        counters.record_forks_refused(forks_refused)
        return tuple(_unsplit(step, last, ended - started) for step in steps), files
    bounds = [started, *sections.times, ended]
    results = []
    for k, step in enumerate(steps):
        final = k == len(steps) - 1
        code = last if final else sections.codes[k]
        duration = bounds[k + 1] - bounds[k]
        timed_out = (final and fired) or (code in (124, 137) and duration >= step.timeout_s)
        code = code if code is not None else (124 if timed_out else -1)
        text, truncated = sections.parts[k].text()
        oom = counters.record_oom_kills(oom_kills, code, timed_out) if final else None
        results.append(
            ExecResult(
                command=step.command,
                exit_code=code,
                output=text,
                duration_s=round(duration, 3),
                timed_out=timed_out,
                truncated=truncated,
                oom_killed=oom if oom is not None else code == 137 and not timed_out,
                pids_limited=final and counters.record_forks_refused(forks_refused),
            )
        )
    return tuple(results), files


def _with_env(step: Step) -> str:
    """The step's command, run by a shell of its own with the step's environment added."""
    if not step.env:
        return step.command
    assigns = [f"{name}={value}" for name, value in step.env.items()]
    return shlex.join(["env", *assigns, "sh", "-c", step.command])


def _unsplit(step: Step, code: int | None, duration: float) -> ExecResult:
    return ExecResult(step.command, code if code else -1, UNSPLIT, round(duration, 3))
