"""The parts of running commands in the sandbox (codebot.sandbox.steps runs them): capped
output, the watchdog behind a time limit, the cgroup counters, reading files back once
everything a command started is dead, and the cleanup exec run when a command's wrapper did
not end as it should.

Docker errors propagate from here; `DockerSandbox.run` translates them.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from codebot.config import SandboxConfig
from codebot.errors import FileTooLarge, SandboxError
from codebot.protocols import ReadBack
from codebot.sandbox.engine import GONE_FIX

BASE_ENV: Mapping[str, str] = {
    # The cached environment's bin last: what setup installed never shadows a system command.
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/codebot-env/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    # Where setup's installs live (codebot.environment): inside the image, read-only at run time.
    "PYTHONUSERBASE": "/opt/codebot-env",
    "GOMODCACHE": "/opt/codebot-env/go/pkg/mod",
}
WATCHDOG_GRACE_S = 5.0

_KILL_ALL = ["kill", "-9", "-1"]
# Kill what a command left running, then read the cgroup's counters (v2, then v1): OOM kills,
# and forks refused at the pids limit.
COUNTERS = (
    "cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null; "
    "echo pids; cat /sys/fs/cgroup/pids.events /sys/fs/cgroup/pids/pids.events 2>/dev/null"
)
# Each file asked for ($1 its byte limit, $2 its path, and so on): a header line with its size
# ("-" when it is no regular file), and its bytes unless that size is over the limit. Run once
# everything the command started is killed: nothing can change a file between its stat and
# its read.
_READ_MARK = b"\ncodebot-read-back "
READ_LOOP = (
    'while [ $# -gt 1 ]; do printf "\\ncodebot-read-back "; '
    'if [ -f "$2" ] && [ ! -h "$2" ] && s=$(stat -c %s -- "$2" 2>/dev/null); then '
    'printf "%s\\n" "$s"; if [ "$s" -le "$1" ]; then head -c "$1" -- "$2"; fi; '
    'else printf -- "-\\n"; fi; shift 2; done'
)
# The host's cleanup after a command whose wrapper did not end as it should (codebot.sandbox
# .steps): in an exec of its own, so that nothing the command printed or did to its wrapper
# (which it can read, signal and imitate) decides whether it runs.
_AFTER_RUN = f"kill -9 -1 2>/dev/null; {COUNTERS}; {READ_LOOP}; true"


class CgroupCounters:
    """The cgroup's counters as of the last command: they only ever grow, so each command's
    result reports what it added. Not thread-safe, like the sandbox that owns it."""

    def __init__(self) -> None:
        self._oom_kills = 0
        self._forks_refused = 0

    def record_forks_refused(self, forks_refused: int | None) -> bool:
        """Whether the cgroup refused a fork at the pids limit since the last command."""
        if forks_refused is None:
            return False
        hit = forks_refused > self._forks_refused
        self._forks_refused = forks_refused
        return hit

    def record_oom_kills(self, oom_kills: int | None, exit_code: int, timed_out: bool) -> bool:
        """Whether the OOM-kill counter went up; without a counter, 137 that was no timeout."""
        if oom_kills is None:
            return exit_code == 137 and not timed_out
        seen = oom_kills > self._oom_kills
        self._oom_kills = oom_kills
        return seen


def exec_argv(api: Any, container: str, user: str, argv: list[str]) -> bytes:
    """Run `argv` to its end and return its output; for the sandbox's own housekeeping."""
    exec_id = api.exec_create(container, argv, user=user)["Id"]
    output: bytes = api.exec_start(exec_id)
    return output


def exit_code(api: Any, exec_id: str) -> int | None:
    """The exec's exit code; polled briefly, as the daemon records it just after EOF."""
    for _ in range(20):
        code = api.exec_inspect(exec_id)["ExitCode"]
        if code is not None:
            return int(code)
        time.sleep(0.05)
    return None


def after_run(
    api: Any, container: str, user: str, read: Mapping[str, int]
) -> tuple[int | None, int | None, ReadBack]:
    """Clean up after a command; return the cgroup's OOM-kill count and its count of forks
    refused at the pids limit (None where not readable), and the files at `read`. The
    script always exits 0 in a live container: anything else means the container is being
    killed or removed, and the command's death must not pass for a failed check."""
    asked = [str(arg) for path, limit in read.items() for arg in (max(limit, 0), path)]
    argv = ["sh", "-c", _AFTER_RUN, "sh", *asked]
    exec_id = api.exec_create(container, argv, user=user)["Id"]
    output: bytes = api.exec_start(exec_id)
    code = exit_code(api, exec_id)
    if code is None:  # not recorded in time: ask the container itself
        code = 0 if api.inspect_container(container)["State"]["Running"] else -1
    if code != 0:
        lines = output.decode("utf-8", "replace").strip().splitlines()
        raise SandboxError(
            f"the sandbox container {container} is not running any more"
            + (f" ({lines[0][:200]})" if lines else ""),
            GONE_FIX,
        )
    return read_cleanup(output, read)


