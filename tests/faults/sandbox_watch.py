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
from tests.support.model_server import ScriptedModelServer

# Slow only once the model's edit is in (the baseline stays fast): there is time to hit it.
SLOW_AFTER_EDIT = "grep -q '\"m\": 60' duration.py && sleep 30; python3 -m pytest -q"


def tagged(command: str) -> tuple[str, str]:
    """`command` with a unique token in it (as a shell comment), and the token."""
    token = f"fault-{secrets.token_hex(6)}"
    return f"{command}  # {token}", token


def container_running_slow_check(
    client: docker.DockerClient, server: ScriptedModelServer, token: str, timeout_s: float = 60
) -> Container:
    """The run's sandbox container, once the model was asked and the check tagged with
    `token` sits in its `sleep 30` (the keeper's `sleep 3600` runs in every sandbox, so match
    exactly). The verification's sandbox, checking the same tree beside it
    (codebot.speculate), is not the one."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.requests:
            for container in client.containers.list(filters={"label": LABEL}):
                if re.search(r"-verify\d*$", container.name):
                    continue
                try:
                    commands = [p[-1] for p in container.top()["Processes"]]
                except docker.errors.APIError:
                    continue  # another run's container, going away
                if any(token in c for c in commands) and "sleep 30" in commands:
                    return container
        time.sleep(0.1)
    pytest.fail(f"no sandbox ran the check tagged {token} within {timeout_s:g}s", pytrace=False)
