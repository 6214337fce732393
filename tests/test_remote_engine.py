"""The sandbox engine may be on another machine: DOCKER_HOST over TCP (or ssh, which the
docker SDK reaches the same way). Here the "remote" engine is the real one behind a TCP
proxy of the test's own on 127.0.0.1, so every call crosses a network socket."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.support.engine_proxy import EngineProxy
from tests.support.git_repos import git
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT, cli_env, codebot

pytestmark = pytest.mark.docker
SPEC = "specs/examples/parse-duration.yaml"


@pytest.fixture
def tcp_engine() -> Iterator[EngineProxy]:
    proxy = EngineProxy(None).start()
    yield proxy
    proxy.cut()


def test_a_run_on_an_engine_reached_over_tcp_goes_green_and_leaves_nothing(
    tcp_engine, model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    env = cli_env(model_server, DOCKER_HOST=tcp_engine.url, CODEBOT_SANDBOX_IMAGE=sandbox_image)
    spec = os.path.abspath(SPEC)

    result = codebot(["dry-run", spec, "--repo", str(example_repo), "--runs-dir", "runs"], env,
                     tmp_path)  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert tcp_engine.connections > 0  # the engine was reached through the TCP socket
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    assert json.loads(run_json.read_text())["stop_reason"] == "passed"
    assert git(example_repo, "branch", "--list", "codebot/*")
