"""A run killed outright resumes from its record without redoing finished iterations."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.git_repos import git
from tests.support.model_server import Turn
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT, cli_env, codebot

pytestmark = pytest.mark.docker
SPEC = os.path.abspath("specs/examples/parse-duration.yaml")


def test_killed_run_resumes_after_its_last_finished_iteration(
    model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
):
    model_server.script(MINUTES_DIFF, Turn.reply("never read", delay_s=30))
    proc = subprocess.Popen(
        [sys.executable, "-m", "codebot", "dry-run", SPEC, "--repo", str(example_repo),
         "--runs-dir", "runs"],
        cwd=tmp_path, env=cli_env(model_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(model_server.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(model_server.requests) == 2, "the run never reached iteration 2"
    proc.send_signal(signal.SIGKILL)  # no handler, no cleanup: the harshest interruption
    proc.wait(timeout=30)

    (run_dir,) = (tmp_path / "runs").iterdir()
    checkpoint = json.loads((run_dir / "run.json").read_text())
    assert checkpoint["stop_reason"] == "interrupted"
    assert [i["number"] for i in checkpoint["iterations"]] == [1]
    assert not git(example_repo, "branch", "--list", "codebot/*")

    model_server.script(VALIDATION_EDIT)
    asked_before = len(model_server.requests)
    result = codebot(["resume", str(run_dir)], cli_env(model_server), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(model_server.requests) == asked_before + 1  # iteration 1 was not asked again
    history = model_server.requests[-1].messages
    assert history[2]["content"] == MINUTES_DIFF  # the recorded reply, replayed

    record = json.loads((run_dir / "run.json").read_text())
    assert record["run_id"] == checkpoint["run_id"] and record["stop_reason"] == "passed"
    assert [i["number"] for i in record["iterations"]] == [1, 2]
    patch = (run_dir / "patch.diff").read_text()
    assert '"m": 60' in patch and "raise ValueError" in patch


def test_a_finished_run_cannot_be_resumed(model_server, example_repo, tmp_path, sandbox_image):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    done = codebot(["dry-run", SPEC, "--repo", str(example_repo), "--runs-dir", "runs"],
                   cli_env(model_server), tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    result = codebot(["resume", str(run_dir)], cli_env(model_server), tmp_path)
    assert result.returncode == 2
    assert "ended with `passed`, which is final" in result.stderr
