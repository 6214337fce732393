"""A broken environment is told apart from failing code, and named with its fix."""

from __future__ import annotations

import pytest

from codebot.diagnose import environment_problem, program_of
from codebot.records import CheckResult, FailedTest

TRACKED = ("calc.py", "pkg/__init__.py", "pkg/util.py", "tests/test_calc.py", "requirements.txt")
DECLARED = {"requirements.txt": "requests==2.32\nPyYAML>=6\n"}


def failed(output: str, command: str = "python3 -m pytest -q", **counts: int) -> CheckResult:
    return CheckResult("test", command, False, 1, 0.1, output, "failed", **counts)


def test_a_declared_dependency_that_is_not_installed_stops_the_run_with_the_fix():
    check = failed("E   ModuleNotFoundError: No module named 'yaml.constructor'")
    declared = {"requirements.txt": "pyyaml>=6\n"}

    problem = environment_problem([check], TRACKED, {**declared, "x": "yaml"})

    assert problem is not None and problem.startswith("tests cannot import `yaml`")
    assert "setup:" in problem and "CODEBOT_SANDBOX_NETWORK=1" in problem


def test_a_missing_module_the_repo_does_not_declare_is_the_models_to_fix_during_a_run():
    check = failed("ModuleNotFoundError: No module named 'jsonn'")  # a typo in the code

    assert environment_problem([check], TRACKED, DECLARED) is None
    assert environment_problem([check], TRACKED, DECLARED, strict=False) is not None


def test_the_repositorys_own_module_failing_to_import_is_a_bug_not_an_environment():
    check = failed("ModuleNotFoundError: No module named 'pkg.missing'")

    assert environment_problem([check], TRACKED, {"requirements.txt": "pkg\n"}) is None


def test_a_command_the_image_lacks_names_the_toolchain_image_that_has_it():
    check = failed("sh: 1: node: not found", command="node --test")

    problem = environment_problem([check], TRACKED, {})

    assert problem == (
        "the test command needs `node`, which the sandbox image lacks — use "
        "`sandbox: {image: codebot-sandbox:node}` in .codebot.yml (or `codebot detect`)"
    )


def test_the_failure_text_of_each_failing_test_is_read_too():
    tests = (FailedTest("t::x", "ModuleNotFoundError: No module named 'requests'"),)
    check = CheckResult("test", "pytest", False, 1, 0.1, "1 error", "1 error", failing_tests=tests)

    assert "`requests`" in (environment_problem([check], TRACKED, DECLARED) or "")


def test_a_test_command_that_ran_no_test_is_reported_by_the_check_but_not_during_a_run():
    check = failed("no tests ran", tests_passed=0, tests_failed=0, tests_errors=0)

    assert environment_problem([check], TRACKED, {}) is None  # a task may add the first test
    assert "ran no test" in (environment_problem([check], TRACKED, {}, strict=False) or "")


def test_passing_checks_and_ordinary_failures_are_no_environment_problem():
    ok = CheckResult("test", "pytest", True, 0, 0.1, "3 passed")
    assertion = failed("E   assert 2 == 3", tests_passed=2, tests_failed=1, tests_errors=0)

    assert environment_problem([ok, assertion], TRACKED, DECLARED) is None


@pytest.mark.parametrize(
    ("command", "program"),
    [
        ("pre-commit run --all-files", "pre-commit"),
        ("PYTHONPATH=src FOO='a b' python3 -m flake8", "python3"),
        ("'my tool' --x", "my tool"),
        ("A=1", None),
        ("echo 'unbalanced", None),
    ],
)
def test_the_program_of_a_command_skips_its_assignments(command: str, program: str | None):
    assert program_of(command) == program
