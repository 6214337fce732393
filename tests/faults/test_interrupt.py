"""Ctrl-C at the command line while the sandbox runs a check: the user gets their terminal
back with exit code 130, and nothing of the run is left anywhere.

(SIGTERM while the model is thinking is covered in tests/test_cli.py.) A run killed outright
(SIGKILL) cannot clean up: the next run on the host removes what it left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from codebot.config import SandboxConfig
from codebot.sandbox import DockerSandbox
from tests.faults.conftest import DryRun, codebot_branches, write_spec
from tests.faults.sandbox_watch import (
    SLOW_AFTER_EDIT,
    container_running_slow_check,
    in_a_second,
    run_of,
    tagged,
)
from tests.support.docker_fixtures import remove_leftovers, sandbox_leftovers
from tests.support.git_repos import snapshot
from tests.support.model_server import ScriptedModelServer
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT, cli_env

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh-sandbox", "loop-sandbox"])
def test_ctrl_c_during_a_check_exits_130_and_leaves_no_container_and_no_branch(
    model_server: ScriptedModelServer,
    example_repo,
    tmp_path,
    sandbox_image,
    docker_client,
    fresh: bool,
):
    """Whether the iteration's check runs in its fresh sandbox (cheap checks) or in the
    loop's (checking ahead off)."""
    model_server.script(in_a_second(MINUTES_DIFF))
    command, token = tagged(SLOW_AFTER_EDIT)
    spec = write_spec(tmp_path, test=command)
    before = snapshot(example_repo)
    ahead = {} if fresh else {"CODEBOT_VERIFY_AHEAD": "off"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "codebot", "dry-run", str(spec), "--repo", str(example_repo),
         "--runs-dir", "runs"],
        cwd=tmp_path, env=cli_env(model_server, CODEBOT_SANDBOX_IMAGE=sandbox_image, **ahead),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip
    try:
        sandbox = container_running_slow_check(docker_client, model_server, token, fresh=fresh)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends
        out, err = proc.communicate(timeout=20)  # not after the check's `sleep 30`: at once
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    run_id = run_of(sandbox)
    left = sandbox_leftovers(docker_client, run_id)
    remove_leftovers(docker_client, run_id)  # so one leak does not spill into other tests

    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert (
        "codebot: stopped (interrupted): interrupted during iteration 1; 1 iteration(s)" in out
    ), out
    assert "branch:     none" in out
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    record = json.loads(run_json.read_text())
    assert (record["stop_reason"], record["head_commit"]) == ("interrupted", None)
    assert record["run_id"] == run_id and not left
    assert snapshot(example_repo) == before and not codebot_branches(example_repo)


def clone_dirs_of(pid: int) -> list[Path]:
    """The temp clone dirs made by process `pid` (each holds an `owner` file naming it)."""
    found = []
    for top in Path(tempfile.gettempdir()).glob("codebot-ws-*"):
        with contextlib.suppress(OSError):
            if (top / "owner").read_text().split("/")[1] == str(pid):
                found.append(top)
    return found


def test_a_run_killed_outright_leaves_a_sandbox_that_the_next_run_removes(
    model_server: ScriptedModelServer,
    example_repo,
    tmp_path,
    sandbox_image,
    docker_client,
    dry_run: DryRun,
    run_ids,
):
    """SIGKILL gives codebot no chance to clean up: its sandbox (whose keeper would run
    forever) stays until the next run on this host sees that its maker is gone. A sandbox
    whose maker is alive (this test process) is left alone."""
    live = DockerSandbox.start(SandboxConfig(image=sandbox_image), run_ids())
    model_server.script(in_a_second(MINUTES_DIFF))
    command, token = tagged(SLOW_AFTER_EDIT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "codebot", "dry-run", str(write_spec(tmp_path, test=command)),
         "--repo", str(example_repo), "--runs-dir", "killed-runs"],
        cwd=tmp_path, env=cli_env(model_server, CODEBOT_SANDBOX_IMAGE=sandbox_image),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        killed = run_of(container_running_slow_check(docker_client, model_server, token))
        proc.kill()
        proc.communicate(timeout=30)
        stranded = sandbox_leftovers(docker_client, killed)
        (clone,) = clone_dirs_of(proc.pid)

        model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
        run = dry_run()
        left = sandbox_leftovers(docker_client, killed)
        alive = sandbox_leftovers(docker_client, live.run_id)
        clone_left = clone.exists()
    finally:
        live.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    remove_leftovers(docker_client, killed)

    # Its container and both volumes, and those of its verification sandbox, started ahead.
    assert len(stranded) == 6, stranded
    assert left == [] and not clone_left  # and the killed run's temp clone went too
    swept = f"sandbox: removed what killed runs left behind: {killed}, {killed}-verify"
    assert swept in run.events, run.events
    assert len(alive) == 3
    run.assert_nothing_lost(docker_client, "passed")
