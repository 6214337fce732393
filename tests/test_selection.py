"""Test selection: after a change, the tests most likely to fail run first and a failure
there ends the check early; a pass is always followed by the full suite, held to the
baseline. Driven through the strict scripted sandbox, and once through real Docker."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest

from codebot.checks import Expectation, baseline_checks, run_checks
from codebot.records import ExecResult
from codebot.sandbox import DockerSandbox
from codebot.selection import SELECT_FROM_S, FirstPass, plan, split_pytest
from codebot.spec import TaskSpec
from tests.support.scripted_sandbox import Exec, ScriptedSandbox

SPEC = TaskSpec(title="t", description="d", test="pytest -q tests", lint=False)
SLOW = SELECT_FROM_S + 2.0  # a baseline suite slow enough for a first pass to pay
NOT_RUN = "the full suite was not run"


def junit(*cases: str) -> bytes:
    """cases like "tests/test_a.py::TestK::test_x=failed", as pytest's xunit1 family writes
    them: classname the file's dotted path and its classes, name the test, file the file."""
    inner = {"passed": "", "failed": "<failure>assert 1 == 2</failure>",
             "errors": "<error>e</error>", "skipped": "<skipped/>"}  # fmt: skip
    body = []
    for case in cases:
        node, outcome = case.rsplit("=", 1)
        file, *classes, name = node.split("::")
        classname = ".".join([file.removesuffix(".py").replace("/", "."), *classes])
        body.append(
            f"<testcase classname={quoteattr(classname)} name={quoteattr(name)} "
            f'file="{file}">{inner[outcome]}</testcase>'
        )
    return f"<testsuites><testsuite>{''.join(body)}</testsuite></testsuites>".encode()


def baseline(
    sandbox: ScriptedSandbox, *cases: str, spec: TaskSpec = SPEC, output: str = ""
) -> Expectation:
    sandbox.script(Exec(spec.test, 1, output, junit=junit(*cases), duration_s=SLOW))
    return baseline_checks(sandbox, spec, python_repo=False)[1]


BASE = ("tests/test_a.py::test_ok=passed", "tests/test_a.py::TestK::test_bad=failed")


# -- what the baseline teaches --------------------------------------------------------------


def test_the_baseline_turns_its_failing_tests_into_pytest_ids(scripted_sandbox: ScriptedSandbox):
    expect = baseline(
        scripted_sandbox,
        *BASE,
        "tests/sub/test_b.py::test_p[x-1]=errors",
        "tests/sub/test_b.py::test_skip=skipped",
    )

    assert expect.first == FirstPass(
        head=("pytest", "-q"),
        scope=("tests",),
        failing=("tests/test_a.py::TestK::test_bad", "tests/sub/test_b.py::test_p[x-1]"),
        test_dirs=frozenset({"tests", "tests/sub"}),
    )


def test_a_fast_suite_learns_no_selection(scripted_sandbox: ScriptedSandbox):
    scripted_sandbox.script(Exec("pytest", 1, junit=junit(*BASE), duration_s=0.5))

    _, expect = baseline_checks(scripted_sandbox, SPEC, python_repo=False)

    assert expect.first is None


def test_ids_are_made_relative_to_the_workspace_from_the_rootdir_in_the_header(
    scripted_sandbox: ScriptedSandbox,
):
    header = "platform linux\nrootdir: /workspace/pkg, configfile: pytest.ini\n"
    expect = baseline(scripted_sandbox, *BASE, output=header)

    assert expect.first is not None
    assert expect.first.failing == ("pkg/tests/test_a.py::TestK::test_bad",)


def test_a_rootdir_outside_the_workspace_learns_no_selection(scripted_sandbox: ScriptedSandbox):
    assert baseline(scripted_sandbox, *BASE, output="rootdir: /elsewhere\n").first is None


def test_a_name_pytest_may_not_take_back_selects_its_file_instead(
    scripted_sandbox: ScriptedSandbox,
):
    expect = baseline(
        scripted_sandbox,
        "tests/test_a.py::test_ok=passed",
        "tests/test_a.py::test_p[[nested]]=failed",
        "tests/test_c.py::test_p[caf\u00e9]=failed",
        "pkg/mod.py::pkg.mod.func=failed",  # a doctest: its file is no test file, so nothing
    )

    assert expect.first is not None
    assert expect.first.failing == ("tests/test_a.py", "tests/test_c.py")


