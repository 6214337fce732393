"""One task of a batch, forked from a process that has imported codebot and the model SDK
once (codebot.batch): a fresh `codebot dry-run` process spends ~0.75 s of CPU importing
them, as much again as the rest of a trivial run, and a batch pays it per task.

Imported by the batch's fork server before it forks anything: it starts no thread and
holds nothing a task could share. A task's output goes to its own pipes, relayed to the
batch over `conn`: each stderr line as it comes (the progress), stdout whole at the end,
then its exit code and peak RSS.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection

from codebot import cli
from codebot import local as _local  # noqa: F401  (imported here once, for every task)
from codebot.llm import sdk

sdk()  # the model SDK, likewise


def main(argv: Sequence[str], conn: Connection) -> None:
    """Run `codebot ARGV` in this (forked) process and end it."""
    send = _Sender(conn)
    relays = [_relay(1, send, "out", whole=True), _relay(2, send, "err", whole=False)]
    sys.argv = ["codebot", *argv]
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = cli._status(exc.code)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.close(1)  # the relays see the end of the output
    os.close(2)
    for relay in relays:
        relay.join()
    send(("done", code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
    conn.close()
    cli.finish(code)


class _Sender:
    """`conn.send` for several threads: one message at a time."""

    def __init__(self, conn: Connection) -> None:
        self._conn, self._lock = conn, threading.Lock()

    def __call__(self, message: object) -> None:
        with self._lock:
            self._conn.send(message)


def _relay(fd: int, send: _Sender, kind: str, whole: bool) -> threading.Thread:
    """Point `fd` at a new pipe and pass what is written to it on to `conn`."""
    read, write = os.pipe()
    os.dup2(write, fd)
    os.close(write)

    def relay() -> None:
        with os.fdopen(read, "rb") as source:
            if whole:
                send((kind, source.read()))
                return
            for line in source:
                send((kind, line))

    thread = threading.Thread(target=relay, daemon=True, name=f"codebot-relay-{kind}")
    thread.start()
    return thread
