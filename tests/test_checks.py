"""Checks: JUnit and summary parsing, feedback for the model, and run_checks in a real sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebot.checks import baseline_checks, run_checks
from codebot.feedback import feedback_for_model, share_budget
from codebot.records import CheckResult, FailedTest
from codebot.sandbox import DockerSandbox
from codebot.spec import TaskSpec
from codebot.text import tail


def check(name: str = "test", **fields: object) -> CheckResult:
    base: dict[str, object] = {
        "name": name,
        "command": f"run-{name}",
        "passed": False,
        "exit_code": 1,
        "duration_s": 0.1,
        "output": "",
        "reason": "exit code 1",
    }
    return CheckResult(**{**base, **fields})  # type: ignore[arg-type]


def traceback(n: int, lines: int = 60) -> str:
    body = "\n".join(f"    frame {n}.{i}: some_call(argument)" for i in range(lines))
    return (
        f"def test_{n}():\n{body}\nE       assert {n} == -{n}\ntests/test_x.py:{n}: AssertionError"
    )


# -- trimming and feedback for the model ------------------------------------------------


def test_tail_keeps_the_end_and_starts_at_a_line() -> None:
    text = "\n".join(f"line {i}" for i in range(100))
    trimmed = tail(text, 60)
    assert len(trimmed) <= 60
    assert trimmed.endswith("line 99") and trimmed.startswith("[...]\nline ")
    assert tail("short", 60) == "short"


def test_share_budget_gives_short_texts_all_and_splits_the_rest() -> None:
    assert share_budget(["a" * 10, "b" * 500, "c" * 500], 310) == [10, 150, 150]
    assert share_budget(["a" * 10, "b" * 20], 1000) == [10, 20]


def test_feedback_is_empty_when_every_check_passed() -> None:
    assert feedback_for_model([check(passed=True, exit_code=0, reason="")], 1000) == ""


def test_feedback_names_each_failing_check_with_command_and_reason() -> None:
    checks = [
        check("build", passed=True, exit_code=0, reason="", output="built fine"),
        check("lint", output="a.py:1:8: F401 `os` imported but unused\nFound 1 error."),
        check("test", reason="timed out after 30s", exit_code=124, output="....slow"),
    ]
    text = feedback_for_model(checks, 1000)
    assert "built fine" not in text and "build" not in text
    assert "## lint failed: exit code 1\n$ run-lint\n" in text
    assert "F401 `os` imported but unused" in text
    assert "## test failed: timed out after 30s\n$ run-test\n" in text


def test_feedback_keeps_the_assertion_at_the_end_of_each_traceback() -> None:
    tests = tuple(FailedTest(f"tests/test_x.py::test_{n}", traceback(n)) for n in range(3))
    text = feedback_for_model([check(reason="3 tests failed", failing_tests=tests)], 500)
    assert len(text) <= 500 * 4
    for n in range(3):
        assert f"### tests/test_x.py::test_{n}\n" in text
        assert f"E       assert {n} == -{n}\ntests/test_x.py:{n}: AssertionError" in text
    assert "frame 0.0:" not in text  # the start of the long tracebacks was cut


def test_feedback_shares_the_budget_fairly_across_tests() -> None:
    long = [FailedTest(f"long_{n}", traceback(n, lines=200)) for n in range(2)]
    tests = (FailedTest("short", "E assert 1 == 2"), *long)
    text = feedback_for_model([check(failing_tests=tests)], 600)
    long_parts = text.split("### long_")[1:]
    assert "E assert 1 == 2" in text
    assert abs(len(long_parts[0]) - len(long_parts[1])) < 20
    assert 600 * 4 - 100 <= len(text) <= 600 * 4


def test_feedback_lists_fewer_tests_when_the_budget_is_small() -> None:
    tests = tuple(FailedTest(f"t{n}", traceback(n)) for n in range(40))
    text = feedback_for_model([check(failing_tests=tests, tests_failed=45)], 300)
    assert len(text) <= 1200
    assert "### t0\n" in text and "### t39\n" not in text
    assert "more failing tests)" in text
    assert "E       assert 0 == -0" in text


@pytest.mark.parametrize("max_tokens", [1, 10, 50, 200, 2000])
def test_feedback_never_exceeds_its_budget(max_tokens: int) -> None:
    tests = tuple(FailedTest(f"t{n}", traceback(n)) for n in range(8))
    checks = [check("lint", output="x" * 9000), check(failing_tests=tests)]
    assert len(feedback_for_model(checks, max_tokens)) <= max_tokens * 4


def test_feedback_is_deterministic() -> None:
    tests = tuple(FailedTest(f"t{n}", traceback(n, lines=n * 10)) for n in range(6))
    checks = [check("lint", output="E" * 3000), check(failing_tests=tests)]
    assert feedback_for_model(checks, 700) == feedback_for_model(list(checks), 700)


# -- run_checks in a real sandbox -------------------------------------------------------

MATH = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a + b\n"
TESTS = (
    "from math_ops import add, sub\n\n\n"
    "def test_add():\n    assert add(1, 2) == 3\n\n\n"
    "def test_sub():\n    assert sub(3, 1) == 2\n"
)


@pytest.fixture
def sandbox(shared_sandbox: DockerSandbox, tmp_path: Path) -> DockerSandbox:
    """The shared sandbox holding a fresh copy of a tiny repo (one passing, one failing test)."""
    assert (
        shared_sandbox.run("find . /tmp -mindepth 1 -delete 2>/dev/null; true", 10).exit_code == 0
    )
    (tmp_path / "math_ops.py").write_text(MATH)
    (tmp_path / "test_math_ops.py").write_text(TESTS)
    shared_sandbox.sync(tmp_path)
    return shared_sandbox


def spec(**fields: object) -> TaskSpec:
    values: dict[str, object] = {
        "title": "t",
        "description": "d",
        "test": "python3 -m pytest -q",
        "lint": False,
        "timeout": 60,
    }
    return TaskSpec(**{**values, **fields})  # type: ignore[arg-type]


@pytest.mark.docker
def test_pytest_failures_parsed_from_junit(sandbox: DockerSandbox) -> None:
    (result,) = run_checks(sandbox, spec(), [], python_repo=True)
    assert (result.name, result.passed, result.exit_code) == ("test", False, 1)
    assert (result.tests_passed, result.tests_failed, result.tests_errors) == (1, 1, 0)
    assert result.reason == "1 test failed"
    assert [t.name for t in result.failing_tests] == ["test_math_ops::test_sub"]
    assert "assert 4 == 2" in result.failing_tests[0].detail
    assert result.output.startswith("test_math_ops::test_sub\n")


@pytest.mark.docker
def test_passing_tests_give_a_passing_check(sandbox: DockerSandbox, tmp_path: Path) -> None:
    fixed = MATH.replace("def sub(a, b):\n    return a + b", "def sub(a, b):\n    return a - b")
    (tmp_path / "math_ops.py").write_text(fixed)
    sandbox.sync(tmp_path, ["math_ops.py"])
    (result,) = run_checks(sandbox, spec(), [], python_repo=True)
    assert (result.passed, result.reason, result.tests_passed, result.tests_failed) == (
        True,
        "",
        2,
        0,
    )
    assert "2 passed" in result.output


@pytest.mark.docker
def test_default_lint_runs_ruff_on_changed_python_files(
    sandbox: DockerSandbox, tmp_path: Path
) -> None:
    (tmp_path / "new mod.py").write_text("import os\n")
    (tmp_path / "unchanged_bad.py").write_text("import sys\n")
    (tmp_path / "notes.md").write_text("import os\n")
    sandbox.sync(tmp_path)
    changed = ["new mod.py", "math_ops.py", "notes.md"]
    lint, _test = run_checks(sandbox, spec(lint=None), changed, python_repo=True)
    assert lint.command == (
        "ruff check --no-cache --force-exclude --output-format=json-lines -- "
        "'new mod.py' math_ops.py"
    )
    assert (lint.name, lint.passed, lint.reason) == ("lint", False, "1 finding")
    assert lint.output == "new mod.py:1:8: F401 `os` imported but unused"


LEGACY = "import os\n\n\ndef area(r):\n    return 3.14 * r * r\n"
CHANGED = '"""Areas."""\n\nimport os\nimport sys\n\n\ndef area(r):\n    return 3.14159 * r * r\n'


@pytest.mark.docker
def test_default_lint_blames_a_real_change_only_for_the_unused_import_it_added(
    sandbox: DockerSandbox, tmp_path: Path
) -> None:
    (tmp_path / "legacy.py").write_text(LEGACY)
    sandbox.sync(tmp_path, ["legacy.py"])
    _, expect = baseline_checks(sandbox, spec(lint=None), python_repo=True)
    (tmp_path / "legacy.py").write_text(CHANGED)  # a docstring shifts the old import down
    sandbox.sync(tmp_path, ["legacy.py"])

    lint, _test = run_checks(
        sandbox, spec(lint=None), ["legacy.py"], python_repo=True, expect=expect
    )

    assert (lint.passed, lint.exit_code, lint.preexisting) == (False, 1, 1)
    assert lint.reason == "1 new finding (1 pre-existing left alone)"
    assert lint.output == "legacy.py:4:8: F401 `sys` imported but unused"


@pytest.mark.docker
def test_default_lint_leaves_files_the_project_excludes_alone(
    sandbox: DockerSandbox, tmp_path: Path
) -> None:
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "vendored.py").write_text("import os\n")
    sandbox.sync(tmp_path, ["venv/vendored.py"])

    lint, _test = run_checks(sandbox, spec(lint=None), ["venv/vendored.py"], python_repo=True)

    assert (lint.passed, lint.output) == (True, "")


@pytest.mark.docker
def test_default_lint_is_skipped_without_changed_python_files(sandbox: DockerSandbox) -> None:
    for changed, python_repo in ((["notes.md"], True), (["math_ops.py"], False)):
        checks = run_checks(sandbox, spec(lint=None), changed, python_repo=python_repo)
        assert [c.name for c in checks] == ["test"]


@pytest.mark.docker
def test_lint_command_from_the_spec_runs_even_when_tests_follow(sandbox: DockerSandbox) -> None:
    lint, test = run_checks(sandbox, spec(lint="echo linted; exit 2"), [], python_repo=True)
    assert (lint.command, lint.passed, lint.exit_code, lint.output) == (
        "echo linted; exit 2",
        False,
        2,
        "linted\n",
    )
    assert test.name == "test"


@pytest.mark.docker
def test_build_failure_stops_before_tests(sandbox: DockerSandbox) -> None:
    spec_ = spec(build="echo compiling; echo 'error: bad' >&2; exit 2", lint="touch linted")
    (build,) = run_checks(sandbox, spec_, ["math_ops.py"], python_repo=True)
    assert (build.name, build.passed, build.reason) == ("build", False, "exit code 2")
    assert "error: bad" in build.output
    assert sandbox.read_file("linted", 1024) is None


@pytest.mark.docker
def test_build_success_is_followed_by_lint_and_test(sandbox: DockerSandbox) -> None:
    checks = run_checks(sandbox, spec(build="true", lint="true"), [], python_repo=True)
    assert [(c.name, c.passed) for c in checks] == [
        ("build", True),
        ("lint", True),
        ("test", False),
    ]


@pytest.mark.docker
def test_test_timeout_gives_reason(sandbox: DockerSandbox) -> None:
    (result,) = run_checks(sandbox, spec(test="sleep 30", timeout=1), [], python_repo=True)
    assert (result.passed, result.reason) == (False, "timed out after 1s")
    assert result.tests_passed is None


@pytest.mark.docker
def test_counts_come_from_the_summary_line_without_a_junit_report(
    sandbox: DockerSandbox,
) -> None:
    command = "echo '2 failed, 5 passed in 0.30s'; exit 1"
    (result,) = run_checks(sandbox, spec(test=command), [], python_repo=True)
    assert (result.tests_passed, result.tests_failed, result.reason) == (5, 2, "2 tests failed")
    assert result.failing_tests == ()


@pytest.mark.docker
def test_a_stale_junit_report_is_not_reused(sandbox: DockerSandbox) -> None:
    run_checks(sandbox, spec(), [], python_repo=True)
    (result,) = run_checks(sandbox, spec(test="echo no runner here; exit 3"), [], python_repo=True)
    assert (result.tests_failed, result.failing_tests, result.reason) == (None, (), "exit code 3")


@pytest.mark.docker
def test_collection_error_is_reported_as_a_failing_test(
    sandbox: DockerSandbox, tmp_path: Path
) -> None:
    (tmp_path / "test_broken.py").write_text("import no_such_module\n")
    sandbox.sync(tmp_path, ["test_broken.py"])
    (result,) = run_checks(sandbox, spec(), [], python_repo=True)
    assert result.tests_errors == 1 and result.reason.endswith("1 error")
    assert any("no_such_module" in t.detail for t in result.failing_tests)