def test_when_every_test_failed_the_first_pass_would_be_the_suite_so_none_is_learned(
    scripted_sandbox: ScriptedSandbox,
):
    expect = baseline(scripted_sandbox, "tests/test_a.py::test_bad=failed")

    assert expect.first is not None and expect.first.failing == ()
    assert plan(expect.first, ["src/app.py"]) is None


# -- the first pass, then the full suite -----------------------------------------------------


def test_a_failing_first_pass_is_the_test_check_and_the_full_suite_does_not_run(
    scripted_sandbox: ScriptedSandbox,
):
    expect = baseline(scripted_sandbox, *BASE)
    scripted_sandbox.script(
        Exec("-x", 1, junit=junit("tests/test_a.py::TestK::test_bad=failed"), duration_s=0.3)
    )

    (test,) = run_checks(scripted_sandbox, SPEC, ["src/app.py"], python_repo=False, expect=expect)

    assert scripted_sandbox.commands == [
        "pytest -q tests",
        "pytest -q -x -- tests/test_a.py::TestK::test_bad",
    ]
    assert not test.passed and test.command == scripted_sandbox.commands[-1]
    assert test.reason == f"1 test failed (ran the 1 test most likely to fail first; {NOT_RUN})"
    assert [t.name for t in test.failing_tests] == ["tests.test_a.TestK::test_bad"]
    assert test.duration_s == 0.3


def test_a_passing_first_pass_is_followed_by_the_full_suite(scripted_sandbox: ScriptedSandbox):
    expect = baseline(scripted_sandbox, *BASE)
    now = junit("tests/test_a.py::test_ok=passed", "tests/test_a.py::TestK::test_bad=passed")
    scripted_sandbox.script(
        Exec("-x", 0, junit=junit("tests/test_a.py::TestK::test_bad=passed"), duration_s=0.3),
        Exec("pytest -q tests", 0, "2 passed in 2.9s", junit=now, duration_s=3.0),
    )

    (test,) = run_checks(scripted_sandbox, SPEC, ["src/app.py"], python_repo=False, expect=expect)

    assert scripted_sandbox.commands[-1] == "pytest -q tests"
    assert test.passed and test.command == "pytest -q tests" and test.tests_passed == 2
    assert test.duration_s == 3.3
    assert test.output.startswith("ran the 1 test most likely to fail first: passed in 0.30s\n")
    assert "$ pytest -q -x -- tests/test_a.py::TestK::test_bad\n" in test.output
    assert test.output.endswith("then the full suite:\n2 passed in 2.9s")


def test_a_failing_full_suite_after_a_passing_first_pass_fails_the_check(
    scripted_sandbox: ScriptedSandbox,
):
    expect = baseline(scripted_sandbox, *BASE)
    now = junit("tests/test_a.py::test_ok=failed", "tests/test_a.py::TestK::test_bad=passed")
    scripted_sandbox.script(
        Exec("-x", 0, junit=junit("tests/test_a.py::TestK::test_bad=passed")),
        Exec("pytest -q tests", 1, junit=now),
    )

    (test,) = run_checks(scripted_sandbox, SPEC, [], python_repo=False, expect=expect)

    assert not test.passed and test.reason == "1 test failed"
    assert [t.name for t in test.failing_tests] == ["tests.test_a::test_ok"]


def test_a_test_skipped_at_the_first_pass_and_deleted_is_caught_by_the_full_suite(
    scripted_sandbox: ScriptedSandbox,
):
    expect = baseline(scripted_sandbox, *BASE)
    scripted_sandbox.script(
        Exec("-x", 0, junit=junit("tests/test_a.py::TestK::test_bad=skipped")),
        Exec("pytest -q tests", 0, junit=junit("tests/test_a.py::test_ok=passed")),
    )

    (test,) = run_checks(scripted_sandbox, SPEC, [], python_repo=False, expect=expect)

    assert not test.passed
    assert test.reason == "1 test that ran before the change did not pass now"
    assert [t.name for t in test.failing_tests] == ["tests.test_a.TestK::test_bad"]
    assert "did not run now" in test.failing_tests[0].detail


