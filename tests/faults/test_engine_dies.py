"""The Docker engine dying under a run, without stopping the real one (other runs use it).

The run reaches the engine through a unix-socket proxy of the test's own; cutting the proxy
(listener and every open connection closed, its socket file gone) is, as far as codebot can
tell, the engine going away: the open exec stream breaks and every new connection fails.
A dead engine cannot remove the sandbox either, so the run must name what it left and how to
remove it; the test then removes it through the real engine, found by the run's own id.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from codebot import config as cfg
from codebot import github_flow
from codebot.errors import SandboxError
from codebot.forge import ClientOptions, GitHubForge
from tests.faults.conftest import codebot_branches, write_spec
from tests.faults.sandbox_watch import (
    SLOW_AFTER_EDIT,
    container_running_slow_check,
    in_a_second,
    run_of,
    tagged,
)
from tests.support.docker_fixtures import remove_leftovers, sandbox_leftovers
from tests.support.engine_proxy import EngineProxy
from tests.support.git_repos import git, snapshot
from tests.support.github_server import GitHubServer
from tests.support.model_server import ScriptedModelServer
from tests.test_end_to_end import MINUTES_DIFF, cli_env


@pytest.fixture
def engine_proxy(tmp_path: Path) -> Iterator[EngineProxy]:
    proxy = EngineProxy(tmp_path / "docker.sock").start()
    yield proxy
    proxy.cut()


@dataclass(frozen=True)
class DeadEngineRun:
    """A `codebot dry-run` whose engine died mid-check, and what the live engine still held
    of its sandbox afterwards (removed by the test once looked at)."""

    returncode: int
    out: str
    err: str
    run_id: str
    stranded: list[str]
    record: dict[str, Any]
    before: dict[str, str]
    repo: Path


def run_until_the_engine_dies(
    server: ScriptedModelServer,
    proxy: EngineProxy,
    repo: Path,
    image: str,
    client: docker.DockerClient,
    tmp: Path,
) -> DeadEngineRun:
    """The CLI talks to the engine through `proxy`, which is cut while iteration 1's check
    sleeps; the test watches the sandbox through the real engine (`client`)."""
    server.script(in_a_second(MINUTES_DIFF))
    command, token = tagged(SLOW_AFTER_EDIT)
    spec = write_spec(tmp, test=command)
    before = snapshot(repo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "codebot", "dry-run", str(spec), "--repo", str(repo),
         "--runs-dir", "runs"],
        cwd=tmp, env=cli_env(server, CODEBOT_SANDBOX_IMAGE=image, DOCKER_HOST=proxy.url),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        sandbox = container_running_slow_check(client, server, token)
        assert proxy.connections, "the run did not reach the engine through the proxy"
        proxy.cut()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    run_id = run_of(sandbox)
    stranded = sandbox_leftovers(client, run_id)
    remove_leftovers(client, run_id)  # the dead engine could not; nothing may leak
    assert not sandbox_leftovers(client, run_id)
    (run_json,) = (tmp / "runs").glob("*/run.json")
    record = json.loads(run_json.read_text())
    return DeadEngineRun(proc.returncode, out, err, run_id, stranded, record, before, repo)


@pytest.mark.docker
def test_engine_dying_during_a_check_exits_4_and_names_the_sandbox_left_to_remove(
    model_server: ScriptedModelServer,
    engine_proxy: EngineProxy,
    example_repo: Path,
    sandbox_image: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    run = run_until_the_engine_dies(
        model_server, engine_proxy, example_repo, sandbox_image, docker_client, tmp_path
    )

    assert run.returncode == 4, run.out + run.err
    assert "Traceback" not in run.out + run.err
    name = f"codebot-{run.run_id}"
    # A dead engine cannot remove anything: the sandbox (and the verification's, started
    # ahead) outlive the run, and it says so.
    assert sorted(run.stranded) == sorted(
        f"{kind} {sandbox}{suffix}"
        for sandbox in (name, f"{name}-verify")
        for kind, suffix in (("container", ""), ("volume", "-tmp"), ("volume", "-ws"))
    )
    said = f"{run.out}\n{run.err}"
    assert f"docker rm -f {name}-verify" in said
    said = f"{run.out}\n{run.err}".splitlines()
    assert [x for x in said if x.startswith("codebot: ") and f"docker rm -f {name}" in x], said
    assert run.record["run_id"] == run.run_id and run.record["head_commit"] is None
    assert snapshot(run.repo) == run.before and not codebot_branches(run.repo)


@pytest.mark.docker
def test_engine_dying_during_a_check_is_recorded_as_sandbox_error_in_run_json(
    model_server: ScriptedModelServer,
    engine_proxy: EngineProxy,
    example_repo: Path,
    sandbox_image: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    run = run_until_the_engine_dies(
        model_server, engine_proxy, example_repo, sandbox_image, docker_client, tmp_path
    )

    assert run.returncode == 4, run.out + run.err
    record = run.record
    detail = record["stop_detail"]
    assert (record["stop_reason"], record["head_commit"]) == ("sandbox_error", None)
    assert detail.startswith("cannot reach the Docker engine (") and "\n" not in detail
    assert "Connection aborted" not in detail, detail  # the OS reason, not the layers
    assert [(i["reply"], i["decision"]) for i in record["iterations"]] == [(MINUTES_DIFF, "stop")]


@pytest.mark.docker
def test_issue_run_with_the_engine_gone_fails_before_cloning_or_writing_to_github(
    model_server: ScriptedModelServer,
    github_server: GitHubServer,
    engine_proxy: EngineProxy,
    example_repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """(The same for `dry-run` is in test_sandbox_faults.py and test_cli.py.)"""
    (example_repo / ".codebot.yml").write_text("spec:\n  test: python3 -m pytest -q\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "configure codebot")  # a repo the bot could work on
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(example_repo), str(bare))
    github_server.add_repo("octo-org/hello-app", clone_url=str(bare))
    github_server.add_issue("octo-org/hello-app", 42, "Support minutes", labels=["codebot"])
    forge = GitHubForge(github_server.token, github_server.url, ClientOptions(False, 0, 0))
    environ = {**cli_env(model_server), "GITHUB_TOKEN": github_server.token}
    settings = cfg.with_flags(cfg.from_env(environ), runs_dir=tmp_path / "runs")
    with contextlib.closing(docker.DockerClient(base_url=engine_proxy.url)) as alive:
        assert alive.ping()  # the engine answers through the proxy...
    engine_proxy.cut()  # ...and then it is gone
    monkeypatch.setenv("DOCKER_HOST", engine_proxy.url)
    events: list[str] = []

    with pytest.raises(SandboxError) as raised:
        github_flow.run_issue(forge, "octo-org/hello-app", 42, settings, environ, events.append)

    assert raised.value.cause.startswith("cannot reach the Docker engine (")
    assert "DOCKER_HOST" in raised.value.fix and "\n" not in raised.value.one_line()
    assert events == [] and not (tmp_path / "runs").exists()
    assert not github_server.writes()  # no lock label (taken before the clone), no comment
    assert git(bare, "for-each-ref", "--format=%(refname:short)", "refs/heads") == "main"
    assert model_server.requests == []
