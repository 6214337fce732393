"""Watching a run's sandbox from outside, to hit it at the right moment.

Other codebot runs may share the engine, so the test's container is told apart by a token in
its check command, never by the label alone.
"""

from __future__ import annotations

import re
import secrets
import time

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.support.docker_fixtures import LABEL
from tests.support.model_server import ScriptedModelServer, Turn

# Slow only once the model's edit is in (the baseline stays fast): there is time to hit it.
SLOW_AFTER_EDIT = "grep -q '\"m\": 60' duration.py && sleep 30; python3 -m pytest -q"


def in_a_second(reply: str) -> Turn:
    """A reply from a model that takes a second (real ones take more): the iteration's fresh
    sandbox, started once the baseline is in, is up by then, so cheap checks run there alone."""
    return Turn.reply(reply, delay_s=1)


def tagged(command: str) -> tuple[str, str]:
    """`command` with a unique token in it (as a shell comment), and the token."""
    token = f"fault-{secrets.token_hex(6)}"
    return f"{command}  # {token}", token


def container_running_slow_check(
    client: docker.DockerClient,
    server: ScriptedModelServer,
    token: str,
    timeout_s: float = 60,
    *,
    fresh: bool = True,
) -> Container:
    """The run's sandbox container that runs the iteration's check, once the model was
    asked and the check tagged with `token` sits in its `sleep 30` (the keeper's `sleep 3600`
    runs in every sandbox, so match exactly). `fresh`: that sandbox is the iteration's fresh
    one (`<run>-verify`: cheap checks run only there, codebot.speculate), else the loop's own
    (the run must not check ahead then: CODEBOT_VERIFY_AHEAD=off)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.requests:
            for container in client.containers.list(filters={"label": LABEL}):
                if bool(re.search(r"-verify\d*$", container.name)) != fresh:
                    continue
                try:
                    commands = [p[-1] for p in container.top()["Processes"]]
                except docker.errors.APIError:
                    continue  # another run's container, going away
                if any(token in c for c in commands) and "sleep 30" in commands:
                    return container
        time.sleep(0.1)
    pytest.fail(f"no sandbox ran the check tagged {token} within {timeout_s:g}s", pytrace=False)


def run_of(container: Container) -> str:
    """The id of the run a sandbox is part of (a fresh sandbox's label adds `-verify<n>`)."""
    return re.sub(r"-verify\d*$", "", str(container.labels[LABEL]))