def read_cleanup(output: bytes, read: Mapping[str, int]) -> tuple[int | None, int | None, ReadBack]:
    """The cgroup counters and the files at `read` from what `COUNTERS` then `READ_LOOP`
    wrote; SandboxError when it does not hold exactly that."""
    said, _, files = output.partition(_READ_MARK)
    return (*read_counters(said), read_back(_READ_MARK + files if files else b"", read))


def read_back(output: bytes, read: Mapping[str, int]) -> ReadBack:
    """The files `_AFTER_RUN` wrote out, in the order asked; SandboxError when the output
    does not hold what the script writes."""
    files: ReadBack = {}
    at = 0
    for path, limit in read.items():
        head_end = output.find(b"\n", at + len(_READ_MARK))
        if not output.startswith(_READ_MARK, at) or head_end < 0:
            raise SandboxError(f"reading {path} back from the sandbox failed", GONE_FIX)
        size = output[at + len(_READ_MARK) : head_end]
        at = head_end + 1
        if size == b"-":
            files[path] = None
        elif not size.isdigit():
            raise SandboxError(f"reading {path} back from the sandbox failed", GONE_FIX)
        elif int(size) > limit:
            files[path] = FileTooLarge(path, int(size), limit)
        elif len(data := output[at : at + int(size)]) == int(size):
            files[path], at = data, at + int(size)
        else:
            raise SandboxError(f"{path} was cut short reading it back from the sandbox", GONE_FIX)
    if at != len(output):
        raise SandboxError("more than the files asked for came back from the sandbox", GONE_FIX)
    return files


def read_counters(output: bytes) -> tuple[int | None, int | None]:
    """The OOM-kill and refused-fork counts from `COUNTERS` output (None if unreadable)."""
    memory, _, pids = (b"\n" + output).partition(b"\npids\n")
    oom = re.search(rb"^oom_kill (\d+)$", memory, re.MULTILINE)
    refused = re.search(rb"^max (\d+)$", pids, re.MULTILINE)
    return (int(oom.group(1)) if oom else None, int(refused.group(1)) if refused else None)


def collect(
    api: Any,
    container: str,
    config: SandboxConfig,
    exec_id: str,
    timeout_s: float,
    add: Callable[[bytes], object],
) -> bool:
    """Hand the exec's output to `add` until it ends, or the watchdog ends it after
    `timeout_s` and a grace; whether the watchdog fired."""
    stream = api.exec_start(exec_id, stream=True)
    kill_all = functools.partial(exec_argv, api, container, config.user, _KILL_ALL)
    with _Watchdog(timeout_s + WATCHDOG_GRACE_S, kill_all, stream) as dog:
        try:
            for chunk in stream:
                add(chunk)
        except Exception:
            if not dog.fired.is_set():
                raise
    return dog.fired.is_set()


class CappedOutput:
    """Keeps the first and the last half of `limit` bytes of a stream."""

    def __init__(self, limit: int) -> None:
        self._head_max = max(limit, 2) // 2
        self._tail_max = max(limit, 2) - self._head_max
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def add(self, chunk: bytes) -> None:
        self._total += len(chunk)
        room = self._head_max - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        self._tail += chunk
        if len(self._tail) > 2 * self._tail_max:
            del self._tail[: len(self._tail) - self._tail_max]

    def text(self) -> tuple[str, bool]:
        tail = self._tail[max(0, len(self._tail) - self._tail_max) :]
        cut = self._total - len(self._head) - len(tail)
        marker = f"\n[... {cut} bytes cut ...]\n".encode() if cut > 0 else b""
        return (self._head + marker + tail).decode("utf-8", "replace"), cut > 0


class _Watchdog:
    """Last resort if `timeout` itself cannot end the command: kill every sandbox process,
    and if the stream still does not end, drop the connection so `run` returns."""

    def __init__(self, after_s: float, kill: Callable[[], object], stream: Any) -> None:
        self.fired = threading.Event()
        self._done = threading.Event()
        self._after_s = after_s
        self._kill = kill
        self._stream = stream
        self._thread = threading.Thread(target=self._watch, daemon=True, name="codebot-watchdog")

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
        self._stream.close()

    def _watch(self) -> None:
        if self._done.wait(self._after_s):
            return
        self.fired.set()
        with contextlib.suppress(Exception):  # the stream close below still ends the run
            self._kill()
        if not self._done.wait(WATCHDOG_GRACE_S):
            self._stream.close()
