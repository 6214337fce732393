"""How a run's progress reads: log lines off a terminal, a live panel on one (through a real
pty), GitHub's folding on Actions, and --quiet / --json; each iteration line says why no
check ran when none did."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from functools import reduce
from pathlib import Path

import pytest

from codebot.ui import Check, RunState, parse_checks
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT, cli_env, codebot

SPEC = os.path.abspath("specs/examples/parse-duration.yaml")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
REFUSED_EDIT = MINUTES_DIFF.replace("duration.py", "nowhere.py")


def stage_lines(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.startswith("  ")]


@pytest.mark.docker
def test_off_a_terminal_each_stage_is_one_line_and_unchecked_iterations_say_why(
    model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
) -> None:
    model_server.script(
        "The code looks right to me.",
        MINUTES_DIFF,
        MINUTES_DIFF,
        "SHOW duration.py",
        REFUSED_EDIT,
    )
    result = codebot(
        ["dry-run", SPEC, "--repo", str(example_repo), "--max-iterations", "5",
         "--runs-dir", str(tmp_path / "runs")],
        cli_env(model_server), tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    lines = stage_lines(result.stderr)
    stages = [line.split(":")[0].split(" ")[0] for line in lines]
    assert stages[:4] == ["workspace", "environment", "sandbox", "baseline"]
    assert stages[-2:] == ["verify", "stopped"]
    iterations = [line for line in lines if line.startswith("iteration")]
    assert len(iterations) == 5
    assert "checks not run: no edits in the reply;" in iterations[0]
    assert "lint passed, test failed (5 tests failed)" in iterations[1]
    assert "checks not run: identical to iteration 2;" in iterations[2]
    assert "checks not run: asked to see code;" in iterations[3]
    assert "0 edit(s) applied, 1 refused; checks not run: edits refused;" in iterations[4]
    assert all(re.search(r"\d+ tokens, \$\d+\.\d{4}; \d+\.\ds$", line) for line in iterations)
    assert "\x1b[" not in result.stderr  # no terminal: no escape codes


@pytest.mark.docker
def test_on_a_terminal_a_live_panel_shows_stages_checks_time_and_cost(
    model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
) -> None:
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    args = ["dry-run", SPEC, "--repo", str(example_repo), "--runs-dir", str(tmp_path / "runs")]
    code, screen = run_in_pty(args, cli_env(model_server, TERM="xterm-256color", COLUMNS="120"))
    assert code == 0, screen
    text = ANSI.sub("", screen)
    for stage in ("workspace", "environment", "sandbox", "baseline", "iteration 1", "iteration 2",
                  "verify", "stopped"):  # fmt: skip
        assert stage in text, stage
    assert "test ✗ 5 tests failed" in text  # iteration 1: each check with its mark
    assert "lint ✓" in text and "test ✓" in text
    assert re.search(r"\d+:\d\d elapsed · [\d,]+ tokens · \$\d+\.\d{4}", text)
    assert "\x1b[" in screen  # drawn with colour and cursor moves
    assert "all checks passed after 2 iteration(s)" in text


@pytest.mark.docker
def test_on_github_actions_the_preparation_folds_into_a_group(
    model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
) -> None:
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    env = cli_env(model_server, GITHUB_ACTIONS="true")
    result = codebot(
        ["dry-run", SPEC, "--repo", str(example_repo), "--runs-dir", str(tmp_path / "runs")],
        env,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    opened = lines.index("::group::codebot: workspace, environment and sandbox")
    closed = lines.index("::endgroup::")
    assert [line.split(":")[0].strip() for line in lines[opened + 1 : closed]] == [
        "workspace", "environment", "sandbox",
    ]  # fmt: skip
    after = " ".join(lines[closed:])
    assert "baseline:" in after and "iteration 2:" in after and "stopped: passed" in after


@pytest.mark.docker
def test_quiet_json_prints_only_the_record_on_stdout(
    model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
) -> None:
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    runs = tmp_path / "runs"
    result = codebot(
        ["dry-run", SPEC, "--repo", str(example_repo), "--runs-dir", str(runs), "-q", "--json"],
        cli_env(model_server),
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    (run_json,) = runs.glob("*/run.json")
    assert record == json.loads(run_json.read_text())
    assert record["stop_reason"] == "passed"
    assert stage_lines(result.stderr) == [
        f"branch:     codebot/parse-duration-minutes (in {example_repo})",
        f"patch:      {run_json.parent / 'patch.diff'}",
        f"PR draft:   {run_json.parent / 'pr.md'}",
        f"prompt:     {run_json.parent / 'prompt.md'}",
        f"run record: {run_json}",
    ]  # only the final lines: no progress


def test_the_panel_state_follows_the_runner_lines() -> None:
    lines = [
        "workspace: isolated clone on branch codebot/x",
        "environment: building codebot-env:1234 (setup: `pip install -e .`)",
        "setup: setup passed",
        "environment: codebot-env:1234 (built in 9.0s) in 9.1s",
        "sandbox: codebot-env:1234 ready in 0.4s",
        "baseline: test failed (2 tests failed)",
        "iteration 1: 0 edit(s) applied, 0 refused; checks not run: no edits in the reply; "
        "900 tokens, $0.0010; 2.0s",
        "iteration 2: 1 edit(s) applied, 0 refused; lint passed, test passed; 1000 tokens; 3.0s",
    ]
    state = reduce(RunState.after, lines, RunState())
    assert [s.label for s in state.steps] == [
        "workspace", "environment", "setup", "environment", "sandbox", "baseline",
        "iteration 1", "iteration 2",
    ]  # fmt: skip
    assert state.steps[1].ok is None and state.steps[3].ok is True  # building, then built
    assert state.steps[5].checks == (Check("test", False, "2 tests failed"),)
    assert state.steps[6].ok is None  # nothing was checked
    assert state.iteration == 2 and state.tokens == 1900
    assert state.cost is None  # iteration 2 had no price: the total is unknown
    assert state.stage == "verifying the change in a fresh sandbox"
    done = state.after("stopped: passed (in iteration 2 of 4)")
    assert done.done and done.steps[-1].ok is True


def test_a_check_reason_with_commas_stays_one_check() -> None:
    said = "lint passed, test failed (2 tests failed, 1 error (setup, teardown))"
    assert parse_checks(said) == (
        Check("lint", True),
        Check("test", False, "2 tests failed, 1 error (setup, teardown)"),
    )


def run_in_pty(args: list[str], env: dict[str, str], timeout: float = 240) -> tuple[int, str]:
    """The CLI with stdout and stderr on a pseudo-terminal, as a person at a terminal runs it;
    everything it drew, and its exit code."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "codebot", *args],
        stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env, cwd=Path.cwd(),
    )  # fmt: skip
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=30)
    return code, b"".join(chunks).decode("utf-8", "replace")