def test_a_first_pass_that_cannot_find_its_tests_leaves_the_verdict_to_the_full_suite(
    scripted_sandbox: ScriptedSandbox,
):
    expect = baseline(scripted_sandbox, *BASE)
    scripted_sandbox.script(
        Exec("-x", 4, "ERROR: not found: tests/test_a.py::TestK::test_bad", junit=junit()),
        Exec("pytest -q tests", 0, junit=junit("tests/test_a.py::test_ok=passed")),
    )

    (test,) = run_checks(scripted_sandbox, SPEC, [], python_repo=False, expect=expect)

    assert not test.passed and test.command == "pytest -q tests"
    assert "did not run now" in test.failing_tests[0].detail
    assert test.output.startswith(
        "ran the 1 test most likely to fail first: could not run (no tests ran (exit code 4))"
    )


class TimingOut(ScriptedSandbox):
    """The scripted sandbox, with every command it answers marked as timed out."""

    def run(
        self, command: str, timeout_s: float, env: Mapping[str, str] | None = None
    ) -> ExecResult:
        return replace(super().run(command, timeout_s, env), timed_out=True)


def test_a_first_pass_that_times_out_is_the_test_check():
    sandbox = TimingOut()
    expect = Expectation(first=FirstPass(("pytest",), failing=("tests/test_a.py::t",)))
    sandbox.script(Exec("-x", 124, duration_s=float(SPEC.timeout)))

    (test,) = run_checks(sandbox, SPEC, [], python_repo=False, expect=expect)

    sandbox.assert_done()
    assert not test.passed
    assert (
        test.reason
        == f"timed out after {SPEC.timeout}s (ran the 1 test most likely to fail first; {NOT_RUN})"
    )


def test_changed_test_files_in_the_suites_scope_run_first(scripted_sandbox: ScriptedSandbox):
    expect = baseline(scripted_sandbox, *BASE)
    changed = ["src/app.py", "tests/test_new.py", "tests/conftest.py", "docs/test_x.py",
               "tests/test_a.py"]  # fmt: skip
    scripted_sandbox.script(
        Exec("-x", 1, junit=junit("tests/test_new.py::test_n=failed")),
    )

    (test,) = run_checks(scripted_sandbox, SPEC, changed, python_repo=False, expect=expect)

    # test_a.py holds the baseline's failing test, so its file replaces the id
    assert scripted_sandbox.commands[-1] == "pytest -q -x -- tests/test_new.py tests/test_a.py"
    assert "ran the 2 changed test files most likely to fail first" in test.reason


def test_without_select_the_full_suite_runs_alone(scripted_sandbox: ScriptedSandbox):
    expect = baseline(scripted_sandbox, *BASE)
    scripted_sandbox.script(Exec("pytest -q tests", 1, junit=junit(*BASE)))

    (test,) = run_checks(scripted_sandbox, SPEC, [], python_repo=False, expect=expect, select=False)

    assert scripted_sandbox.commands[-1] == "pytest -q tests" and NOT_RUN not in test.reason


def test_a_malicious_test_name_and_path_are_quoted(scripted_sandbox: ScriptedSandbox):
    evil = "tests/test_a.py::test_p[$(touch /tmp/pwned); echo 'owned']"
    expect = baseline(scripted_sandbox, "tests/test_a.py::test_ok=passed", f"{evil}=failed")
    new = "tests/test_`reboot`.py"
    scripted_sandbox.script(Exec("-x", 1, junit=junit(f"{evil}=failed")))

    run_checks(scripted_sandbox, SPEC, [new], python_repo=False, expect=expect)

    command = scripted_sandbox.commands[-1]
    assert shlex.split(command) == ["pytest", "-q", "-x", "--", evil, new]
    assert command.endswith(f"-- {shlex.quote(evil)} {shlex.quote(new)}")


