"""Which process made something (a sandbox, a temp clone), and whether it has ended.

A run killed outright (SIGKILL) cannot clean up after itself; what it made carries
`owner()`, and the next run on the same host removes what `owner_gone` says was abandoned.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def owner(pid: int | None = None) -> str:
    """`host/pid/start-time` of a process (this one by default); the start time tells a
    reused pid apart. Empty start time where /proc is not there."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{pid}/{_start_time(pid) or ''}"


def owner_gone(value: str) -> bool:
    """Whether the process named by an `owner()` value has ended. Only a process of this
    host can be judged: any other (or an unreadable label) counts as alive."""
    host, _, rest = value.partition("/")
    pid_text, _, started = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, someone else's
    return bool(started) and _start_time(pid) not in (None, started)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]
