"""The loop's rules, driven without Docker: real edits on a temp directory, a strict scripted
sandbox for the commands, and (for the driver) the scripted model server over a socket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from codebot import knowledge as kn
from codebot.config import DEFAULT_PROTECTED, KnowledgeConfig, ModelConfig
from codebot.decisions import Green, LoopState, Retry, Stop, StopRules
from codebot.edits import FileTree
from codebot.errors import SandboxError, WorkspaceError
from codebot.llm import OpenAIModel
from codebot.loop import Loop, run_loop
from codebot.records import CheckResult, Completion, EditOutcome, Iteration, Message, Usage
from codebot.spec import TaskSpec
from tests.support.model_server import ScriptedModelServer, Turn
from tests.support.scripted_sandbox import Exec, ScriptedSandbox

CALC = "def add(a, b):\n    return a - b\n"


def block(search: str, replace: str, path: str = "calc.py", why: str = "") -> str:
    """One SEARCH/REPLACE block, as a model writes it."""
    return f"{why}\n\n{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


FIX = block("    return a - b\n", "    return a + b\n", why="Use +.")
WRONG = block("    return a - b\n", "    return a * b\n", why="Try *.")
STALE = block("    result = compute(values)\n", "    return a + b\n")
NO_OP = block("    return a - b\n", "    return a - b\n")
PROSE = "I think the bug is in add; it subtracts."
JUNIT_FAIL = b"""<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite>
<testcase classname="test_calc" name="test_add"><failure message="assert -1 == 5">
def test_add():
&gt;       assert add(2, 3) == 5
E       assert -1 == 5</failure></testcase></testsuite></testsuites>"""
JUNIT_PASS = b"""<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite>
<testcase classname="test_calc" name="test_add"/></testsuite></testsuites>"""
PASS = Exec("pytest", 0, "1 passed", junit=JUNIT_PASS)
FAIL = Exec("pytest", 1, "1 failed", junit=JUNIT_FAIL)
PROMPT = (Message("system", "rules"), Message("user", "fix add"))

MakeLoop = Callable[..., Loop]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tree(tmp_path: Path) -> FileTree:
    (tmp_path / "calc.py").write_text(CALC)
    (tmp_path / "notes.md").write_text("# notes\n")
    return FileTree(tmp_path, DEFAULT_PROTECTED)


@pytest.fixture
def make_loop(tree: FileTree, scripted_sandbox: ScriptedSandbox) -> MakeLoop:
    def make(
        clock: Clock | None = None,
        baseline_green: bool = False,
        continued: bool = False,
        **rules: object,
    ) -> Loop:
        spec = TaskSpec(title="Fix add", description="add subtracts", test="pytest -q", lint=False)
        clock = clock or Clock()
        return Loop(
            spec=spec,
            rules=StopRules(**{"max_iterations": 5, **rules}),  # type: ignore[arg-type]
            tree=tree,
            sandbox=scripted_sandbox,
            python_repo=True,
            baseline_green=baseline_green,
            continued=continued,
            clock=clock,
            started=clock(),
        )

    return make


def reply(text: str, tokens: tuple[int, int] = (100, 20), cost: float | None = 0.001) -> Completion:
    return Completion(text, Usage(*tokens), "m", latency_s=0.5, cost_usd=cost)


def start() -> LoopState:
    return LoopState(history=PROMPT)


def test_a_reply_whose_checks_pass_is_green(make_loop: MakeLoop, scripted_sandbox, tree):
    scripted_sandbox.script(PASS)

    decision, state = make_loop().step(start(), reply(FIX))

    assert isinstance(decision, Green)
    assert [c.name for c in decision.checks] == ["test"] and decision.checks[0].passed
    assert "a + b" in tree.read("calc.py")
    assert [(i.number, i.decision) for i in state.iterations] == [(1, "green")]
    assert state.changed == {"calc.py"} and state.usage == Usage(100, 20)


def test_the_checks_run_on_the_edited_files(make_loop: MakeLoop, scripted_sandbox):
    scripted_sandbox.script(PASS)

    make_loop().step(start(), reply(FIX))

    assert scripted_sandbox.syncs == [("calc.py",)]
    assert b"return a + b" in scripted_sandbox.files["calc.py"]


def test_failing_checks_retry_with_the_failing_assertion_and_the_file_as_it_is(
    make_loop: MakeLoop, scripted_sandbox
):
    scripted_sandbox.script(FAIL)

    decision, state = make_loop().step(start(), reply(WRONG))

    assert isinstance(decision, Retry)
    assert "test_calc::test_add" in decision.feedback and "assert -1 == 5" in decision.feedback
    assert "return a * b" in decision.feedback  # the changed file, as it is now
    assert state.history[-2:] == (
        Message("assistant", WRONG),
        Message("user", decision.feedback),
    )
    assert state.iterations[0].decision == "retry" and not state.iterations[0].checks[0].passed


def test_refused_blocks_run_no_check(make_loop: MakeLoop, scripted_sandbox):
    decision, state = make_loop().step(start(), reply(STALE))  # no command scripted

    assert isinstance(decision, Retry)
    assert "refused" in decision.feedback and "no checks were run" in decision.feedback
    assert decision.checks == () and scripted_sandbox.commands == []
    assert state.idle == 1


def test_a_file_applied_beside_a_refused_block_reaches_the_sandbox_at_once(
    make_loop: MakeLoop, scripted_sandbox, tree
):
    mixed = block("# notes\n", "# Notes\n", path="notes.md") + STALE

    decision, state = make_loop().step(start(), reply(mixed))

    assert [o.status for o in decision.outcomes] == ["applied", "refused"]
    assert scripted_sandbox.files["notes.md"] == b"# Notes\n"  # not stale at the next check
    assert state.idle == 0


def test_an_identical_edit_is_neither_applied_nor_checked_again(
    make_loop: MakeLoop, scripted_sandbox
):
    scripted_sandbox.script(FAIL)  # for the first attempt only
    loop = make_loop()
    _, state = loop.step(start(), reply(WRONG))

    decision, state = loop.step(state, reply(WRONG))

    assert isinstance(decision, Retry)
    assert "identical to iteration 1" in decision.feedback
    assert decision.outcomes == () and scripted_sandbox.commands == ["pytest -q"]
    assert state.repeats == 1


def test_a_reply_without_edits_is_taught_the_format_and_runs_nothing(
    make_loop: MakeLoop, scripted_sandbox
):
    decision, state = make_loop().step(start(), reply(PROSE))

    assert isinstance(decision, Retry)
    assert "<<<<<<< SEARCH" in decision.feedback and "```diff" in decision.feedback
    assert scripted_sandbox.syncs == [] and state.idle == 1


def test_a_reply_that_changes_nothing_is_not_green_and_runs_no_check(
    make_loop: MakeLoop, scripted_sandbox
):
    decision, state = make_loop().step(start(), reply(NO_OP))

    assert isinstance(decision, Retry)
    assert [o.status for o in decision.outcomes] == ["already_applied"]
    assert "changed no file" in decision.feedback
    assert scripted_sandbox.syncs == [] and state.changed == frozenset()


def test_three_replies_in_a_row_that_change_nothing_stop_for_no_progress(make_loop: MakeLoop):
    loop = make_loop()
    state = start()
    decisions = []
    for text in (PROSE, STALE, NO_OP):
        decision, state = loop.step(state, reply(text))
        decisions.append(type(decision).__name__)

    assert decisions == ["Retry", "Retry", "Stop"]
    assert isinstance(decision, Stop) and decision.reason == "no_progress"
    assert decision.detail == "3 replies in a row changed no file"
    assert state.iterations[-1].decision == "stop"


def test_resending_tried_edits_twice_in_a_row_stops_for_no_progress(
    make_loop: MakeLoop, scripted_sandbox
):
    scripted_sandbox.script(FAIL)
    loop = make_loop(max_idle=10)
    _, state = loop.step(start(), reply(WRONG))
    _, state = loop.step(state, reply(WRONG))

    decision, state = loop.step(state, reply(WRONG))

    assert isinstance(decision, Stop) and decision.reason == "no_progress"
    assert "already tried 2 times" in decision.detail


def test_the_iteration_limit_stops_before_another_call():
    rules = StopRules(max_iterations=2)
    state = LoopState(history=PROMPT, iterations=(_done(1), _done(2)))

    stop = rules.before_call(state, elapsed_s=0)

    assert stop == Stop("max_iterations", "checks still failing after 2 iterations")


def test_a_token_budget_stops_before_the_call_that_would_pass_it():
    rules = StopRules(max_iterations=5, max_tokens=1_000)
    history = (Message("user", "x" * 400),)  # ~100 prompt tokens next time
    under = LoopState(history=history, usage=Usage(800, 99))
    over = LoopState(history=history, usage=Usage(800, 101))

    assert rules.before_call(under, elapsed_s=0) is None
    stop = rules.before_call(over, elapsed_s=0)
    assert stop is not None and stop.reason == "token_budget"
    assert stop.detail == (
        "901 tokens used; the next call (~100 prompt tokens) would pass the budget of 1000"
    )


def test_a_cost_budget_stops_before_a_call_that_would_pass_it_at_the_price_paid_so_far():
    rules = StopRules(max_iterations=5, max_cost_usd=0.010)
    history = (Message("user", "x" * 4_000),)  # ~1,000 prompt tokens next time
    # $0.008 for 1,000 tokens so far: the next call costs ~$0.008 more.
    state = LoopState(history=history, usage=Usage(900, 100), cost_usd=0.008)

    stop = rules.before_call(state, elapsed_s=0)

    assert stop is not None and stop.reason == "cost_budget"
    assert stop.detail == (
        "$0.0080 spent; the next call (~$0.0080) would pass the budget of $0.0100"
    )


def test_an_unknown_price_never_stops_for_cost():
    rules = StopRules(max_iterations=5, max_cost_usd=0.01)
    state = LoopState(history=PROMPT, usage=Usage(10**6, 10**6), cost_usd=None)

    assert rules.before_call(state, elapsed_s=0) is None


def test_a_time_budget_stops_before_an_iteration_like_the_last_would_pass_it():
    rules = StopRules(max_iterations=5, max_seconds=60)
    state = LoopState(history=PROMPT, iterations=(_done(1, duration_s=20.0),))

    assert rules.before_call(state, elapsed_s=39) is None
    stop = rules.before_call(state, elapsed_s=41)
    assert stop is not None and stop.reason == "time_budget"
    assert stop.detail.startswith("41s of 60s used;")


def test_the_time_budget_counts_from_the_start_of_the_run(make_loop: MakeLoop, model_server):
    clock = Clock()
    loop = make_loop(clock=clock, max_seconds=30)
    clock.now += 31  # setup and baseline took that long

    result = run_loop(loop, _model(model_server), start())

    assert result.stop_reason == "time_budget" and model_server.requests == []


def test_run_loop_asks_until_green_and_reports_every_iteration(
    make_loop: MakeLoop, scripted_sandbox, model_server: ScriptedModelServer
):
    model_server.script(Turn.reply(WRONG, usage=(50, 10)), Turn.reply(FIX, usage=(80, 10)))
    scripted_sandbox.script(FAIL, PASS)
    seen: list[tuple[int, ...]] = []

    result = run_loop(
        make_loop(), _model(model_server), start(), lambda its: seen.append(_numbers(its))
    )

    assert (result.stop_reason, result.stop_detail) == ("passed", "in iteration 2 of 5")
    assert [i.decision for i in result.iterations] == ["retry", "green"]
    assert seen == [(1,), (1, 2)]
    assert result.usage == Usage(130, 20) and result.changed == ("calc.py",)
    second = model_server.requests[1].messages
    assert second[-2]["content"] == WRONG and "assert -1 == 5" in second[-1]["content"]


def test_run_loop_makes_no_call_past_the_iteration_limit(
    make_loop: MakeLoop, scripted_sandbox, model_server: ScriptedModelServer
):
    model_server.script(WRONG, FIX.replace("a + b", "b - a"))
    scripted_sandbox.script(FAIL, FAIL)

    result = run_loop(make_loop(max_iterations=2), _model(model_server), start())

    assert result.stop_reason == "max_iterations" and len(model_server.requests) == 2
    assert result.stop_detail == "checks still failing after 2 iterations"


def test_a_failing_endpoint_stops_the_run_with_its_one_line_cause(
    make_loop: MakeLoop, model_server: ScriptedModelServer
):
    model_server.script(Turn.error(401, "bad key"))

    result = run_loop(make_loop(), _model(model_server), start())

    assert result.stop_reason == "model_error" and result.iterations == ()
    assert result.stop_detail.startswith("the endpoint rejected the API key (401)")


@pytest.mark.parametrize(
    ("fault", "reason", "detail"),
    [
        (SandboxError("the sandbox container is gone", "start again"), "sandbox_error",
         "the sandbox container is gone — start again"),
        (KeyboardInterrupt(), "interrupted", "interrupted during iteration 1"),
    ],
    ids=["sandbox-fault", "ctrl-c"],
)  # fmt: skip
def test_an_iteration_cut_short_mid_check_keeps_its_paid_reply_in_the_record(
    make_loop: MakeLoop, scripted_sandbox, model_server, fault, reason, detail
):
    model_server.script(Turn.reply(FIX, usage=(70, 7)))
    scripted_sandbox.script(Exec("pytest", raises=fault))

    result = run_loop(make_loop(), _model(model_server), start())

    assert (result.stop_reason, result.stop_detail) == (reason, detail)
    (cut,) = result.iterations
    assert (cut.reply, cut.decision, cut.checks) == (FIX, "stop", ())
    assert result.usage == Usage(70, 7)  # the reply was paid for


def test_resume_replays_recorded_iterations_without_a_call_or_a_check(
    make_loop: MakeLoop, scripted_sandbox, tree
):
    first = _done(1, reply_text=WRONG, edits=("applied",), feedback="tests failed")

    state = make_loop().resume(start(), [first])

    assert "a * b" in tree.read("calc.py")
    assert state.iterations == (first,) and state.tried and state.changed == {"calc.py"}
    assert state.history[-2:] == (Message("assistant", WRONG), Message("user", "tests failed"))
    assert scripted_sandbox.syncs == [("calc.py",)] and scripted_sandbox.commands == []


def test_resume_refuses_an_iteration_that_no_longer_applies_as_recorded(make_loop: MakeLoop):
    first = _done(1, reply_text=STALE, edits=("applied",))

    with pytest.raises(WorkspaceError, match="edits of iteration 1 no longer apply"):
        make_loop().resume(start(), [first])


def _model(server: ScriptedModelServer) -> OpenAIModel:
    config = ModelConfig(name="test-model", base_url=server.base_url, api_key="k", max_retries=0)
    return OpenAIModel(config)


def _numbers(iterations: tuple[Iteration, ...]) -> tuple[int, ...]:
    return tuple(i.number for i in iterations)


def _done(
    number: int,
    *,
    duration_s: float = 1.0,
    reply_text: str = PROSE,
    edits: tuple[str, ...] = (),
    feedback: str = "again",
) -> Iteration:
    outcomes = tuple(EditOutcome("calc.py", n + 1, s, "") for n, s in enumerate(edits))  # type: ignore[arg-type]
    return Iteration(number, 10, reply_text, Usage(10, 1), 0.0, 0.1, outcomes, (), "retry",
                     feedback, duration_s)  # fmt: skip


def test_passing_checks_on_a_tree_back_where_it_started_are_not_green(
    make_loop: MakeLoop, scripted_sandbox
):
    there_and_back = FIX + "\n" + block("    return a + b\n", "    return a - b\n")
    scripted_sandbox.script(PASS)

    decision, state = make_loop(baseline_green=True).step(start(), reply(there_and_back))

    assert isinstance(decision, Retry)
    assert "leave every file exactly as it was" in decision.feedback
    assert state.originals == {"calc.py": CALC}


def test_a_task_already_done_when_every_check_passed_before_stops_with_nothing_to_do(
    make_loop: MakeLoop, scripted_sandbox
):
    said = "The parser already accepts minutes.\n\nNOTHING TO CHANGE: parse handles 'm' since v2"

    decision, state = make_loop(baseline_green=True).step(start(), reply(said))

    assert decision == Stop("nothing_to_do", "parse handles 'm' since v2")
    assert scripted_sandbox.syncs == [] and state.iterations[-1].decision == "stop"


def test_claiming_nothing_to_do_while_the_checks_fail_is_answered_not_believed(
    make_loop: MakeLoop,
):
    decision, _ = make_loop().step(start(), reply("NOTHING TO CHANGE: looks fine to me"))

    assert isinstance(decision, Retry) and "there is work left" in decision.feedback


def test_the_iteration_limit_after_green_checks_without_a_change_says_so():
    rules = StopRules(max_iterations=1)
    green = _done(1)
    green = Iteration(**{**green.__dict__, "checks": (CheckResult("test", "t", True, 0, 0.1, ""),)})
    state = LoopState(history=PROMPT, iterations=(green,))

    stop = rules.before_call(state, elapsed_s=0)

    assert stop == Stop("max_iterations", "no change that passes after 1 iterations")


def test_a_reply_asking_to_see_code_gets_it_next_turn_and_is_not_idle(
    make_loop: MakeLoop, scripted_sandbox
):
    decision, state = make_loop().step(start(), reply("SHOW calc.py"))

    assert isinstance(decision, Retry) and "return a - b" in decision.feedback
    assert scripted_sandbox.syncs == [] and state.idle == 0


def test_asking_again_for_what_was_shown_counts_as_idle(make_loop: MakeLoop):
    loop = make_loop()
    _, state = loop.step(start(), reply("SHOW calc.py"))

    _, state = loop.step(state, reply("SHOW calc.py"))

    assert state.idle == 1


def test_feedback_shows_the_changed_region_of_a_long_file_not_the_whole_file(
    make_loop: MakeLoop, scripted_sandbox, tree
):
    body = "".join(f"def helper_{n}():\n    return {n}\n\n\n" for n in range(150))
    (tree.root / "calc.py").write_text(body + CALC)
    scripted_sandbox.script(FAIL)

    decision, _ = make_loop().step(start(), reply(WRONG))

    assert isinstance(decision, Retry) and "return a * b" in decision.feedback
    assert "def helper_3()" not in decision.feedback  # far from the change: not resent


def test_a_rerun_on_a_branch_that_already_passes_stops_at_a_reply_that_proposes_nothing(
    make_loop: MakeLoop, scripted_sandbox
):
    loop = make_loop(baseline_green=True, continued=True)

    decision, _ = loop.step(start(), reply("The fix from the earlier run is already there."))

    assert isinstance(decision, Stop) and decision.reason == "nothing_to_do"
    assert decision.detail.startswith("the branch already passes its checks; The fix from")


def test_a_first_run_whose_tests_already_pass_still_asks_for_the_change(make_loop: MakeLoop):
    decision, _ = make_loop(baseline_green=True).step(start(), reply("Looks done to me."))

    assert isinstance(decision, Retry)  # a feature may be asked for with every test green


# The hard cost cap: a model that knows its price is never called when the worst case of the
# call (its prompt, and a reply of the whole max_tokens, at its price) could pass the cap.


def _priced(server: ScriptedModelServer, max_tokens: int = 1_000) -> OpenAIModel:
    config = ModelConfig(
        name="test-model", base_url=server.base_url, api_key="k", max_retries=0,
        max_output_tokens=max_tokens, price_input_per_mtok=1.0, price_output_per_mtok=2.0,
    )  # fmt: skip
    return OpenAIModel(config)


def test_a_priced_model_is_never_called_for_a_reply_that_could_pass_the_cap(
    make_loop: MakeLoop, scripted_sandbox, model_server: ScriptedModelServer
):
    # The first call could cost $0.002 at most; it costs $0.0014 and its tests fail. The next
    # could cost another $0.002 or so, past the $0.003 cap: nothing is scripted for it.
    model_server.script(Turn.reply(WRONG, usage=(1_000, 200)))
    scripted_sandbox.script(FAIL)

    result = run_loop(make_loop(max_cost_usd=0.003), _priced(model_server), start())

    assert result.stop_reason == "cost_budget" and len(model_server.requests) == 1
    assert result.stop_detail.startswith("$0.0014 spent; the next call could cost up to $0.002")
    assert result.stop_detail.endswith("and a max_tokens reply), past the cap of $0.0030")


def test_a_cap_below_the_first_calls_worst_case_stops_before_any_call(
    make_loop: MakeLoop, model_server: ScriptedModelServer
):
    result = run_loop(make_loop(max_cost_usd=0.001), _priced(model_server), start())

    assert result.stop_reason == "cost_budget" and model_server.requests == []
    assert result.stop_detail == (
        "$0.0000 spent; the next call could cost up to $0.0020 (3 prompt tokens and a "
        "max_tokens reply), past the cap of $0.0010"
    )


def test_the_worst_case_rule_lets_a_call_through_that_fits_the_cap_even_at_its_longest(
    make_loop: MakeLoop, scripted_sandbox, model_server: ScriptedModelServer
):
    model_server.script(Turn.reply(FIX, usage=(1_000, 200)))
    scripted_sandbox.script(PASS)

    result = run_loop(make_loop(max_cost_usd=0.003), _priced(model_server), start())

    assert result.stop_reason == "passed"


def test_a_model_without_a_price_keeps_the_estimate_rule(model_server: ScriptedModelServer):
    rules = StopRules(max_iterations=5, max_cost_usd=0.010)
    history = (Message("user", "x" * 4_000),)  # ~1,000 prompt tokens next time
    state = LoopState(history=history, usage=Usage(900, 100), cost_usd=0.008)

    stop = rules.before_call(state, 0, _model(model_server))  # no price: no worst case

    assert stop is not None
    assert stop.detail == "$0.0080 spent; the next call (~$0.0080) would pass the budget of $0.0100"


def test_each_iteration_records_the_rung_that_answered(make_loop: MakeLoop, scripted_sandbox):
    scripted_sandbox.script(PASS)
    answered = Completion(FIX, Usage(10, 1), "strong-model", latency_s=0.1, rung="strong")

    _, state = make_loop().step(start(), answered)

    assert state.iterations[0].rung == "strong"


def test_feedback_on_failing_checks_carries_new_team_knowledge_once(
    tree: FileTree, scripted_sandbox: ScriptedSandbox, tmp_path: Path
) -> None:
    docs = tmp_path / "team"
    docs.mkdir()
    (docs / "arithmetic.md").write_text(
        "# Arithmetic\n\n## Adding\n\nThe calc add function returns the sum a + b; "
        "callers of add rely on it for totals.\n"
    )
    (docs / "deploys.md").write_text("# Deploys\n\nReleases are tagged from main.\n")
    options = kn.KnowledgeOptions(KnowledgeConfig(dirs=(str(docs),)), tmp_path / "k.sqlite")
    knowledge = kn.prepare(options)
    spec = TaskSpec(title="Fix add", description="add subtracts", test="pytest -q", lint=False)
    loop = Loop(
        spec=spec,
        rules=StopRules(max_iterations=5),
        tree=tree,
        sandbox=scripted_sandbox,
        python_repo=True,
        recall=kn.Recall(knowledge, spec),
    )
    scripted_sandbox.script(FAIL, FAIL)

    first, state = loop.step(start(), reply(WRONG))
    undo = block("    return a * b\n", "    return a - b\n", why="Back.")
    second, state = loop.step(state, reply(undo))

    assert isinstance(first, Retry) and isinstance(second, Retry)
    assert '<untrusted source="team knowledge">' in first.feedback
    assert "returns the sum a + b" in first.feedback and "Releases" not in first.feedback
    assert [(g.source.split(":")[0].rsplit("/", 1)[-1], g.iteration) for g in state.grounding] == [
        ("arithmetic.md", 1)
    ]
    assert "team knowledge" not in second.feedback  # shown once; it is in the history
    knowledge.close()
