"""Fixtures for tests against the real Docker engine and the sandbox base image.

A missing engine or image fails the test with the command that fixes it: a docker test that
silently skips would let CI go green without ever running a sandbox.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import docker
import docker.errors
import pytest

from codebot.config import DEFAULT_IMAGE, SandboxConfig
from codebot.sandbox import DockerSandbox

LABEL = "codebot.run"
SETUP_HINT = "run `bash sandbox/setup-host.sh` (starts dockerd and builds the image)"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"the Docker engine is not reachable ({exc}); {SETUP_HINT}", pytrace=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def sandbox_image(docker_client: docker.DockerClient) -> str:
    image = os.environ.get("CODEBOT_SANDBOX_IMAGE", DEFAULT_IMAGE)
    try:
        docker_client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"the sandbox image {image} is missing; {SETUP_HINT}", pytrace=False)
    return image


def _labels(run_id: str | None) -> list[dict[str, str]]:
    """A run's sandbox, and the one that checks its committed tree (`<run id>-verify`)."""
    if run_id is None:
        return [{"label": LABEL}]
    return [{"label": f"{LABEL}={run_id}"}, {"label": f"{LABEL}={run_id}-verify"}]


def sandbox_leftovers(client: docker.DockerClient, run_id: str | None = None) -> list[str]:
    """Containers and volumes labelled with `run_id` (any run id when None)."""
    found = []
    for label in _labels(run_id):
        found += [f"container {c.name}" for c in client.containers.list(all=True, filters=label)]
        found += [f"volume {v.name}" for v in client.volumes.list(filters=label)]
    return found


def remove_leftovers(client: docker.DockerClient, run_id: str) -> None:
    for label in _labels(run_id):
        for container in client.containers.list(all=True, filters=label):
            container.remove(force=True)
        for volume in client.volumes.list(filters=label):
            volume.remove(force=True)


@pytest.fixture
def run_ids(docker_client: docker.DockerClient) -> Iterator[Callable[[], str]]:
    """A factory of unique run ids; the test fails if any of them left a container or a
    volume behind (which are then removed, so one leak does not break the next test).
    Only this test's ids are checked: other codebot runs on the machine are left alone."""
    issued: list[str] = []

    def new_id() -> str:
        issued.append(f"test-{uuid.uuid4().hex[:12]}")
        return issued[-1]

    yield new_id
    left = [name for run_id in issued for name in sandbox_leftovers(docker_client, run_id)]
    for run_id in issued:
        remove_leftovers(docker_client, run_id)
    if left:
        pytest.fail(f"sandbox resources left behind: {', '.join(left)}", pytrace=False)


@pytest.fixture
def no_leftover_containers(docker_client: docker.DockerClient) -> Iterator[None]:
    """Fail the test if it leaves any codebot-labelled container or volume behind, for tests
    that cannot know the run id (e.g. the CLI in a subprocess). Assumes no other codebot run
    starts on this engine during the test; leftovers are reported, not removed, for that
    reason (they might belong to someone else)."""
    before = set(sandbox_leftovers(docker_client))
    yield
    left = sorted(set(sandbox_leftovers(docker_client)) - before)
    if left:
        pytest.fail(
            f"sandbox resources left behind: {', '.join(left)}; remove them with "
            "`python -c 'from codebot.sandbox import cleanup_orphans; cleanup_orphans()'`",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def shared_sandbox(
    docker_client: docker.DockerClient, sandbox_image: str
) -> Iterator[DockerSandbox]:
    """One sandbox per test module, for the tests that cannot disturb each other; it must
    leave nothing behind when closed."""
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    try:
        with DockerSandbox.start(SandboxConfig(image=sandbox_image), run_id) as sandbox:
            yield sandbox
        assert sandbox_leftovers(docker_client, run_id) == []
    finally:
        remove_leftovers(docker_client, run_id)
