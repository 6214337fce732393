"""Commands in the sandbox: one or several steps (a check round's lint and tests) in one exec,
with the cleanup after them in the same exec when it can be trusted.

Each exec costs ~50 ms here on top of its command (runc joins the container's namespaces and
cgroup). A round of lint then tests took four (each command, then its cleanup exec), now one.
The wrapper runs each step under its own time limit, kills what it left running, and writes
a separator: a newline, a nonce drawn for this exec, and the step's exit code. After the last
step it writes the end: the nonce, `end` and the exit code, then the cgroup counters and the
files asked for (`commands.READ_LOOP`), all read once everything the steps started is dead.

What a step shows cannot be changed by a later one: it is on the host before the later one
starts. A step may learn the nonce (the wrapper's command line is readable) and print a
separator, or kill the shell running the steps. The end is trusted only when it is the one
end in the output, its exit code is the exec's own and what follows it is exactly what the
script writes; otherwise the cleanup runs again in an exec of its own (`commands.after_run`),
so nothing a command does decides whether the cleanup runs. When the separators are not one
fewer than the steps, every step fails, saying so. A forged separator or end can only ever
make a step fail, never pass.
"""

from __future__ import annotations

import secrets
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codebot.config import SandboxConfig
from codebot.errors import SandboxError
from codebot.protocols import ReadBack, Step
from codebot.records import ExecResult
from codebot.sandbox.commands import (
    BASE_ENV,
    COUNTERS,
    READ_LOOP,
    CappedOutput,
    CgroupCounters,
    after_run,
    collect,
    exit_code,
    read_cleanup,
)

# $1 the nonce, $2 how many steps; then each step's time limit and command; then each file's
# byte limit and path. Leftovers are killed before the first step (what outlived an earlier
# cleanup) and after each step (so nothing holds the output pipe open); `kill -1` spares the
# caller. Then the files synced since the last command (codebot.tree.script, in
# $CODEBOT_SYNC), unless there are none: when that fails, nothing runs and the host copies
# them as an archive instead. Each step's stderr joins its stdout: one pipe keeps the order
# things were written.
_WRAPPER = (
    "n=$1; k=$2; shift 2; kill -9 -1 2>/dev/null; "
    'if [ -n "${CODEBOT_SYNC-}" ]; then s=$CODEBOT_SYNC; unset CODEBOT_SYNC; '
    'if ! sh -c "$s" >/dev/null 2>&1; then printf "\\n%s nosync\\n" "$n"; exit 125; fi; fi; '
    "while [ $k -gt 0 ]; do "
    'timeout --kill-after=2 "$1" sh -c "$2" 2>&1; rc=$?; kill -9 -1 2>/dev/null; '
    'shift 2; k=$((k - 1)); if [ $k -gt 0 ]; then printf "\\n%s %s\\n" "$n" "$rc"; fi; done; '
    f'printf "\\n%s end %s\\n" "$n" "$rc"; {COUNTERS}; {READ_LOOP}; exit $rc'
)
UNSPLIT = (
    "codebot ran these commands in one exec and cannot tell their output apart: a command "
    "printed the separator between them, or ended the shell that ran them; each counts as failed"
)
SYNC_LIMIT = 96 << 10  # a sync script's characters: one exec argument is at most 128 KiB
_CODE_ROOM = 12  # the longest `end <exit code>` a separator carries, with its newline
_COUNTERS_ROOM = 64 << 10  # the cgroup counters' text, with room to spare


class SyncRefused(Exception):
    """The sandbox could not run the sync script (a tool it uses is missing, say): nothing
    ran; copy the files another way and run the steps again."""


@dataclass
class _End:
    code: int
    at: float  # when it arrived
    tail: bytearray  # what followed it: counters and files
    over: bool = False  # more followed than the script writes


