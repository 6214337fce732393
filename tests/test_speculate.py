"""The verification checked ahead (codebot.speculate): beside an iteration's own checks, the
tree it would commit is checked in a fresh sandbox; its result counts only for exactly the
tree committed, an abandoned check leaves nothing behind, and a whole run says it was used.
Real components: a real git clone, the real Docker engine, the scripted model server."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from codebot import config as cfg
from codebot.checks import Expectation
from codebot.environment import Environment
from codebot.errors import ConfigError, SandboxError
from codebot.records import CheckName, CheckResult
from codebot.runner import VERIFIED_AHEAD, VERIFIED_AS_ITERATION
from codebot.sandboxes import Spare
from codebot.selection import FirstPass
from codebot.spec import TaskSpec
from codebot.speculate import Speculation, alone, speculates
from codebot.workspace import Workspace
from tests.support.git_repos import make_repo
from tests.support.model_server import Turn
from tests.test_end_to_end import cli_env, codebot, run_dir
from tests.test_loop import block

CALC = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
SPEC = TaskSpec(title="Fix add", description="add subtracts", test="python3 -m pytest -q")


def sandbox_events(since: int, run_id: str) -> list[tuple[int, str, str]]:
    """The engine's events for the run's containers since `since`: (time, action, what
    follows `codebot-<run id>` in the container's name: "" for the run's own sandbox)."""
    events = docker.from_env().events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"type": "container"}
    )
    prefix = f"codebot-{run_id}"
    return [
        (e["timeNano"], e["Action"].split(":")[0], name.removeprefix(prefix))
        for e in events
        if (name := e["Actor"]["Attributes"].get("name", "")).startswith(prefix)
    ]


@pytest.fixture
def speculation(tmp_path: Path, sandbox_image: str, no_leftover_containers: None):
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC, "test_calc.py": TEST})
    ws = Workspace.create(repo, "fix-add", None, "codebot/")
    settings = replace(cfg.Settings(), sandbox=cfg.SandboxConfig(image=sandbox_image))
    env = Environment(sandbox_image)
    run_id = f"spec-{tmp_path.name[-12:]}".replace("_", "-")
    spare = Spare(settings, env, run_id)
    made = Speculation(settings, env, run_id, ws, spare).arm(SPEC, Expectation(), True)
    yield made, ws
    assert made.close() == ""
    ws.cleanup()


@pytest.mark.docker
def test_the_check_ahead_counts_for_the_tree_it_checked_and_no_other(speculation) -> None:
    made, ws = speculation
    (ws.path / "calc.py").write_text(CALC.replace("a - b", "a + b"))

    made.start(["calc.py"])
    made.hold()  # staged, in the check's thread
    checked = ws.staged_tree_id()
    (ws.path / "calc.py").write_text(CALC.replace("a - b", "b + a"))  # changed after the check
    ws.stage(["calc.py"])

    assert made.verified(ws.staged_tree_id()) is None  # not the tree committed
    verified = made.verified(checked)
    assert verified is not None and verified.passed
    assert [c.name for c in verified.checks] == ["lint", "test"]


@pytest.mark.docker
def test_an_abandoned_check_gives_no_result_and_the_next_one_a_fresh_sandbox(
    speculation,
) -> None:
    made, ws = speculation
    (ws.path / "calc.py").write_text(CALC.replace("a - b", "a * b"))
    made.start(["calc.py"])
    made.cancel()  # the loop's own checks failed

    (ws.path / "calc.py").write_text(CALC.replace("a - b", "a + b"))
    made.start(["calc.py"])
    made.hold()
    verified = made.verified(ws.staged_tree_id())

    assert verified is not None and verified.passed  # in a second sandbox: the first is gone


@pytest.mark.docker
def test_closing_after_the_check_is_used_starts_no_other_sandbox(
    speculation, tmp_path: Path
) -> None:
    made, ws = speculation
    since = int(time.time()) - 1
    (ws.path / "calc.py").write_text(CALC.replace("a - b", "a + b"))
    made.start(["calc.py"])
    made.hold()
    assert made.verified(ws.staged_tree_id()) is not None

    assert made.close() == ""
    run_id = f"spec-{tmp_path.name[-12:]}".replace("_", "-")
    created = [name for _, action, name in sandbox_events(since, run_id) if action == "create"]
    assert created == ["-verify"]


def started(spare: Spare) -> Spare:
    deadline = time.monotonic() + 60
    while not spare.ready and time.monotonic() < deadline:
        time.sleep(0.05)
    return spare


@pytest.mark.docker
def test_armed_alone_the_check_ahead_is_the_iterations_own(speculation) -> None:
    made, ws = speculation
    (ws.path / "calc.py").write_text(CALC.replace("a - b", "a * b"))
    made.arm(SPEC, Expectation(), True, alone=True)
    started(made.spare())  # as with a model that takes its time

    made.start(["calc.py"])
    checks = made.instead()

    assert checks is not None and [(c.name, c.passed) for c in checks] == [
        ("lint", True), ("test", False)
    ]  # fmt: skip
    made.hold()
    tree = ws.staged_tree_id()
    made.cancel()  # the loop saw it fail; a run ending here needs no other check of it
    verified = made.verified(tree)
    assert verified is not None and verified.iteration and verified.checks == checks


@pytest.mark.docker
def test_a_check_in_a_sandbox_still_starting_is_not_the_iterations_own(speculation) -> None:
    made, ws = speculation
    (ws.path / "calc.py").write_text(CALC.replace("a - b", "a + b"))
    made.start(["calc.py"])
    assert made.instead() is None  # not armed alone: the loop runs its own checks

    made.arm(SPEC, Expectation(), True, alone=True)
    made.cancel()  # a new spare starts now
    made.start(["calc.py"])  # in it, at once: a model that answers at once
    assert made.instead() is None  # the loop's warm sandbox answers first if it fails
    made.hold()
    verified = made.verified(ws.staged_tree_id())
    assert verified is not None and verified.passed and not verified.iteration


def test_only_cheap_checks_run_alone() -> None:
    def check(name: CheckName, took: float) -> CheckResult:
        return CheckResult(name, "x", True, 0, took, "")

    assert alone([check("lint", 0.1), check("test", 0.5)], Expectation())
    assert alone([check("setup", 60.0), check("test", 0.5)], Expectation())  # kept in the image
    assert not alone([check("build", 1.5), check("test", 0.6)], Expectation())
    first = FirstPass(("python3", "-m", "pytest"), (), ("test_calc.py::test_add",))
    assert not alone([check("test", 0.5)], Expectation(first=first))  # a first pass pays


# A whole run: the first reply fails, the second passes.
TASK = "id: fix-add\ntitle: Fix add\ndescription: add subtracts.\ntest: python3 -m pytest -q\n"
SLOW = "import time\n\n\ndef test_slow():\n    time.sleep(1.1)\n"


def two_tries(
    model_server, tmp_path: Path, image: str, files: dict[str, str], delay_s: float = 0.0
) -> tuple[subprocess.CompletedProcess[str], dict]:
    """`codebot dry-run` on `files` with a model whose first reply fails and second passes,
    each after `delay_s`; what it printed and its run.json."""
    repo = make_repo(tmp_path / "repo", files)
    (tmp_path / "task.yaml").write_text(TASK)
    model_server.script(
        Turn.reply(
            block("    return a - b\n", "    return a * b\n", why="Try *."), delay_s=delay_s
        ),
        Turn.reply(block("    return a * b\n", "    return a + b\n", why="Add."), delay_s=delay_s),
    )
    runs = tmp_path / "runs"
    result = codebot(
        ["dry-run", "task.yaml", "--repo", str(repo), "--runs-dir", str(runs)],
        cli_env(model_server, CODEBOT_SANDBOX_IMAGE=image, CODEBOT_VERIFY_AHEAD="on"),
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads((run_dir(runs) / "run.json").read_text())
    assert record["stop_reason"] == "passed" and len(record["iterations"]) == 2
    return result, record


# With a suite costly enough for a first pass (a second's sleep), the loop's sandbox runs each
# iteration's checks and the verification is the one checked beside the second iteration's.
@pytest.mark.docker
def test_a_run_uses_the_check_made_beside_its_last_iteration(
    model_server, tmp_path, sandbox_image, no_leftover_containers
) -> None:
    files = {"calc.py": CALC, "test_calc.py": TEST, "test_slow.py": SLOW}

    result, record = two_tries(model_server, tmp_path, sandbox_image, files)

    assert VERIFIED_AHEAD in record["notes"]
    assert [(c["name"], c["passed"]) for c in record["final_checks"]] == [
        ("lint", True), ("test", True)
    ]  # fmt: skip
    assert "checked beside the last iteration's checks" in result.stderr + result.stdout


# Cheap checks, and a model that takes a second, as real ones do, or more.
@pytest.mark.docker
def test_cheap_checks_run_once_an_iteration_each_in_a_fresh_sandbox(
    model_server, tmp_path, sandbox_image, no_leftover_containers
) -> None:
    since = int(time.time()) - 1
    files = {"calc.py": CALC, "test_calc.py": TEST}

    result, record = two_tries(model_server, tmp_path, sandbox_image, files, delay_s=1)

    first, second = record["iterations"]
    assert "assert 6 == 5" in first["checks"][-1]["output"]  # the fresh check's feedback
    assert [(c["name"], c["passed"]) for c in second["checks"]] == [("lint", True), ("test", True)]
    assert record["final_checks"] == second["checks"]  # the same results, not a third run
    assert VERIFIED_AS_ITERATION in record["notes"]
    assert "(the last iteration's own checks, in a fresh sandbox)" in result.stdout + result.stderr
    seen = sandbox_events(since, record["run_id"])
    ran = sorted(name for _, action, name in seen if action == "exec_die")
    assert ran == ["", "-verify", "-verify2"]  # the baseline, then one per iteration


def test_checking_ahead_is_on_with_a_core_to_spare_and_can_be_turned_off() -> None:
    assert speculates(cfg.from_env({"CODEBOT_VERIFY_AHEAD": "on"}))
    assert not speculates(cfg.from_env({"CODEBOT_VERIFY_AHEAD": "off"}))
    assert not speculates(cfg.from_env({"CODEBOT_VERIFY_AHEAD": "on", "CODEBOT_CANDIDATES": "2"}))
    assert speculates(cfg.from_env({})) == ((os.cpu_count() or 1) > 1)
    with pytest.raises(ConfigError, match="CODEBOT_VERIFY_AHEAD"):
        cfg.from_env({"CODEBOT_VERIFY_AHEAD": "maybe"})


@pytest.mark.docker
def test_the_verification_sandbox_starts_once_the_baseline_is_in(
    model_server, tmp_path, sandbox_image, no_leftover_containers
) -> None:
    repo = make_repo(tmp_path / "repo", {"calc.py": CALC, "test_calc.py": TEST})
    (tmp_path / "task.yaml").write_text(TASK)
    model_server.script(block("    return a - b\n", "    return a + b\n", why="Add."))
    since = int(time.time()) - 1

    result = codebot(
        ["dry-run", "task.yaml", "--repo", str(repo), "--runs-dir", str(tmp_path / "runs")],
        cli_env(model_server, CODEBOT_SANDBOX_IMAGE=sandbox_image),
        tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    run_id = json.loads((run_dir(tmp_path / "runs") / "run.json").read_text())["run_id"]
    seen = sandbox_events(since, run_id)
    baseline_done = min(t for t, a, n in seen if a == "exec_die" and n == "")
    spare_started = min(t for t, a, n in seen if a == "start" and n == "-verify")
    assert baseline_done < spare_started


# An environment with a setup step: its fresh sandboxes need what setup left in the workspace,
# which the spare copies in while it waits (codebot.sandboxes.Spare).
GENERATED = "\n\ndef test_generated():\n    assert open('gen/answer.txt').read() == '42\\n'\n"


@pytest.mark.docker
def test_a_fresh_sandbox_has_what_setup_left_in_the_workspace_before_its_check(
    model_server, tmp_path, sandbox_image, docker_client, no_leftover_containers
) -> None:
    setup = f"mkdir -p gen && echo 42 > gen/answer.txt # {tmp_path.name}"  # an image of its own
    files = {
        "calc.py": CALC,
        "test_calc.py": TEST + GENERATED,
        ".codebot.yml": f"spec:\n  setup: {setup!r}\n  test: python3 -m pytest -q\n",
    }
    repo = make_repo(tmp_path / "repo", files)
    (tmp_path / "task.yaml").write_text(
        "id: fix-add\ntitle: Fix add\ndescription: add subtracts.\n"
    )
    model_server.script(
        Turn.reply(block("    return a - b\n", "    return a + b\n", why="Add."), delay_s=1)
    )
    runs = tmp_path / "runs"

    result = codebot(
        ["dry-run", "task.yaml", "--repo", str(repo), "--runs-dir", str(runs)],
        cli_env(model_server, CODEBOT_SANDBOX_IMAGE=sandbox_image, CODEBOT_VERIFY_AHEAD="on"),
        tmp_path,
    )
    record = json.loads((run_dir(runs) / "run.json").read_text())
    docker_client.images.remove(record["environment"].split()[0], force=True)  # its own

    assert result.returncode == 0, result.stdout + result.stderr
    assert record["stop_reason"] == "passed"
    (iteration,) = record["iterations"]
    assert [(c["name"], c["passed"]) for c in iteration["checks"]] == [
        ("lint", True),
        ("test", True),
    ]
    assert VERIFIED_AS_ITERATION in record["notes"]  # checked once, in the fresh sandbox


@pytest.mark.docker
def test_a_spare_whose_restore_fails_is_removed_and_says_why_when_taken(
    tmp_path: Path, sandbox_image: str, no_leftover_containers
) -> None:
    settings = replace(cfg.Settings(), sandbox=cfg.SandboxConfig(image=sandbox_image))
    # An environment said to have a setup workspace, on an image that has none to copy.
    env = Environment(sandbox_image, key="nothing-to-restore")
    spare = Spare(settings, env, f"spec-{tmp_path.name[-12:]}".replace("_", "-"))

    with pytest.raises(SandboxError, match="could not restore the environment's workspace"):
        spare.take()
    assert spare.discard() == ""  # nothing left: its container went when the restore failed
