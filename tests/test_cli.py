"""The command line as a user meets it: help, exit codes, one-line errors, nothing left behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.git_repos import git, snapshot
from tests.support.model_server import Turn
from tests.test_end_to_end import MINUTES_DIFF, cli_env, codebot

SPEC = os.path.abspath("specs/examples/parse-duration.yaml")


def branches(repo):
    return git(repo, "branch", "--list", "codebot/*")


def one_line_error(result):
    lines = [line for line in result.stderr.splitlines() if line.startswith("codebot: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("args", [[], ["dry-run"], ["example"]], ids=["main", "dry-run", "example"])
def test_help_is_available_for_every_command(args, tmp_path):
    result = codebot([*args, "--help"], {"PATH": os.environ["PATH"]}, tmp_path)
    assert result.returncode == 0
    assert "Usage:" in result.stdout


def test_dry_run_help_names_every_option(tmp_path):
    out = codebot(["dry-run", "--help"], {"PATH": os.environ["PATH"]}, tmp_path).stdout
    for option in ("--repo", "--model", "--base-url", "--max-iterations", "--runs-dir"):
        assert option in out


def test_bad_spec_fails_before_any_side_effect(model_server, example_repo, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("title: t\ndescription: d\ntest: pytest\nmax_iteration: 3\n")
    before = snapshot(example_repo)
    result = codebot(
        ["dry-run", str(spec), "--repo", str(example_repo)], cli_env(model_server), tmp_path
    )
    assert result.returncode == 2
    assert one_line_error(result) == (
        f"codebot: error: {spec}:4: unknown field `max_iteration` — remove it; "
        "did you mean `max_iterations`?"
    )
    assert snapshot(example_repo) == before and not branches(example_repo)
    assert not (tmp_path / ".codebot").exists()


def test_no_endpoint_configured_says_which_variables_to_set(example_repo, tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    result = codebot(["dry-run", SPEC, "--repo", str(example_repo)], env, tmp_path)
    assert result.returncode == 2
    assert "no LLM endpoint configured" in one_line_error(result)
    assert "OPENAI_BASE_URL" in result.stderr


def test_missing_docker_engine_is_reported_before_cloning(model_server, example_repo, tmp_path):
    env = cli_env(model_server, DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    result = codebot(["dry-run", SPEC, "--repo", str(example_repo)], env, tmp_path)
    assert result.returncode == 4
    line = one_line_error(result)
    assert "cannot reach the Docker engine" in line and "setup-host.sh" in line
    assert not branches(example_repo)


@pytest.mark.docker
def test_unreachable_endpoint_stops_cleanly(
    example_repo, tmp_path, sandbox_image, no_leftover_containers
):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    env = cli_env(f"http://127.0.0.1:{port}/v1", CODEBOT_MODEL_RETRIES="0")
    result = codebot(
        ["dry-run", SPEC, "--repo", str(example_repo), "--runs-dir", "runs"], env, tmp_path
    )
    assert result.returncode == 3, result.stderr
    assert f"cannot reach the LLM endpoint at http://127.0.0.1:{port}/v1" in result.stdout
    assert "branch:     none" in result.stdout
    assert not branches(example_repo)


@pytest.mark.docker
def test_bad_api_key_stops_with_cause_and_never_prints_the_key(
    model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
):
    model_server.require_api_key = "the-right-key-123"  # no turn scripted: none may be used
    env = cli_env(model_server, OPENAI_API_KEY="wrong-key-456789")
    result = codebot(
        ["dry-run", SPEC, "--repo", str(example_repo), "--runs-dir", "runs"], env, tmp_path
    )
    assert result.returncode == 3
    assert "rejected the API key (401)" in result.stdout
    assert "wrong-key-456789" not in result.stdout + result.stderr
    run_json = next((tmp_path / "runs").glob("*/run.json")).read_text()
    assert "wrong-key-456789" not in run_json
    assert not branches(example_repo)


@pytest.mark.docker
def test_sigterm_mid_iteration_removes_the_container_and_leaves_no_branch(
    model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
):
    model_server.script(Turn.reply(MINUTES_DIFF, delay_s=20))
    before = snapshot(example_repo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "codebot", "dry-run", SPEC, "--repo", str(example_repo),
         "--runs-dir", "runs"],
        cwd=tmp_path, env=cli_env(model_server), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not model_server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert model_server.requests, "the run never reached the model"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "stopped (interrupted)" in out
    assert snapshot(example_repo) == before and not branches(example_repo)


@pytest.mark.docker
def test_a_failing_setup_exits_1_before_the_model_is_asked(
    model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
):
    spec = tmp_path / "spec.yaml"
    data = yaml.safe_load(Path(SPEC).read_text())
    spec.write_text(yaml.safe_dump({**data, "setup": "echo 'no such package: nope' >&2; exit 7"}))
    before = snapshot(example_repo)
    result = codebot(
        ["dry-run", str(spec), "--repo", str(example_repo), "--runs-dir", "runs"],
        cli_env(model_server),
        tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "stopped (setup_failed): `echo 'no such package: nope' >&2; exit 7` failed: exit code 7"
        in result.stdout
    )
    assert "branch:     none" in result.stdout
    assert model_server.requests == []
    assert snapshot(example_repo) == before and not branches(example_repo)


def test_the_command_line_loads_no_sdk_until_a_command_needs_one(tmp_path):
    probe = "import sys, codebot.cli; print([m for m in ('openai', 'github', 'docker', 'git')"
    probe += " if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
