"""A proxy between a test and the real Docker engine: a socket of the test's own that codebot
is pointed at (DOCKER_HOST), which the test can cut to make the engine "die", or which sits
on TCP to stand for an engine on another machine."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest


def engine_address() -> tuple[socket.AddressFamily, Any]:
    """Where the real engine listens, as DOCKER_HOST (or the default socket) says."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        return socket.AF_UNIX, host.removeprefix("unix://")
    if host.startswith("tcp://"):
        name, _, port = host.removeprefix("tcp://").rstrip("/").rpartition(":")
        return socket.AF_INET, (name, int(port))
    pytest.fail(f"cannot proxy DOCKER_HOST={host} (only unix:// and tcp://)", pytrace=False)


class EngineProxy:
    """Forwards bytes between a unix socket at `path` and the real engine until `cut()`."""

    def __init__(self, path: Path | None) -> None:
        """At a unix socket `path`; or, with None, on a TCP port of 127.0.0.1 (an engine
        reached over the network, as `DOCKER_HOST=tcp://...` does)."""
        self._upstream = engine_address()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        if path is None:
            self._listener = socket.create_server(("127.0.0.1", 0))
            self.path = None
            self.url = f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"
        else:
            self._listener = socket.socket(socket.AF_UNIX)
            self._listener.bind(str(path))
            self.path = path
            self.url = f"unix://{path}"
        self._listener.listen(64)
        self._listener.settimeout(0.05)
        self.connections = 0

    def start(self) -> EngineProxy:
        threading.Thread(target=self._accept, daemon=True, name="engine-proxy").start()
        return self

    def cut(self) -> None:
        """The engine dies: nothing listens any more and every open connection drops."""
        self._cut.set()
        self._listener.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self) -> None:
        while not self._cut.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.socket(self._upstream[0])
            try:
                upstream.connect(self._upstream[1])
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._cut.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets |= {client, upstream}
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(src, dst), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