# -- which commands can be narrowed ----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "tox -e py312",
        "nox -s tests",
        "make test",
        "python -m unittest discover",
        "pytest && ruff check .",
        "pytest | tee log",
        "cd sub; pytest",
        "pytest $PYTEST_ARGS",
        "pytest tests/*.py",
        "uv run pytest",
        "pytest --cov tests",  # --cov takes an optional value: is `tests` it, or a path?
        "pytest --some-plugin-option tests",
        "pytest 'unbalanced",
    ],
)
def test_a_command_that_is_not_a_plain_pytest_call_is_never_narrowed(command: str):
    assert split_pytest(command) is None


@pytest.mark.parametrize(
    ("command", "head", "paths"),
    [
        ("pytest", ("pytest",), ()),
        ("py.test -q tests/unit", ("py.test", "-q"), ("tests/unit",)),
        (
            "python3 -m pytest -q -k 'not slow' tests",
            ("python3", "-m", "pytest", "-q", "-k", "not slow"),
            ("tests",),
        ),
        (
            ".venv/bin/pytest -x -pno:randomly --tb=short -n 2 a b",
            (".venv/bin/pytest", "-x", "-pno:randomly", "--tb=short", "-n", "2"),
            ("a", "b"),
        ),
        ("CI=1 pytest --cov=src -- tests", ("CI=1", "pytest", "--cov=src"), ("tests",)),
        (
            "pytest --unknown-flag --maxfail 3",
            ("pytest", "--unknown-flag", "--maxfail", "3"),
            (),
        ),
    ],
)
def test_a_plain_pytest_call_splits_into_its_options_and_its_paths(
    command: str, head: tuple[str, ...], paths: tuple[str, ...]
):
    assert split_pytest(command) == (head, paths)


def test_a_narrowed_command_keeps_an_assignment_an_assignment():
    first = FirstPass(("CI=a b", "pytest", "-k", "not slow"), failing=("tests/test_a.py::t",))

    chosen = plan(first, [])

    assert chosen is not None
    assert chosen.command == "CI='a b' pytest -k 'not slow' -x -- tests/test_a.py::t"


def test_a_command_that_cannot_be_narrowed_runs_the_full_suite_every_time(
    scripted_sandbox: ScriptedSandbox,
):
    make = TaskSpec(title="t", description="d", test="make test", lint=False)
    expect = baseline(scripted_sandbox, *BASE, spec=make)
    scripted_sandbox.script(Exec("make test", 1, junit=junit(*BASE)))

    run_checks(scripted_sandbox, make, ["tests/test_a.py"], python_repo=False, expect=expect)

    assert expect.first is None and scripted_sandbox.commands[-1] == "make test"


# -- against the real sandbox ------------------------------------------------------------------

SLOW_TEST = "import time\n\n\ndef test_slow():\n    time.sleep(3)\n"
FAILING = "def test_one():\n    assert 1 == 2\n\n\ndef test_two():\n    assert 2 == 3\n"


@pytest.mark.docker
def test_the_first_pass_stops_at_the_first_failure_without_the_slow_suite(
    shared_sandbox: DockerSandbox, tmp_path: Path
) -> None:
    assert (
        shared_sandbox.run("find . /tmp -mindepth 1 -delete 2>/dev/null; true", 10).exit_code == 0
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_slow.py").write_text(SLOW_TEST)
    (tmp_path / "tests" / "test_failing.py").write_text(FAILING)
    shared_sandbox.sync(tmp_path)
    spec = TaskSpec(title="t", description="d", test="python3 -m pytest -q", lint=False)

    (before,), expect = baseline_checks(shared_sandbox, spec, python_repo=True)
    (after,) = run_checks(shared_sandbox, spec, [], python_repo=True, expect=expect)

    assert before.duration_s >= 3 and before.tests_failed == 2
    assert after.command == (
        "python3 -m pytest -q -x -- tests/test_failing.py::test_one tests/test_failing.py::test_two"
    )
    assert (after.passed, after.tests_failed, after.tests_passed) == (False, 1, 0)  # -x
    assert after.reason == f"1 test failed (ran the 2 tests most likely to fail first; {NOT_RUN})"
    assert after.duration_s < 2.5
    assert "assert 1 == 2" in after.failing_tests[0].detail
