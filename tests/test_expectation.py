"""A change passes its tests only if every test that ran before it still runs and passes:
skipping, deselecting, deleting or exiting early cannot pass for a fix. Driven through the
strict scripted sandbox, no Docker."""

from __future__ import annotations

from codebot.checks import Expectation, baseline_checks, run_checks
from codebot.spec import TaskSpec
from tests.support.scripted_sandbox import Exec, ScriptedSandbox

SPEC = TaskSpec(title="t", description="d", test="pytest -q", lint=False)


def junit(*cases: str) -> bytes:
    """cases like "m::t_ok=passed", "m::t_bad=failed", "mod=errors", "m::t_s=skipped"."""
    body = []
    for case in cases:
        name, outcome = case.split("=")
        classname, _, test = name.rpartition("::")
        inner = {"passed": "", "failed": "<failure>f</failure>", "errors": "<error>e</error>",
                 "skipped": "<skipped/>"}[outcome]  # fmt: skip
        body.append(f'<testcase classname="{classname}" name="{test}">{inner}</testcase>')
    return f"<testsuites><testsuite>{''.join(body)}</testsuite></testsuites>".encode()


def baseline(sandbox: ScriptedSandbox, report: bytes) -> Expectation:
    sandbox.script(Exec("pytest", 1, junit=report))
    return baseline_checks(sandbox, SPEC, python_repo=False)[1]


def test_the_baseline_holds_every_test_that_ran_but_not_skips_or_collection_errors(
    scripted_sandbox: ScriptedSandbox,
):
    expect = baseline(
        scripted_sandbox,
        junit(
            "m::t_ok=passed",
            "m::t_bad=failed",
            "m::t_err=errors",
            "m::t_s=skipped",
            "pkg.mod=errors",
        ),
    )

    assert expect == Expectation(frozenset({"m::t_ok", "m::t_bad", "m::t_err"}), report=True)


def test_a_test_that_ran_before_and_is_gone_now_fails_the_check_although_pytest_exited_0(
    scripted_sandbox: ScriptedSandbox,
):
    expect = baseline(scripted_sandbox, junit("m::t_ok=passed", "m::t_bad=failed"))
    scripted_sandbox.script(Exec("pytest", 0, junit=junit("m::t_ok=passed")))

    (test,) = run_checks(scripted_sandbox, SPEC, (), python_repo=False, expect=expect)

    assert not test.passed
    assert test.reason == "1 test that ran before the change did not pass now"
    assert [t.name for t in test.failing_tests] == ["m::t_bad"]
    assert "did not run now" in test.failing_tests[0].detail


def test_a_test_skipped_now_that_ran_before_fails_the_check(scripted_sandbox: ScriptedSandbox):
    expect = baseline(scripted_sandbox, junit("m::t_bad=failed"))
    scripted_sandbox.script(Exec("pytest", 0, junit=junit("m::t_bad=skipped")))

    (test,) = run_checks(scripted_sandbox, SPEC, (), python_repo=False, expect=expect)

    assert not test.passed and "was skipped now" in test.failing_tests[0].detail


def test_a_run_that_writes_no_report_when_the_baseline_did_fails_the_check(
    scripted_sandbox: ScriptedSandbox,
):
    expect = baseline(scripted_sandbox, junit("m::t_bad=failed"))
    scripted_sandbox.script(Exec("pytest", 0, "all good"))  # e.g. os._exit(0) mid-run

    (test,) = run_checks(scripted_sandbox, SPEC, (), python_repo=False, expect=expect)

    assert not test.passed
    assert test.reason.startswith("the test run wrote no report, though it did before")


def test_an_unreadable_report_fails_the_check_with_its_reason(scripted_sandbox: ScriptedSandbox):
    scripted_sandbox.script(Exec("pytest", 0, junit=b'<?xml version="1.0" encoding="x-bad"?><a/>'))

    (test,) = run_checks(scripted_sandbox, SPEC, (), python_repo=False)

    assert not test.passed and test.reason.startswith("the test report cannot be read")


def test_new_tests_and_all_held_tests_passing_is_a_pass(scripted_sandbox: ScriptedSandbox):
    expect = baseline(scripted_sandbox, junit("m::t_ok=passed", "m::t_bad=failed"))
    now = junit("m::t_ok=passed", "m::t_bad=passed", "m::t_new=passed")
    scripted_sandbox.script(Exec("pytest", 0, junit=now))

    (test,) = run_checks(scripted_sandbox, SPEC, (), python_repo=False, expect=expect)

    assert test.passed and test.tests_passed == 3 and test.reason == ""
