"""The `bot` fixture: whole runs of codebot, each checked for leftover sandbox resources."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.security.harness import Bot
from tests.support.docker_fixtures import remove_leftovers, sandbox_leftovers
from tests.support.model_server import ScriptedModelServer


@pytest.fixture
def bot(
    model_server: ScriptedModelServer,
    sandbox_image: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> Iterator[Bot]:
    """Runs the bot in-process. Afterwards, every run's container and volumes must be gone
    (checked by run id, so other codebot runs on this engine do not matter)."""
    runner = Bot(model_server, sandbox_image, tmp_path)
    yield runner
    left = [name for run_id in runner.run_ids for name in sandbox_leftovers(docker_client, run_id)]
    for run_id in runner.run_ids:
        remove_leftovers(docker_client, run_id)
    if left:
        pytest.fail(f"sandbox resources left behind: {', '.join(left)}", pytrace=False)
