"""The pieces every security test shares: a run of the whole bot over a hostile repository,
and the evidence the hostile code leaves behind in its own failure message.

Hostile test files report what they managed as one line, `EVIDENCE {json}`, in the
AssertionError they end with; the bot records that failure like any other, so the evidence
is read back from run.json, exactly as a user would see it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

import codebot
from codebot import config as cfg
from codebot.local import RunOutcome, RunRequest, execute
from tests.support.model_server import ScriptedModelServer

PYTEST = "python3 -m pytest -q"
_EVIDENCE = re.compile(r"EVIDENCE (\{.*\})\s*$", re.MULTILINE)


def spec_fields(**fields: Any) -> dict[str, Any]:
    """A spec for one hostile run: pytest only, one model turn, unless told otherwise."""
    return {
        "title": "Make the tests pass",
        "description": "Make the test suite pass.",
        "test": PYTEST,
        "lint": False,
        "max_iterations": 1,
        "timeout": 30,
        **fields,
    }


def hostile_module(body: str, **constants: Any) -> str:
    """Python source: `constants` as assignments, then `body` (dedented)."""
    header = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    return "import json\n" + header + "\n" + textwrap.dedent(body).lstrip("\n")


def creates(path: str, text: str, why: str = "Add a test for this.") -> str:
    """A model reply that creates `path` with `text` (an empty SEARCH)."""
    body = text if text.endswith("\n") else text + "\n"
    return f"{why}\n\n{path}\n<<<<<<< SEARCH\n=======\n{body}>>>>>>> REPLACE\n"


def replaces(path: str, search: str, replace_with: str, why: str = "Fix it.") -> str:
    """A model reply with one SEARCH/REPLACE block on `path`."""
    return (
        f"{why}\n\n{path}\n<<<<<<< SEARCH\n{search.rstrip()}\n=======\n"
        f"{replace_with.rstrip()}\n>>>>>>> REPLACE\n"
    )


def evidence(check: Mapping[str, Any]) -> dict[str, Any]:
    """The EVIDENCE a hostile test reported in its failure, as recorded in a check."""
    texts = [check.get("output", "")] + [t["detail"] for t in check.get("failing_tests", [])]
    found = [m for text in texts for m in _EVIDENCE.findall(text)]
    assert found, f"the hostile test reported no evidence; the check said:\n{check['output']}"
    result: dict[str, Any] = json.loads(found[-1])
    return result


@dataclass(frozen=True)
class BotRun:
    """One finished run: what `execute` returned and run.json as it was written."""

    outcome: RunOutcome
    record: dict[str, Any]

    @property
    def run_id(self) -> str:
        return str(self.record["run_id"])

    def file(self, name: str) -> str:
        return (self.outcome.files.directory / name).read_text(encoding="utf-8")

    def iteration_test(self, number: int = 1) -> dict[str, Any]:
        """The test check of iteration `number` (1-based), as recorded."""
        checks = self.record["iterations"][number - 1]["checks"]
        tests = [c for c in checks if c["name"] == "test"]
        assert tests, f"iteration {number} ran no tests: {self.record['iterations'][number - 1]}"
        return dict(tests[-1])

    def baseline_test(self) -> dict[str, Any]:
        return dict(next(c for c in self.record["baseline"] if c["name"] == "test"))

    def all_checks(self) -> list[dict[str, Any]]:
        return [
            *self.record["baseline"],
            *(c for i in self.record["iterations"] for c in i["checks"]),
        ]

    def edits(self) -> list[dict[str, Any]]:
        return [e for i in self.record["iterations"] for e in i["edits"]]


class Bot:
    """Runs the whole bot in-process (`codebot.runner.execute`, as `codebot dry-run` does)
    against the scripted model server and the real Docker engine."""

    def __init__(self, server: ScriptedModelServer, image: str, workdir: Path) -> None:
        self.server = server
        self.image = image
        self.workdir = workdir
        self.run_ids: list[str] = []
        self._count = 0

    def env(self, **extra: str) -> dict[str, str]:
        """The environment an operator gives codebot: endpoint, key, model, image."""
        return {
            "OPENAI_BASE_URL": self.server.base_url,
            "OPENAI_API_KEY": "sk-test-not-secret-0000",
            "CODEBOT_MODEL": "test-model",
            "CODEBOT_SANDBOX_IMAGE": self.image,
            **extra,
        }

    def run(
        self,
        repo: Path,
        spec: Mapping[str, Any],
        env: Mapping[str, str] | None = None,
        **sandbox: Any,
    ) -> BotRun:
        """Run `spec` on `repo`; `sandbox` overrides the operator's sandbox limits."""
        self._count += 1
        spec_path = self.workdir / f"spec-{self._count}.yaml"
        spec_path.write_text(yaml.safe_dump(dict(spec), sort_keys=False), encoding="utf-8")
        env = dict(env or self.env())
        settings = cfg.from_env(env)
        settings = replace(
            settings,
            runs_dir=self.workdir / "runs",
            sandbox=replace(settings.sandbox, **sandbox),
        )
        outcome = execute(RunRequest(spec_path, repo, settings), env=env)
        self.run_ids.append(outcome.record.run_id)
        record = json.loads(outcome.files.run_json.read_text(encoding="utf-8"))
        return BotRun(outcome, record)


