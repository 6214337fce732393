"""Who made a sandbox, and whether that process has ended: real processes, no engine."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from codebot.owner import owner, owner_gone


def test_this_process_is_not_gone() -> None:
    assert not owner_gone(owner())


def test_a_process_that_exited_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    label = owner(child.pid)
    child.wait()
    assert label.split("/")[2], "the start time was read while the child ran"
    assert owner_gone(label)


def test_a_reused_pid_with_another_start_time_is_gone() -> None:
    host, pid, started = owner().split("/")
    assert owner_gone(f"{host}/{pid}/{int(started) + 1}")
    assert not owner_gone(f"{host}/{pid}/")  # no start time recorded: the pid alone decides


def test_processes_of_other_hosts_and_unreadable_labels_count_as_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not owner_gone(f"not-{socket.gethostname()}/{child.pid}/1")
    for value in ("", "garbage", f"{socket.gethostname()}/x/1", f"{socket.gethostname()}"):
        assert not owner_gone(value), value
    assert owner(os.getpid()) == owner()
