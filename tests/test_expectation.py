"""A change passes its tests only if every test that ran before it still runs and passes:
skipping, deselecting, deleting or exiting early cannot pass for a fix; and it fails the lint
only with findings it introduced. Driven through the strict scripted sandbox, no Docker."""

from __future__ import annotations

import json

from codebot.checks import Expectation, baseline_checks, run_checks
from codebot.feedback import feedback_for_model
from codebot.lintdiff import BASELINE_LINT_FILE
from codebot.records import CheckResult
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


# -- lint: only what the change introduced fails it -------------------------------------

RUFF_SPEC = TaskSpec(title="t", description="d", test="pytest -q", lint=None)
PASSING = junit("m::t_ok=passed")


def ruff(*findings: tuple[str, int, str]) -> str:
    """ruff's --output-format=json-lines, one record per (path, row, message) of an F401."""
    return "".join(
        json.dumps(
            {
                "code": "F401",
                "filename": f"/workspace/{path}",
                "location": {"column": 8, "row": row},
                "message": message,
            }
        )
        + "\n"
        for path, row, message in findings
    )


OLD_OS = ("legacy.py", 1, "`os` imported but unused")
NEW_SYS = ("legacy.py", 2, "`sys` imported but unused")


def ruff_baseline(sandbox: ScriptedSandbox, findings: str) -> Expectation:
    """The baseline: ruff over the whole repo (its findings in a file), then the tests."""
    sandbox.place(BASELINE_LINT_FILE, findings.encode())
    sandbox.script(Exec("ruff check", 0), Exec("pytest", 0, junit=PASSING))
    checks, expect = baseline_checks(sandbox, RUFF_SPEC, python_repo=True)
    assert [c.name for c in checks] == ["test"]  # old findings are no check of their own
    return expect


def lint_after(
    sandbox: ScriptedSandbox, expect: Expectation, exit_code: int, output: str
) -> CheckResult:
    sandbox.script(Exec("ruff check", exit_code, output), Exec("pytest", 0, junit=PASSING))
    lint, _test = run_checks(sandbox, RUFF_SPEC, ["legacy.py"], python_repo=True, expect=expect)
    return lint


def test_the_baseline_lints_the_whole_repo_with_ruff(scripted_sandbox: ScriptedSandbox):
    ruff_baseline(scripted_sandbox, ruff(OLD_OS))

    assert scripted_sandbox.commands[0].endswith(f"--output-file={BASELINE_LINT_FILE} .")


def test_a_preexisting_unused_import_in_a_touched_file_no_longer_fails_the_lint(
    scripted_sandbox: ScriptedSandbox,
):
    expect = ruff_baseline(scripted_sandbox, ruff(OLD_OS))

    lint = lint_after(scripted_sandbox, expect, 1, ruff(OLD_OS))

    assert (lint.passed, lint.exit_code, lint.preexisting) == (True, 1, 1)
    assert lint.reason == "no new findings (1 pre-existing left alone)"
    assert lint.output == ""


def test_a_new_unused_import_fails_the_lint_with_the_old_one_left_alone(
    scripted_sandbox: ScriptedSandbox,
):
    expect = ruff_baseline(scripted_sandbox, ruff(OLD_OS))

    lint = lint_after(scripted_sandbox, expect, 1, ruff(OLD_OS, NEW_SYS))

    assert (lint.passed, lint.preexisting) == (False, 1)
    assert lint.reason == "1 new finding (1 pre-existing left alone)"
    assert lint.output == "legacy.py:2:8: F401 `sys` imported but unused"
    assert "## lint failed: 1 new finding (1 pre-existing left alone)" in feedback_for_model(
        [lint], 1000
    )


def test_a_line_shift_above_a_preexisting_finding_is_not_a_new_finding(
    scripted_sandbox: ScriptedSandbox,
):
    expect = ruff_baseline(scripted_sandbox, ruff(OLD_OS))

    lint = lint_after(scripted_sandbox, expect, 1, ruff(("legacy.py", 30, OLD_OS[2])))

    assert lint.passed and lint.preexisting == 1


