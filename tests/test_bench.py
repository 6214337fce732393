"""`codebot bench`: the task loader, the oracle, the judge, and one whole oracle run."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import pytest

from codebot.bench import BenchError, judge, load_task, load_tasks, materialise, shown_in_prompt
from codebot.config import ModelConfig, SandboxConfig
from codebot.edits import FileTree, parse_edits
from codebot.errors import ModelError
from codebot.llm import OpenAIModel
from codebot.oracle import OracleServer, drift, futile_text
from codebot.records import Message
from codebot.sandbox import OWNER_LABEL

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "benchmarks" / "tasks"

DIFF = """\
diff --git a/calc.py b/calc.py
--- a/calc.py
+++ b/calc.py
@@ -10,2 +10,2 @@ def add(a, b):
 def sub(a, b):
-    return a + b
+    return a - b
diff --git a/tests/test_sub.py b/tests/test_sub.py
new file mode 100644
--- /dev/null
+++ b/tests/test_sub.py
@@ -0,0 +1,2 @@
+def test_sub():
+    assert sub(3, 1) == 2
"""


def _task_dir(tmp_path: Path, *without: str) -> Path:
    """A minimal, complete task directory, less the parts named in `without`."""
    task = tmp_path / "tiny"
    (task / "repo").mkdir(parents=True)
    (task / "repo" / "calc.py").write_text("def sub(a, b):\n    return a + b\n")
    (task / "hidden" / "tests").mkdir(parents=True)
    (task / "hidden" / "tests" / "test_hidden.py").write_text("def test_x():\n    pass\n")
    (task / "task.yaml").write_text(
        "title: sub adds\ndescription: it should subtract\ntest: python3 -m pytest -q\n"
    )
    (task / "reference.diff").write_text(DIFF)
    for part in without:
        target = task / part
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return task


def _env(**extra: str) -> dict[str, str]:
    """The CLI's environment: no endpoint, no key (the oracle needs none)."""
    keep = ("PATH", "HOME", "DOCKER_HOST")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}


def _ask(server: OracleServer, *messages: Message) -> str:
    config = ModelConfig(name="oracle", base_url=server.base_url, api_key="x", max_retries=0)
    return OpenAIModel(config).complete(messages).text


# -- the task loader ---------------------------------------------------------------------


def test_a_task_without_reference_diff_is_refused_naming_its_directory(tmp_path):
    task = _task_dir(tmp_path, "reference.diff")
    with pytest.raises(BenchError) as exc:
        load_task(task)
    assert str(task) in exc.value.cause
    assert "reference.diff" in exc.value.cause


def test_a_task_without_hidden_tests_is_refused(tmp_path):
    with pytest.raises(BenchError, match="hidden/"):
        load_task(_task_dir(tmp_path, "hidden"))


def test_a_task_reads_the_files_its_reference_changes(tmp_path):
    task = load_task(_task_dir(tmp_path))
    assert task.changed == ("calc.py", "tests/test_sub.py")
    assert task.existing == ("calc.py",)  # a new file cannot be in the first prompt
    assert task.hidden_tests == ("tests/test_hidden.py",)
    assert task.title == "sub adds"


def test_the_bundled_tasks_are_all_complete():
    tasks = load_tasks(TASKS)
    assert len(tasks) >= 12
    assert all(t.spec_path.is_file() and t.changed for t in tasks)


def test_only_names_a_task_that_does_not_exist():
    with pytest.raises(BenchError, match="no-such-task"):
        load_tasks(TASKS, ["no-such-task"])


def test_generated_task_repositories_are_the_same_every_time(tmp_path):
    task = load_task(TASKS / "large-repo-route-quote")
    trees = []
    for name in ("one", "two"):
        repo = materialise(task, tmp_path / name)
        trees.append(subprocess.run(
            ["git", "rev-parse", "HEAD^{tree}"], cwd=repo, capture_output=True, text=True,
            check=True,
        ).stdout)  # fmt: skip
    assert trees[0] == trees[1]
    assert len(list((tmp_path / "one" / "depot" / "routes").glob("route_*.py"))) == 120


# -- the oracle ---------------------------------------------------------------------------


def test_drift_moves_every_hunk_of_an_existing_file_and_leaves_new_files_alone():
    drifted = drift(DIFF, 3)
    assert "@@ -13,2 +13,2 @@ def add(a, b):" in drifted
    assert "@@ -0,0 +1,2 @@" in drifted
    assert drifted.replace("-13,2 +13,2", "-10,2 +10,2") == DIFF


def test_oracle_answers_a_first_call_with_the_drifted_diff_then_the_exact_one():
    with OracleServer() as server:
        server.register("sub adds", DIFF)
        system, task = Message("system", "rules"), Message("user", "Title: sub adds\n...")
        first = _ask(server, system, task)
        later = _ask(server, system, task, Message("assistant", first), Message("user", "no"))
    assert "```diff\n" + drift(DIFF) in first
    assert "```diff\n" + DIFF in later


