"""Faults of the Docker side, seen from a whole run: the sandbox vanishing mid-check, no engine
at all, and a full workspace disk.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import pytest

from codebot import config as cfg
from codebot.errors import SandboxError
from codebot.local import RunRequest, execute
from tests.faults.conftest import DryRun, Run, codebot_branches, run_env, write_spec
from tests.faults.sandbox_watch import (
    SLOW_AFTER_EDIT,
    container_running_slow_check,
    in_a_second,
    tagged,
)
from tests.support.git_repos import make_repo, snapshot
from tests.support.model_server import ScriptedModelServer
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT

EXAMPLE = Path(__file__).resolve().parents[2] / "specs" / "examples" / "parse-duration"

SCRATCH_TEST = """\
def test_a_large_scratch_file_can_be_written():
    with open("scratch.bin", "wb") as out:
        out.write(b"0" * (64 << 20))
"""
# Iteration 1 also adds a test that writes 64 MiB into the workspace (the quota is 8 MiB).
MINUTES_AND_A_DISK_FILLING_TEST = (
    f"{MINUTES_DIFF}\ntest_scratch.py\n<<<<<<< SEARCH\n=======\n{SCRATCH_TEST}>>>>>>> REPLACE\n"
)
# Iteration 2 stops writing: the test is deleted, and the remaining fix goes in.
NO_MORE_SCRATCH_AND_VALIDATION = (
    f"{VALIDATION_EDIT}\n```diff\n--- a/test_scratch.py\n+++ /dev/null\n@@ -1,3 +0,0 @@\n"
    + "".join(f"-{line}\n" for line in SCRATCH_TEST.splitlines())
    + "```\n"
)


def run_with_the_sandbox_removed_mid_check(
    dry_run: DryRun,
    server: ScriptedModelServer,
    client: docker.DockerClient,
    directory: Path,
    fresh: bool,
) -> tuple[Run, str]:
    """A run whose sandbox someone removes (`docker rm -f`) while iteration 1's check runs;
    the run and the removed container's name. `fresh`: the check runs in the iteration's
    fresh sandbox (cheap checks, codebot.speculate), else in the loop's own (checking ahead
    off)."""
    server.script(in_a_second(MINUTES_DIFF))
    command, token = tagged(SLOW_AFTER_EDIT)

    def remove_the_sandbox() -> str:
        container = container_running_slow_check(client, server, token, fresh=fresh)
        container.remove(force=True)
        return str(container.name)

    ahead = {} if fresh else {"CODEBOT_VERIFY_AHEAD": "off"}
    with ThreadPoolExecutor(1) as pool:
        removed = pool.submit(remove_the_sandbox)
        run = dry_run(spec=write_spec(directory, test=command), **ahead)
        return run, removed.result()


WHERE = pytest.mark.parametrize("fresh", [True, False], ids=["fresh-sandbox", "loop-sandbox"])


@pytest.mark.docker
@WHERE
def test_sandbox_removed_during_a_check_stops_the_run_with_sandbox_error(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client, tmp_path, fresh: bool
):
    run, name = run_with_the_sandbox_removed_mid_check(
        dry_run, model_server, docker_client, tmp_path, fresh
    )

    record = run.assert_nothing_lost(docker_client, "sandbox_error")  # volumes included
    assert name == f"codebot-{record['run_id']}" + ("-verify" if fresh else "")
    # Gone, or still being removed when codebot next speaks to it: the engine says either.
    assert record["stop_detail"].startswith(f"the sandbox container {name} is ")
    assert record["stop_detail"].endswith(
        "— something stopped or removed it during the run; start the run again"
    )


@pytest.mark.docker
@WHERE
def test_the_iteration_a_sandbox_fault_cut_short_keeps_its_reply_in_the_run_record(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client, tmp_path, fresh: bool
):
    run, _ = run_with_the_sandbox_removed_mid_check(
        dry_run, model_server, docker_client, tmp_path, fresh
    )

    record = run.assert_nothing_lost(docker_client, "sandbox_error")
    assert [(i["reply"], i["decision"]) for i in record["iterations"]] == [(MINUTES_DIFF, "stop")]


def test_missing_docker_engine_fails_before_anything_starts_and_says_how_to_fix_it(
    model_server: ScriptedModelServer, example_repo, tmp_path, monkeypatch
):
    closed = socket.socket(socket.AF_UNIX)
    closed.bind(str(tmp_path / "docker.sock"))
    closed.close()  # the path exists, nothing listens on it: an engine that is not running
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'docker.sock'}")
    environ = run_env(model_server, cfg.DEFAULT_IMAGE)
    settings = cfg.with_flags(cfg.from_env(environ), runs_dir=tmp_path / "runs")
    request = RunRequest(write_spec(tmp_path), example_repo, settings)
    before, events = snapshot(example_repo), list[str]()

    with pytest.raises(SandboxError) as raised:
        execute(request, env=environ, on_event=events.append)

    assert raised.value.cause.startswith("cannot reach the Docker engine")
    assert "sandbox/setup-host.sh" in raised.value.fix and "DOCKER_HOST" in raised.value.fix
    assert "\n" not in raised.value.one_line()
    assert events == []  # no clone, no sandbox: it failed in preflight
    assert not (tmp_path / "runs").exists()
    assert snapshot(example_repo) == before and not codebot_branches(example_repo)
    assert model_server.requests == []


@pytest.mark.docker
def test_full_workspace_disk_is_reported_to_the_model_and_the_run_can_still_pass(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client, tmp_path
):
    files = {p.name: p.read_text() for p in EXAMPLE.iterdir()}
    repo = make_repo(tmp_path / "quota", {**files, ".codebot.yml": "sandbox: {disk: 8m}\n"})
    model_server.script(MINUTES_AND_A_DISK_FILLING_TEST, NO_MORE_SCRATCH_AND_VALIDATION)

    run = dry_run(repo=repo)

    record = run.assert_nothing_lost(docker_client, "passed")
    first, second = record["iterations"]
    assert first["decision"] == "retry" and first["checks"][-1]["tests_failed"] == 6
    assert "No space left on device" in first["feedback"]
    assert "No space left on device" in model_server.requests[1].messages[-1]["content"]
    assert second["decision"] == "green"
    assert record["files_changed"] == ["duration.py"]