# -- the command line ----------------------------------------------------------------------


def cli(args: list[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`codebot ARGS` in a subprocess, running the same codebot package this test imported."""
    package_root = str(Path(codebot.__file__).resolve().parents[1])
    full = {"PATH": os.environ["PATH"], "HOME": str(cwd), "PYTHONPATH": package_root, **env}
    if "DOCKER_HOST" in os.environ:
        full.setdefault("DOCKER_HOST", os.environ["DOCKER_HOST"])
    return subprocess.run(
        [sys.executable, "-m", "codebot", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=240,
    )


# -- watching the host while a run goes on ----------------------------------------------------


@dataclass
class HostWatch:
    """What the host looked like while a run went on."""

    worst_spawn_s: float = 0.0
    lowest_free_bytes: int = 0
    samples: int = 0


@contextmanager
def watch_host(disk_path: str, interval_s: float = 0.05) -> Iterator[HostWatch]:
    """Sample, until the block ends, how long the host takes to start a process and how much
    space is free on the disk holding `disk_path` (Docker's data root)."""
    seen = HostWatch(lowest_free_bytes=shutil.disk_usage(disk_path).free)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            started = time.monotonic()
            subprocess.run(["true"], check=True)
            seen.worst_spawn_s = max(seen.worst_spawn_s, time.monotonic() - started)
            seen.lowest_free_bytes = min(seen.lowest_free_bytes, shutil.disk_usage(disk_path).free)
            seen.samples += 1
            done.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True, name="host-watch")
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()


@contextmanager
def unix_listener(path: Path) -> Iterator[list[bytes]]:
    """A socket at `path` that logs what every client sends (e.g. as a DOCKER_HOST: the first
    request a client makes shows up in the log, and is never answered)."""
    import socket

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    server.settimeout(0.1)
    log: list[bytes] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    log.append(conn.recv(1024))
                except OSError:
                    log.append(b"")

    thread = threading.Thread(target=accept, daemon=True, name="unix-listener")
    thread.start()
    try:
        yield log
    finally:
        done.set()
        thread.join()
        server.close()


@dataclass
class HostListener:
    """A TCP listener on every host interface that logs whoever connects and what they send."""

    port: int
    log: list[str]


@contextmanager
def host_listener() -> Iterator[HostListener]:
    import socket

    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.1)
    listener = HostListener(server.getsockname()[1], [])
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                conn, address = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    data = conn.recv(1024)
                except OSError:
                    data = b""
            listener.log.append(f"{address[0]}:{address[1]} sent {data!r}")

    thread = threading.Thread(target=accept, daemon=True, name="host-listener")
    thread.start()
    try:
        yield listener
    finally:
        done.set()
        thread.join()
        server.close()