class _Sections:
    """The exec's output cut at each separator, each part capped as `CappedOutput` caps one
    command's; the end and what follows it, up to `tail_limit` bytes."""

    def __init__(self, limit: int, mark: bytes, tail_limit: int) -> None:
        self._limit, self._mark, self._tail_limit = limit, mark, tail_limit
        self.parts = [CappedOutput(limit)]
        self.codes: list[int] = []
        self.times: list[float] = []
        self.end: _End | None = None
        self._pending = bytearray()

    def add(self, chunk: bytes) -> None:
        if self.end is not None:
            self._to_tail(chunk)
            return
        self._pending += chunk
        mark = self._mark
        while self.end is None:
            at = self._pending.find(mark)
            if at < 0:  # a separator may begin at the end: keep what could be its start
                self._give(max(0, len(self._pending) - len(mark) + 1))
                return
            end = self._pending.find(b"\n", at + len(mark), at + len(mark) + _CODE_ROOM)
            if end < 0 and len(self._pending) - at - len(mark) < _CODE_ROOM:
                self._give(at)  # wait for the rest of the separator
                return
            said = bytes(self._pending[at + len(mark) : end]) if end >= 0 else b""
            last = said.startswith(b"end ")
            code = said.removeprefix(b"end ")
            if end < 0 or not code.isdigit():  # the nonce, but no separator: plain output
                self._give(at + 1)
                continue
            self._give(at)
            del self._pending[: end + 1 - at]
            if last:
                self.end = _End(int(code), time.monotonic(), bytearray())
                rest, self._pending = bytes(self._pending), bytearray()
                self._to_tail(rest)
            else:
                self.codes.append(int(code))
                self.times.append(time.monotonic())
                self.parts.append(CappedOutput(self._limit))

    @property
    def forged(self) -> bool:
        """Whether an end came before the wrapper's own (whose follows it), or more came
        after the end than the wrapper writes."""
        end = self.end
        return end is not None and (end.over or self._mark + b"end " in end.tail)

    def _to_tail(self, chunk: bytes) -> None:
        assert self.end is not None
        if len(self.end.tail) + len(chunk) > self._tail_limit:
            self.end.over = True
            return
        self.end.tail += chunk

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
    read: Mapping[str, int],
    sync: str = "",
) -> tuple[tuple[ExecResult, ...], ReadBack]:
    """Run `steps` in one exec (see the module's docstring), cleaning up after them and
    reading `read` back (absolute paths, each with its byte limit); the `sync` script first
    (SyncRefused when it fails)."""
    assert steps, "at least one step"
    nonce = secrets.token_hex(12)
    argv = ["sh", "-c", _WRAPPER, "sh", nonce, str(len(steps))]
    for step in steps:
        argv += [f"{max(step.timeout_s, 0.01):.2f}", _with_env(step, alone=len(steps) == 1)]
    argv += [str(arg) for path, limit in read.items() for arg in (max(limit, 0), path)]
    env = {**BASE_ENV, **((steps[0].env or {}) if len(steps) == 1 else {})}
    if sync:
        env["CODEBOT_SYNC"] = sync
    started = time.monotonic()
    exec_id = api.exec_create(
        container, argv, user=config.user, workdir=config.workdir, environment=env
    )["Id"]
    tail_limit = _COUNTERS_ROOM + sum(limit + 64 for limit in read.values())
    sections = _Sections(config.max_output_bytes, f"\n{nonce} ".encode(), tail_limit)
    total = sum(s.timeout_s for s in steps)
    fired = collect(api, container, config, exec_id, total, sections.add)
    sections.finish()
    last = exit_code(api, exec_id)
    ended = sections.end.at if sections.end else time.monotonic()
    oom_kills, forks_refused, files = _cleanup(api, container, config, sections, last, read)
    if sync and not sections.codes and sections.end is None:
        said, _ = sections.parts[0].text()
        if said == f"\n{nonce} nosync\n":
            raise SyncRefused(said)
    if len(sections.codes) != len(steps) - 1 or sections.forged:
        counters.record_oom_kills(oom_kills, -1, False)  # the counters move on all the same
        counters.record_forks_refused(forks_refused)
        return tuple(_unsplit(step, last, ended - started) for step in steps), files
    bounds = [started, *sections.times, ended]
    ended_as = (last, fired, oom_kills, forks_refused)
    return tuple(
        _result(step, k, k == len(steps) - 1, sections, bounds[k : k + 2], ended_as, counters)
        for k, step in enumerate(steps)
    ), files


def _result(
    step: Step,
    k: int,
    final: bool,
    sections: _Sections,
    bounds: Sequence[float],
    ended_as: tuple[int | None, bool, int | None, int | None],
    counters: CgroupCounters,
) -> ExecResult:
    """Step `k`'s result: its part of the output, its exit code (the exec's for the last
    step), its time; the cgroup counters count for the last step only."""
    last, fired, oom_kills, forks_refused = ended_as
    code = last if final else sections.codes[k]
    duration = bounds[1] - bounds[0]
    timed_out = (final and fired) or (code in (124, 137) and duration >= step.timeout_s)
    code = code if code is not None else (124 if timed_out else -1)
    text, truncated = sections.parts[k].text()
    oom = counters.record_oom_kills(oom_kills, code, timed_out) if final else None
    return ExecResult(
        command=step.command,
        exit_code=code,
        output=text,
        duration_s=round(duration, 3),
        timed_out=timed_out,
        truncated=truncated,
        oom_killed=oom if oom is not None else code == 137 and not timed_out,
        pids_limited=final and counters.record_forks_refused(forks_refused),
    )


def _cleanup(
    api: Any,
    container: str,
    config: SandboxConfig,
    sections: _Sections,
    code: int | None,
    read: Mapping[str, int],
) -> tuple[int | None, int | None, ReadBack]:
    """The counters and files the wrapper wrote after its end, when that can be trusted;
    else the cleanup again, in an exec of its own."""
    end = sections.end
    if end is not None and not sections.forged and end.code == code:
        try:
            return read_cleanup(bytes(end.tail), read)
        except SandboxError:  # not what the script writes: someone else wrote after the end
            pass
    return after_run(api, container, config.user, read)


def _with_env(step: Step, alone: bool) -> str:
    """The step's command; in a shell of its own with its environment added, unless it runs
    alone (its environment is then the exec's)."""
    if not step.env or alone:
        return step.command
    assigns = [f"{name}={value}" for name, value in step.env.items()]
    return shlex.join(["env", *assigns, "sh", "-c", step.command])


def _unsplit(step: Step, code: int | None, duration: float) -> ExecResult:
    return ExecResult(step.command, code if code else -1, UNSPLIT, round(duration, 3))
