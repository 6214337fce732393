"""A run's head start (codebot.headstart): once the run is configured, its sandbox started
while the rest of codebot is imported; taken only when the run would make exactly that one,
removed otherwise, whatever happens. In the real engine; a whole run through the CLI too."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from codebot import config as cfg
from codebot.headstart import HeadStart
from codebot.sandbox import DockerSandbox
from codebot.spec import TaskSpec
from tests.support.docker_fixtures import sandbox_leftovers
from tests.support.git_repos import make_repo
from tests.test_end_to_end import cli_env, codebot, run_dir
from tests.test_loop import block

pytestmark = pytest.mark.docker
SPEC = TaskSpec(title="Fix add", description="add subtracts", test="python3 -m pytest -q")


@pytest.fixture
def settings(sandbox_image: str) -> cfg.Settings:
    return replace(cfg.Settings(), sandbox=cfg.SandboxConfig(image=sandbox_image))


def _config(settings: cfg.Settings) -> cfg.SandboxConfig:
    return cfg.run_sandbox(settings, settings.sandbox.image)


def test_the_run_takes_the_sandbox_made_as_it_would_make_it(
    settings: cfg.Settings, docker_client: docker.DockerClient, no_leftover_containers: None
) -> None:
    head = HeadStart(SPEC, settings)
    sandbox = head.sandbox_for(_config(settings))
    try:
        assert sandbox is not None and sandbox.name == f"codebot-{head.run_id}"
        assert head.close() == ""  # taken: not the head start's to remove
        assert sandbox.run("echo alive", 10).output == "alive\n"
    finally:
        if sandbox is not None:
            sandbox.close()
    assert sandbox_leftovers(docker_client, head.run_id) == []


def test_a_sandbox_made_otherwise_is_removed_and_its_name_freed(
    settings: cfg.Settings, docker_client: docker.DockerClient, no_leftover_containers: None
) -> None:
    head = HeadStart(SPEC, settings)
    other = replace(_config(settings), memory="300m")  # e.g. set in the repo's .codebot.yml

    assert head.sandbox_for(other) is None
    assert sandbox_leftovers(docker_client, head.run_id) == []
    with DockerSandbox.start(other, head.run_id) as own:  # the run's own, under the same name
        assert own.name == f"codebot-{head.run_id}"
    assert head.close() == ""


@pytest.mark.parametrize("wait", [False, True])
def test_closing_an_untaken_head_start_leaves_nothing(
    settings: cfg.Settings, docker_client: docker.DockerClient, wait: bool
) -> None:
    head = HeadStart(SPEC, settings)
    if wait:  # started, never taken
        head._thread.join()
    # else closed while the container may still be starting

    assert head.close() == ""
    assert sandbox_leftovers(docker_client, head.run_id) == []


def test_without_an_engine_the_head_start_gives_nothing_and_raises_nothing(
    settings: cfg.Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    head = HeadStart(SPEC, settings)

    assert head.sandbox_for(_config(settings)) is None  # the run starts its own, and says why
    assert head.close() == ""
    assert not any(t.name == "codebot-head-start" and t.is_alive() for t in threading.enumerate())


CALC = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
TASK = "id: fix-add\ntitle: Fix add\ndescription: add subtracts.\ntest: python3 -m pytest -q\n"


@pytest.mark.parametrize("repo_file", ["", "sandbox:\n  memory: 300m\n"])
def test_a_dry_run_passes_with_or_without_the_sandbox_started_ahead(
    model_server, tmp_path, sandbox_image, no_leftover_containers, repo_file: str
) -> None:
    files = {"calc.py": CALC, "test_calc.py": TEST}
    repo = make_repo(
        tmp_path / "repo", {**files, **({".codebot.yml": repo_file} if repo_file else {})}
    )
    (tmp_path / "task.yaml").write_text(TASK)
    model_server.script(block("    return a - b\n", "    return a + b\n", why="Add."))
    runs = tmp_path / "runs"

    result = codebot(
        ["dry-run", "task.yaml", "--repo", str(repo), "--runs-dir", str(runs)],
        cli_env(model_server, CODEBOT_SANDBOX_IMAGE=sandbox_image),
        tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((run_dir(runs) / "run.json").read_text())
    assert record["stop_reason"] == "passed"


def test_a_spec_with_a_setup_step_gets_no_head_start(
    settings: cfg.Settings, docker_client: docker.DockerClient
) -> None:
    head = HeadStart(replace(SPEC, setup="pip install -e ."), settings)

    assert head.sandbox_for(_config(settings)) is None  # its sandbox comes from its environment
    assert head.close() == ""
    assert sandbox_leftovers(docker_client, head.run_id) == []