def test_oracle_fences_a_diff_holding_backticks_with_a_longer_fence():
    diff = DIFF.replace("return a - b", "return a - b  # ```")
    with OracleServer() as server:
        server.register("sub adds", diff)
        reply = _ask(server, Message("user", "Title: sub adds"))
    assert "````diff\n" in reply


def test_a_futile_answer_applies_to_the_file_and_changes_only_a_comment(tmp_path: Path):
    (tmp_path / "calc.py").write_text("\n" * 9 + "def sub(a, b):\n    return a + b\n")
    tree = FileTree(tmp_path, ())

    text = futile_text("sub adds", DIFF, 7)
    (outcome,) = tree.apply(parse_edits(text or "").edits)

    assert outcome.status == "applied"
    assert tree.read("calc.py") == (
        "\n" * 9 + "def sub(a, b):\n    return a + b\n    # checked (7)\n"
    )
    new_file_only = DIFF[DIFF.index("diff --git a/tests") :]
    assert futile_text("sub adds", new_file_only, 1) is None  # nothing there to quote


def test_oracle_refuses_a_conversation_about_no_task_it_knows():
    with OracleServer() as server, pytest.raises(ModelError, match="knows no task"):
        _ask(server, Message("user", "Title: something else"))


# -- what the first prompt showed ---------------------------------------------------------


def test_a_file_counts_as_shown_by_its_header_or_a_region_header_followed_by_a_fence():
    prompt = "a.py\n```\nx = 1\n```\nbig.py (lines 10-40 of 900)\n````\n10 | y\n````\n"
    assert shown_in_prompt(prompt, "a.py")
    assert shown_in_prompt(prompt, "big.py")


def test_a_file_only_in_the_file_list_or_the_map_does_not_count_as_shown():
    prompt = "Files:\nlisted.py\nother.py\n</untrusted>\nmapped.py (120 lines)\n    3  def f()\n"
    assert not shown_in_prompt(prompt, "listed.py")
    assert not shown_in_prompt(prompt, "mapped.py")


# -- the judge and a whole run (Docker) --------------------------------------------------


def _branch(repo: Path, name: str, change: Callable[[Path], None]) -> None:
    """A branch `name` in `repo` holding `change`, as a run would leave it; main stays."""
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "switch", "-q", "-c", name], cwd=repo, check=True)
    change(repo)
    subprocess.run([*git, "commit", "-q", "-am", name], cwd=repo, check=True)
    subprocess.run([*git, "switch", "-q", "main"], cwd=repo, check=True)


def _apply(diff: str) -> Callable[[Path], None]:
    def change(repo: Path) -> None:
        subprocess.run(["git", "apply", "-"], input=diff, text=True, cwd=repo, check=True)

    return change


def _wrong_fix(repo: Path) -> None:
    core = repo / "statkit" / "core.py"
    core.write_text(core.read_text().replace("return ordered[middle]", "return ordered[0]"))


@pytest.mark.docker
@pytest.mark.parametrize(("fix", "solved"), [("reference", True), ("wrong", False)])
def test_the_judge_runs_the_hidden_tests_on_the_branch_the_run_left(
    tmp_path: Path, sandbox_image: str, run_ids: Callable[[], str], fix: str, solved: bool
):
    task = load_task(TASKS / "median-even")
    repo = materialise(task, tmp_path / "repo")
    _branch(repo, f"codebot/{fix}", _apply(task.reference) if fix == "reference" else _wrong_fix)
    verdict = judge(task, repo, f"codebot/{fix}", SandboxConfig(image=sandbox_image), run_ids())
    assert verdict.solved is solved
    assert ("failed" in verdict.detail) is not solved


def _left_by(client: docker.DockerClient, pid: int) -> list[str]:
    """Sandbox containers and volumes the process `pid` made and did not remove. Other
    codebot runs on the same engine (other test sessions) are not this test's business."""
    maker = f"{socket.gethostname()}/{pid}/"
    label = {"label": OWNER_LABEL}
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=label)
             if c.labels.get(OWNER_LABEL, "").startswith(maker)]  # fmt: skip
    found += [f"volume {v.name}" for v in client.volumes.list(filters=label)
              if (v.attrs.get("Labels") or {}).get(OWNER_LABEL, "").startswith(maker)]  # fmt: skip
    return found


@pytest.mark.docker
def test_an_oracle_run_of_one_task_is_solved_end_to_end(
    tmp_path: Path, sandbox_image: str, docker_client: docker.DockerClient
):
    out = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "codebot", "bench", "--tasks", str(TASKS), "--oracle",
         "--only", "median-even", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(CODEBOT_SANDBOX_IMAGE=sandbox_image),
    )  # fmt: skip
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stdout + stderr
    assert "| median-even | yes | passed | 1 |" in stdout
    (result,) = json.loads((out / "quality.json").read_text())["tasks"]
    assert result["solved"] and result["in_first_prompt"]
    assert len(result["prompt_tokens"]) == result["iterations"] == 1
    assert (out / "quality.md").read_text().count("| median-even |") == 1
    assert _left_by(docker_client, proc.pid) == []
