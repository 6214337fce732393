"""Many tasks at once: each in its own process, clone and sandbox; one failing task never stops
the others; one summary. The model is codebot's oracle server (it answers each task by its
title, so the order in which the parallel runs ask does not matter)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codebot import __version__, batch
from codebot.batch import find_specs, matrix
from codebot.errors import SpecError
from codebot.oracle import OracleServer
from tests.support.git_repos import git, make_repo

BUGS = {
    "add.py": "def add(a, b):\n    return a - b\n",
    "mul.py": "def mul(a, b):\n    return a + b\n",
    "test_add.py": "from add import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    "test_mul.py": "from mul import mul\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n",
}
FIXES = {
    "Fix add": ("add.py", "-    return a - b\n+    return a + b\n"),
    "Fix mul": ("mul.py", "-    return a + b\n+    return a * b\n"),
}


def diff(path: str, change: str) -> str:
    head = f"--- a/{path}\n+++ b/{path}\n@@ -1,2 +1,2 @@\n def {path[:3]}(a, b):\n"
    return head + change


def spec(directory: Path, title: str, test: str = "python3 -m pytest -q") -> Path:
    path = directory / f"{title.lower().replace(' ', '-')}.yaml"
    path.write_text(f"title: {title}\ndescription: {title}.\ntest: {test}\nmax_iterations: 2\n")
    return path


def codebot(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    full = {"PATH": os.environ["PATH"], "HOME": str(cwd), **env}
    return subprocess.Popen([sys.executable, "-m", "codebot", *args], cwd=cwd, env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_a_matrix_has_one_entry_per_task_with_paths_from_the_repository_root(tmp_path: Path):
    specs = [spec(tmp_path, "Fix add"), spec(tmp_path, "Fix mul")]

    found = matrix(find_specs([tmp_path]), tmp_path)

    assert found == {"include": [{"spec": "fix-add.yaml", "id": "fix-add"},
                                 {"spec": "fix-mul.yaml", "id": "fix-mul"}]}  # fmt: skip
    assert len(specs) == 2


def test_a_bad_spec_stops_the_batch_before_any_task_starts(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text("title: t\ndescription: d\nmax_iteration: 3\n")

    with pytest.raises(SpecError, match="unknown field `max_iteration`"):
        find_specs([tmp_path])


@pytest.mark.docker
def test_tasks_run_side_by_side_and_a_failing_one_stops_no_other(
    tmp_path: Path, sandbox_image: str, no_leftover_containers: None
):
    repo = make_repo(tmp_path / "repo", BUGS)
    specs = tmp_path / "specs"
    specs.mkdir()
    for title, (path, _) in FIXES.items():  # each task's checks are its own test file
        spec(specs, title, test=f"python3 -m pytest -q test_{path}")
    spec(specs, "Fix nothing", test="exit 3")  # fails at every check, whatever the reply
    with OracleServer() as oracle:
        for title, (path, change) in FIXES.items():
            oracle.register(title, diff(path, change))
        oracle.register("Fix nothing", diff("add.py", "-    return a - b\n+    return a + b\n"))
        env = {"OPENAI_BASE_URL": oracle.base_url, "CODEBOT_MODEL": "oracle",
               "CODEBOT_SANDBOX_IMAGE": sandbox_image}  # fmt: skip
        proc = codebot(["batch", str(specs), "--repo", str(repo), "--workers", "2",
                        "--runs-dir", str(tmp_path / "runs")], env, tmp_path)  # fmt: skip
        out, err = proc.communicate(timeout=300)

    assert proc.returncode == 1, out + err  # not every task passed
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if ".yaml |" in line}
    assert "| passed |" in rows["fix-add.yaml"] and "| passed |" in rows["fix-mul.yaml"]
    assert "| passed |" not in rows["fix-nothing.yaml"]
    assert "2/3 passed" in out
    branches = git(repo, "branch", "--list", "codebot/*").split()
    assert set(branches) >= {"codebot/fix-add", "codebot/fix-mul"}


@pytest.mark.docker
def test_stopping_a_batch_stops_every_task_and_leaves_nothing(
    tmp_path: Path, sandbox_image: str, docker_client, no_leftover_containers: None
):
    slow = {"test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(60)\n"}
    repo = make_repo(tmp_path / "repo", {**BUGS, **slow})
    specs = tmp_path / "specs"
    specs.mkdir()
    for title in FIXES:
        spec(specs, title)
    with OracleServer() as oracle:
        env = {"OPENAI_BASE_URL": oracle.base_url, "CODEBOT_MODEL": "oracle",
               "CODEBOT_SANDBOX_IMAGE": sandbox_image}  # fmt: skip
        proc = codebot(["batch", str(specs), "--repo", str(repo), "--workers", "2",
                        "--runs-dir", str(tmp_path / "runs")], env, tmp_path)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # both baselines are running their slow test
            running = docker_client.containers.list(filters={"label": "codebot.run"})
            if len(running) >= 2:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)

    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert not git(repo, "branch", "--list", "codebot/*")
    assert json.dumps(out)  # the process ended; leftovers are checked by the fixture


def _task_messages(argv: list[str]) -> list[tuple]:
    """What a batch task forked from the batch's server says over its pipe, to the end."""
    receive, send = batch._LAUNCHER.Pipe(duplex=False)
    proc = batch._LAUNCHER.Process(target=batch._task_main, args=(argv, send))
    proc.start()
    send.close()
    said = []
    with contextlib.suppress(EOFError):
        while True:
            said.append(receive.recv())
    proc.join(30)
    said.append(("exitcode", proc.exitcode))
    return said


def test_a_forked_task_relays_its_output_and_ends_with_its_exit_code() -> None:
    said = _task_messages(["--version"])

    assert ("out", f"codebot, version {__version__}\n".encode()) in said
    kinds = [m[0] for m in said]
    assert kinds[-2:] == ["done", "exitcode"] and said[-2][1] == 0 and said[-2][2] > 0
    assert said[-1] == ("exitcode", 0)


def test_a_forked_task_that_fails_says_why_line_by_line() -> None:
    said = _task_messages(["no-such-command"])

    errors = b"".join(m[1] for m in said if m[0] == "err").decode()
    assert "No such command 'no-such-command'" in errors
    assert said[-2][:2] == ("done", 2) and said[-1] == ("exitcode", 2)
