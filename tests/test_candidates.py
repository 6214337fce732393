"""Best-of-N: several replies per iteration, each tried on the same tree and sandbox in
turn; the first that passes wins, a loser's edits are undone, every candidate is recorded.
The loop-level tests use the strict scripted sandbox; the run-level one the real engine and
the scripted model server answering by seed, as requests sent at once arrive in any order."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from codebot.candidates import best_of
from codebot.config import DEFAULT_PROTECTED, ModelConfig
from codebot.decisions import Green, LoopState, Retry, StopRules
from codebot.edits import FileTree
from codebot.errors import ModelError, SandboxError
from codebot.ladder import LadderModel, Rung
from codebot.llm import OpenAIModel
from codebot.loop import Loop, run_loop
from codebot.records import Completion
from codebot.redact import Redactor
from codebot.spec import TaskSpec
from tests.support.git_repos import git, make_repo
from tests.support.model_server import ScriptedModelServer, Turn
from tests.support.scripted_sandbox import Exec, ScriptedSandbox
from tests.test_end_to_end import cli_env, codebot, run_dir
from tests.test_loop import CALC, FAIL, FIX, PASS, PROMPT, STALE, WRONG, block, reply

SCRATCH = "Keep a note.\n\nscratch.py\n<<<<<<< SEARCH\n=======\nNOTE = 1\n>>>>>>> REPLACE\n"


@pytest.fixture
def loop(tree: FileTree, scripted_sandbox: ScriptedSandbox) -> Loop:
    spec = TaskSpec(title="Fix add", description="add subtracts", test="pytest -q", lint=False)
    return Loop(spec, StopRules(max_iterations=5), tree, scripted_sandbox, python_repo=True)


@pytest.fixture
def tree(tmp_path: Path) -> FileTree:
    (tmp_path / "calc.py").write_text(CALC)
    return FileTree(tmp_path, DEFAULT_PROTECTED)


def test_the_first_candidate_that_passes_wins_and_a_losers_edits_are_undone(
    loop: Loop, tree: FileTree, scripted_sandbox: ScriptedSandbox
) -> None:
    scripted_sandbox.script(FAIL, PASS)
    replies = [reply(WRONG + SCRATCH, cost=0.001), reply(FIX, cost=0.002), reply(WRONG)]

    decision, state = best_of(loop, LoopState(history=PROMPT), replies)

    assert isinstance(decision, Green)
    assert tree.read("calc.py") == "def add(a, b):\n    return a + b\n"
    assert not tree.exists("scratch.py")  # candidate 1 made it; it was undone
    assert scripted_sandbox.files["calc.py"] == b"def add(a, b):\n    return a + b\n"
    assert "scratch.py" not in scripted_sandbox.files
    (it,) = state.iterations
    assert [(c.index, c.outcome, c.chosen) for c in it.candidates] == [
        (1, "retry", False), (2, "green", True), (3, "not checked", False)
    ]  # fmt: skip
    assert it.candidates[0].failing_tests == 1 and it.candidates[2].reply == WRONG
    assert it.usage.total_tokens == 3 * 120 == state.usage.total_tokens  # all were paid for
    assert it.cost_usd == pytest.approx(0.004) and state.cost_usd == pytest.approx(0.004)
    assert state.changed == {"calc.py"}


def test_with_no_winner_the_most_promising_failure_goes_on(
    loop: Loop, tree: FileTree, scripted_sandbox: ScriptedSandbox
) -> None:
    scripted_sandbox.script(FAIL)
    replies = [reply(STALE), reply(WRONG), ModelError("the endpoint failed (500)")]

    decision, state = best_of(loop, LoopState(history=PROMPT), replies)

    assert isinstance(decision, Retry)
    assert "a * b" in tree.read("calc.py")  # candidate 2's edit is redone: its checks ran
    assert scripted_sandbox.files["calc.py"] == b"def add(a, b):\n    return a * b\n"
    assert "assert -1 == 5" in decision.feedback or "test_add" in decision.feedback
    (it,) = state.iterations
    assert [(c.outcome, c.chosen) for c in it.candidates] == [
        ("retry", False), ("retry", True), ("error", False)
    ]  # fmt: skip
    assert it.candidates[0].detail == "checks not run (1 edit(s) refused)"
    assert it.candidates[2].detail == "the endpoint failed (500)"
    assert state.history[-2].content == WRONG  # the conversation goes on from the winner


def test_a_ladder_asks_candidates_at_once_with_their_own_seeds_and_counts_each() -> None:
    with ScriptedModelServer("m") as server:
        server.script(
            Turn.reply("third", seed=2), Turn.reply("first", seed=0), Turn.reply("second", seed=1)
        )
        config = ModelConfig(
            "m", server.base_url, "k", max_retries=0, timeout_s=10,
            price_input_per_mtok=1.0, price_output_per_mtok=1.0, max_output_tokens=1000,
        )  # fmt: skip
        model = LadderModel([Rung("m", (OpenAIModel(config),), iterations=1)], Redactor())
        single = model.worst_case_usd(1000)
        model.candidates = 3

        replies = model.complete_many(list(PROMPT), 3)

        assert [r.text for r in replies if isinstance(r, Completion)] == [
            "first", "second", "third"
        ]  # fmt: skip
        sent = sorted((r.body["seed"], r.body["temperature"]) for r in server.requests)
        assert sent == [(0, 0.0), (1, 0.8), (2, 0.8)]
        (usage,) = model.rung_usage()
        assert usage.calls == 3  # paid replies; the rung's `iterations` counts one
        assert single == pytest.approx(2000 / 1e6)
    assert model.worst_case_usd(1000) is None  # its one iteration is spent
    with pytest.raises(ModelError, match="ladder is spent"):
        model.complete(list(PROMPT))


def test_the_cost_cap_counts_every_candidate_before_asking(
    tree: FileTree, scripted_sandbox: ScriptedSandbox
) -> None:
    with ScriptedModelServer("m") as server:  # strict: any request would be unscripted
        config = ModelConfig(
            "m", server.base_url, "k", max_retries=0, timeout_s=10,
            price_input_per_mtok=1.0, price_output_per_mtok=1.0, max_output_tokens=1000,
        )  # fmt: skip
        model = LadderModel([Rung("m", (OpenAIModel(config),))], Redactor())
        model.candidates = 3
        spec = TaskSpec(title="Fix add", description="x", test="pytest -q", lint=False)
        # One call's worst case (~1,000 out + the prompt) fits $0.0025; three do not.
        rules = StopRules(max_iterations=5, max_cost_usd=0.0025)
        loop = Loop(spec, rules, tree, scripted_sandbox, python_repo=True, candidates=3)

        result = run_loop(loop, model, LoopState(history=PROMPT))

        assert result.stop_reason == "cost_budget" and server.requests == []
        assert "could cost up to $0.003" in result.stop_detail


# The whole run: three candidates at once, only the second right.
PRICING = "def total(prices):\n    return sum(prices) - 1\n"
PRICING_TEST = "from pricing import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n"
TASK = """id: fix-total
title: total() is one short
description: total([1, 2]) returns 2.
test: python3 -m pytest -q
files: [pricing.py]
max_iterations: 2
"""
RIGHT = block("    return sum(prices) - 1\n", "    return sum(prices)\n", "pricing.py", "Drop -1.")
OFF = block("    return sum(prices) - 1\n", "    return sum(prices) + 1\n", "pricing.py", "Try +1.")


@pytest.mark.docker
def test_a_dry_run_with_three_candidates_keeps_the_right_one_and_records_all(
    model_server, tmp_path, sandbox_image, no_leftover_containers
) -> None:
    repo = make_repo(tmp_path / "shop", {"pricing.py": PRICING, "test_pricing.py": PRICING_TEST})
    (tmp_path / "task.yaml").write_text(TASK)
    loser = OFF + SCRATCH.replace("scratch.py", "leftover.py")
    model_server.script(
        Turn.reply(loser, seed=0), Turn.reply(RIGHT, seed=1), Turn.reply(OFF, seed=2)
    )
    runs = tmp_path / "runs"

    args = ["dry-run", "task.yaml", "--repo", str(repo), "--runs-dir", str(runs)]
    lanes_before = set(Path(tempfile.gettempdir()).glob("codebot-*-lane*"))

    result = codebot(
        [*args, "--candidates", "3", "--candidate-workers", "3"], cli_env(model_server), tmp_path
    )

    assert result.returncode == 0, result.stdout + result.stderr
    branch = "codebot/fix-total"
    assert git(repo, "show", f"{branch}:pricing.py").endswith("return sum(prices)")
    assert git(repo, "ls-tree", "--name-only", branch).split() == ["pricing.py", "test_pricing.py"]
    record = json.loads((run_dir(runs) / "run.json").read_text())
    (it,) = record["iterations"]
    assert [(c["index"], c["outcome"], c["chosen"]) for c in it["candidates"]] == [
        (1, "retry", False), (2, "green", True), (3, "retry", False)
    ]  # fmt: skip  # three places: all three were checked at once
    assert all(c["check_s"] > 0 for c in it["candidates"])
    assert not any("lane" in note for note in record["notes"])  # both lanes were made
    assert set(Path(tempfile.gettempdir()).glob("codebot-*-lane*")) == lanes_before  # removed
    assert record["usage"]["total_tokens"] == sum(
        c["usage"]["total_tokens"] for c in it["candidates"]
    )
    assert record["files_changed"] == ["pricing.py"]
    body = (run_dir(runs) / "pr.md").read_text()
    assert "Best of 3" in body and "**2: green" in body


# Side by side: the run's own place and lanes (copies of the tree, sandboxes of their own).
class Rendezvous:
    """The first `n` checks to arrive wait for each other (10 s at most): checks run one
    after another never get through it. Later ones pass straight on."""

    def __init__(self, n: int) -> None:
        self._barrier = threading.Barrier(n, timeout=10)
        self._lock = threading.Lock()
        self._arrived = 0
        self._n = n

    def wait(self) -> None:
        with self._lock:
            self._arrived += 1
            first = self._arrived <= self._n
        if first:
            self._barrier.wait()


class JudgingSandbox(ScriptedSandbox):
    """Answers the test command from the calc.py synced into it: passing when it adds. A
    check of a file with `slow` in it takes `slow_s` longer."""

    def __init__(self, gate: Rendezvous | None = None, slow: bytes = b"", slow_s: float = 0.0):
        super().__init__()
        self._gate, self._slow, self._slow_s = gate, slow, slow_s

    def run(self, command, timeout_s, env=None):  # type: ignore[no-untyped-def]
        if self._gate is not None:
            self._gate.wait()
        calc = self.files.get("calc.py", b"")
        if self._slow and self._slow in calc:
            time.sleep(self._slow_s)
        self.script(PASS if b"a + b" in calc or b"b + a" in calc else FAIL)
        return super().run(command, timeout_s, env)


class CopyLanes:
    """protocols.Lanes over copies of a test's tree, each with a sandbox of its own; or,
    with `broken`, lanes that cannot be made."""

    def __init__(self, tree: FileTree, sandboxes: list[ScriptedSandbox], broken: bool = False):
        self.trees = []
        for k, sandbox in enumerate(sandboxes):
            root = tree.root.parent / f"lane{k + 1}"
            shutil.copytree(tree.root, root)
            sandbox.sync(root)
            self.trees.append(replace(tree, root=root))
        self.sandboxes, self.broken, self.asked = sandboxes, broken, 0

    @property
    def count(self) -> int:
        return len(self.sandboxes)

    def lane(self, k: int) -> tuple[FileTree, ScriptedSandbox]:
        self.asked += 1
        if self.broken:
            raise SandboxError("the engine refused the container", "")
        return self.trees[k], self.sandboxes[k]


def side_by_side(
    tmp_path: Path, own: ScriptedSandbox, lanes: CopyLanes | None = None, **kw: Any
) -> Loop:
    spec = TaskSpec(title="Fix add", description="add subtracts", test="pytest -q", lint=False)
    tree = FileTree(tmp_path / "repo", DEFAULT_PROTECTED)
    return Loop(spec, StopRules(max_iterations=5), tree, own, True, lanes=lanes, **kw)


@pytest.fixture
def repo_tree(tmp_path: Path) -> FileTree:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "calc.py").write_text(CALC)
    return FileTree(tmp_path / "repo", DEFAULT_PROTECTED)


POW = block("    return a - b\n", "    return a ** b\n", why="Try **.")
SWAP = block("    return a - b\n", "    return b + a\n", why="Swap and add.")


def test_candidates_are_checked_at_once_each_in_a_place_of_its_own(
    tmp_path: Path, repo_tree: FileTree
) -> None:
    gate = Rendezvous(2)  # candidates 1 and 2 must be checked at the same time
    own, other = JudgingSandbox(gate), JudgingSandbox(gate)
    own.sync(repo_tree.root)
    lanes = CopyLanes(repo_tree, [other])
    loop = side_by_side(tmp_path, own, lanes)

    replies = [reply(WRONG + SCRATCH), reply(POW), reply(FIX)]
    decision, state = best_of(loop, LoopState(history=PROMPT), replies)

    assert isinstance(decision, Green)
    assert repo_tree.read("calc.py") == "def add(a, b):\n    return a + b\n"
    assert own.files["calc.py"] == b"def add(a, b):\n    return a + b\n"
    assert not repo_tree.exists("scratch.py") and "scratch.py" not in own.files
    lane_tree = lanes.trees[0]  # back to the files as the iteration began
    assert lane_tree.read("calc.py") == CALC and not lane_tree.exists("scratch.py")
    assert other.files["calc.py"] == CALC.encode() and "scratch.py" not in other.files
    (it,) = state.iterations
    assert [(c.index, c.outcome, c.chosen) for c in it.candidates] == [
        (1, "retry", False), (2, "retry", False), (3, "green", True)
    ]  # fmt: skip
    assert len(own.commands) + len(other.commands) == 3


def test_the_lowest_numbered_candidate_that_passes_wins_whichever_finishes_first(
    tmp_path: Path, repo_tree: FileTree
) -> None:
    own = JudgingSandbox(slow=b"a + b", slow_s=0.5)  # candidate 1's check is the slower
    other = JudgingSandbox(slow=b"a + b", slow_s=0.5)
    own.sync(repo_tree.root)
    loop = side_by_side(tmp_path, own, CopyLanes(repo_tree, [other]))

    decision, state = best_of(loop, LoopState(history=PROMPT), [reply(FIX), reply(SWAP)])

    assert isinstance(decision, Green)
    assert repo_tree.read("calc.py") == "def add(a, b):\n    return a + b\n"
    assert own.files["calc.py"] == b"def add(a, b):\n    return a + b\n"
    (it,) = state.iterations
    assert [(c.index, c.outcome, c.chosen) for c in it.candidates] == [
        (1, "green", True), (2, "green", False)
    ]  # fmt: skip
    assert it.candidates[0].check_s >= 0.5 > it.candidates[1].check_s


def test_a_lane_is_brought_up_to_the_runs_files_before_each_candidate(
    tmp_path: Path, repo_tree: FileTree
) -> None:
    own, other = JudgingSandbox(), JudgingSandbox()
    own.sync(repo_tree.root)
    lanes = CopyLanes(repo_tree, [other])  # a copy of the tree before any change
    loop = side_by_side(tmp_path, own, lanes)
    first, state = best_of(loop, LoopState(history=PROMPT), [reply(WRONG), reply(STALE)])
    assert isinstance(first, Retry) and "a * b" in (repo_tree.read("calc.py") or "")

    # Both build on the run's `a * b`: a lane still holding `a - b` would refuse them.
    on_top = block("    return a * b\n", "    return a + b\n", why="Now add.")
    replies = [reply(on_top.replace("Now add.", "Add.")), reply(on_top)]
    own._gate = other._gate = Rendezvous(2)  # both are checked, at once
    second, state = best_of(loop, state, replies)

    assert isinstance(second, Green)
    assert [c.outcome for c in state.iterations[-1].candidates] == ["green", "green"]
    assert lanes.trees[0].read("calc.py") == "def add(a, b):\n    return a * b\n"


def test_a_lane_that_cannot_be_made_leaves_its_candidates_to_the_others(
    tmp_path: Path, repo_tree: FileTree
) -> None:
    own = JudgingSandbox(slow=b"a * b", slow_s=0.3)  # the lane's worker asks meanwhile
    own.sync(repo_tree.root)
    lanes = CopyLanes(repo_tree, [JudgingSandbox()], broken=True)
    loop = side_by_side(tmp_path, own, lanes)

    decision, state = best_of(loop, LoopState(history=PROMPT), [reply(WRONG), reply(FIX)])

    assert isinstance(decision, Green) and lanes.asked == 1
    assert len(own.commands) == 2  # both were checked in the run's own place
    assert [c.outcome for c in state.iterations[-1].candidates] == ["retry", "green"]


def test_a_sandbox_fault_in_a_lane_ends_the_iteration_as_a_fault(
    tmp_path: Path, repo_tree: FileTree
) -> None:
    own = JudgingSandbox()
    own.sync(repo_tree.root)
    dead = ScriptedSandbox()
    dead.script(Exec("pytest", raises=SandboxError("the engine went away", "restart it")))
    gate = Rendezvous(2)  # both are being checked when the fault comes
    own._gate = gate
    dead.run = lambda *a, **k: (gate.wait(), ScriptedSandbox.run(dead, *a, **k))[1]  # type: ignore[method-assign]
    loop = side_by_side(tmp_path, own, CopyLanes(repo_tree, [dead]))

    with pytest.raises(SandboxError, match="the engine went away"):
        best_of(loop, LoopState(history=PROMPT), [reply(WRONG), reply(POW)])


@pytest.mark.docker
def test_candidates_across_rungs_let_the_strong_rungs_reply_win_beside_the_cheap_one(
    tmp_path, sandbox_image, no_leftover_containers
) -> None:
    repo = make_repo(tmp_path / "shop", {"pricing.py": PRICING, "test_pricing.py": PRICING_TEST})
    (tmp_path / "task.yaml").write_text(TASK)
    runs = tmp_path / "runs"
    with ScriptedModelServer("cheap-model") as cheap, ScriptedModelServer("strong-model") as strong:
        cheap.script(Turn.reply(OFF, seed=0))
        strong.script(Turn.reply(RIGHT, seed=0))
        rungs = [
            {"name": name, "model": f"{name}-model", "base_url": server.base_url,
             "key_env": "", "price_input": price, "price_output": price}
            for name, server, price in (("cheap", cheap, 0.1), ("strong", strong, 5.0))
        ]  # fmt: skip
        env = cli_env(cheap, CODEBOT_LADDER=json.dumps(rungs))
        args = ["dry-run", "task.yaml", "--repo", str(repo), "--runs-dir", str(runs)]

        result = codebot([*args, "--candidates", "2", "--candidates-from", "rungs"], env, tmp_path)

        cheap.assert_done()
        strong.assert_done()
    assert result.returncode == 0, result.stdout + result.stderr
    assert git(repo, "show", "codebot/fix-total:pricing.py").endswith("return sum(prices)")
    record = json.loads((run_dir(runs) / "run.json").read_text())
    (it,) = record["iterations"]
    assert [(c["rung"], c["outcome"], c["chosen"]) for c in it["candidates"]] == [
        ("cheap", "retry", False), ("strong", "green", True)
    ]  # fmt: skip
    assert it["rung"] == "strong"
    assert [(r["name"], r["calls"]) for r in record["rungs"]] == [("cheap", 1), ("strong", 1)]
    body = (run_dir(runs) / "pr.md").read_text()
    assert "**2 (`strong`): green" in body and "1 (`cheap`): retry" in body