def test_when_the_baseline_cannot_be_read_every_finding_fails_the_lint(
    scripted_sandbox: ScriptedSandbox,
):
    scripted_sandbox.script(Exec("ruff check", 2, "error: Failed to parse pyproject.toml"))
    scripted_sandbox.script(Exec("pytest", 0, junit=PASSING))
    expect = baseline_checks(scripted_sandbox, RUFF_SPEC, python_repo=True)[1]

    lint = lint_after(scripted_sandbox, expect, 1, ruff(OLD_OS))

    assert (expect.lint, lint.passed, lint.reason) == (None, False, "1 finding")


def test_ruff_that_cannot_lint_fails_the_lint_with_its_own_words(
    scripted_sandbox: ScriptedSandbox,
):
    expect = ruff_baseline(scripted_sandbox, ruff(OLD_OS))

    lint = lint_after(scripted_sandbox, expect, 2, "error: Failed to parse pyproject.toml")

    assert (lint.passed, lint.reason) == (False, "exit code 2")
    assert lint.output == "error: Failed to parse pyproject.toml"


CONFIGURED = TaskSpec(title="t", description="d", test="pytest -q", lint="flake8 .")
FLAKE8_OLD = "./legacy.py:1:1: F401 'os' imported but unused\n"
FLAKE8_NEW = "./legacy.py:2:1: F401 'sys' imported but unused\n"


def flake8_baseline(sandbox: ScriptedSandbox, exit_code: int, output: str) -> Expectation:
    sandbox.script(Exec("flake8", exit_code, output), Exec("pytest", 0, junit=PASSING))
    return baseline_checks(sandbox, CONFIGURED, python_repo=True)[1]


def flake8_after(
    sandbox: ScriptedSandbox, expect: Expectation, exit_code: int, output: str
) -> CheckResult:
    sandbox.script(Exec("flake8", exit_code, output), Exec("pytest", 0, junit=PASSING))
    lint, _test = run_checks(sandbox, CONFIGURED, ["legacy.py"], python_repo=True, expect=expect)
    return lint


def test_the_baselines_configured_lint_check_shows_its_own_findings(
    scripted_sandbox: ScriptedSandbox,
):
    scripted_sandbox.script(Exec("flake8", 1, FLAKE8_OLD), Exec("pytest", 0, junit=PASSING))

    lint, _test = baseline_checks(scripted_sandbox, CONFIGURED, python_repo=True)[0]

    assert (lint.passed, lint.reason, lint.output) == (False, "exit code 1", FLAKE8_OLD)


def test_a_configured_lint_repeating_only_old_findings_passes_with_them_noted(
    scripted_sandbox: ScriptedSandbox,
):
    expect = flake8_baseline(scripted_sandbox, 1, FLAKE8_OLD)
    shifted = FLAKE8_OLD.replace(":1:1:", ":4:1:")

    lint = flake8_after(scripted_sandbox, expect, 1, shifted)

    assert (lint.passed, lint.exit_code, lint.preexisting) == (True, 1, 1)
    assert lint.reason == "no new findings (1 pre-existing left alone)"


def test_a_new_line_in_a_configured_lints_output_fails_the_check(
    scripted_sandbox: ScriptedSandbox,
):
    expect = flake8_baseline(scripted_sandbox, 1, FLAKE8_OLD)

    lint = flake8_after(scripted_sandbox, expect, 1, FLAKE8_OLD + FLAKE8_NEW)

    assert (lint.passed, lint.preexisting) == (False, 1)
    assert lint.reason == "1 new finding (1 pre-existing left alone)"
    assert lint.output == FLAKE8_NEW.rstrip()


def test_a_configured_lint_clean_before_fails_now_even_without_new_output(
    scripted_sandbox: ScriptedSandbox,
):
    expect = flake8_baseline(scripted_sandbox, 0, "")

    lint = flake8_after(scripted_sandbox, expect, 1, "")  # e.g. `black --check -q`

    assert (lint.passed, lint.reason) == (False, "exit code 1")
