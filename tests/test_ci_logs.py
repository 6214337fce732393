"""codebot.ci_logs: from a CI job's log, what says why it failed, within a budget."""

from __future__ import annotations

from codebot.ci_logs import GAP, clean, failures
from codebot.text import CUT


def actions_log(*steps: tuple[str, str], failed: bool = True) -> str:
    """A GitHub Actions job log: every line stamped, each step in a ##[group], the failing
    one ending in ##[error], then the post-job cleanup."""
    lines = ["Current runner version: '2.317.0'", "##[group]Operating System", "Ubuntu",
             "22.04.4", "LTS", "##[endgroup]", "##[group]Run actions/checkout@v4", "with:",
             "  repository: octo-org/hello-app", "##[endgroup]",
             "Syncing repository: octo-org/hello-app", "[command]/usr/bin/git version",
             "git version 2.45.2"]  # fmt: skip
    for command, output in steps:
        lines += [f"##[group]Run {command}", command, "shell: /usr/bin/bash -e {0}", "##[endgroup]"]
        lines += output.splitlines()
    if failed:
        lines.append("##[error]Process completed with exit code 1.")
    lines += ["Post job cleanup.", "[command]/usr/bin/git version", "git version 2.45.2",
              "Cleaning up orphan processes"]  # fmt: skip
    return "".join(
        f"2024-05-02T09:12:{i % 60:02d}.{i:07d}Z {line}\n" for i, line in enumerate(lines)
    )


INSTALL = ("pip install -e '.[dev]'", "Collecting pytest\n" * 300 + "Successfully installed\n")

PYTEST = """\x1b[1m========================= test session starts ==========================\x1b[0m
platform linux -- Python 3.12.3, pytest-8.2.0, pluggy-1.5.0
rootdir: /home/runner/work/hello-app/hello-app
collected 9 items

test_duration.py ..\x1b[31mF\x1b[0m\x1b[31mF\x1b[0m.....                                    [100%]

=================================== FAILURES ===================================
________________ test_invalid_input_raises_value_error[abc] _________________

text = 'abc'

    @pytest.mark.parametrize("text", ["", "abc", "10", "5x", "1h junk"])
    def test_invalid_input_raises_value_error(text):
>       with pytest.raises(ValueError):
E       Failed: DID NOT RAISE <class 'ValueError'>

test_duration.py:21: Failed
_________________________________ test_minutes _________________________________

    def test_minutes():
>       assert parse_duration("1h30m") == 5400
E       AssertionError: assert 3600 == 5400
E        +  where 3600 = parse_duration('1h30m')

test_duration.py:9: AssertionError
=========================== short test summary info ============================
FAILED test_duration.py::test_invalid_input_raises_value_error[abc] - Failed: DID NOT RAISE
FAILED test_duration.py::test_minutes - AssertionError: assert 3600 == 5400
========================= 2 failed, 7 passed in 0.06s ==========================
"""

JEST = """> hello-app@1.0.0 test
> jest --ci

PASS src/format.test.js
FAIL src/sum.test.js
  ● sum › adds two numbers

    expect(received).toBe(expected) // Object.is equality

    Expected: 4
    Received: 5

      3 | test('adds two numbers', () => {
    > 4 |   expect(sum(2, 2)).toBe(4);
        |                     ^
      5 | });

      at Object.toBe (src/sum.test.js:4:21)

Test Suites: 1 failed, 1 passed, 2 total
Tests:       1 failed, 3 passed, 4 total
Snapshots:   0 total
Time:        0.512 s
Ran all test suites.
npm error code 1
npm error path /home/runner/work/hello-app/hello-app
npm error command failed
npm error command sh -c jest --ci
"""

GO = """go: downloading github.com/stretchr/testify v1.9.0
=== RUN   TestAdd
    calc_test.go:12: Add(2, 2) = 5, want 4
--- FAIL: TestAdd (0.00s)
=== RUN   TestSub
--- PASS: TestSub (0.00s)
FAIL
FAIL	example.com/calc	0.004s
ok  	example.com/calc/internal/fmt	0.002s
FAIL
"""

GO_PANIC = """=== RUN   TestIndex
--- FAIL: TestIndex (0.00s)
panic: runtime error: index out of range [3] with length 3 [recovered]
	panic: runtime error: index out of range [3] with length 3

goroutine 7 [running]:
testing.tRunner.func1.2({0x5b9f40, 0xc000014228})
	/usr/local/go/src/testing/testing.go:1631 +0x24a
example.com/calc.Index(...)
	/home/runner/work/calc/calc/calc.go:9
FAIL	example.com/calc	0.006s
"""

RUFF = """app/views.py:1:8: F401 [*] `os` imported but unused
app/views.py:14:89: E501 Line too long (104 > 88)
Found 2 errors.
[*] 1 fixable with the `--fix` option.
"""

MYPY = """app/models.py:27: error: Incompatible return value type (got "str | None", expected "str")  [return-value]
Found 1 error in 1 file (checked 12 source files)
"""  # noqa: E501 (a real mypy line)


def test_pytest_failures_and_summary_are_kept_and_setup_is_not() -> None:
    out = failures(actions_log(INSTALL, ("python -m pytest", PYTEST)))

    assert "=================================== FAILURES ===" in out
    assert "E       Failed: DID NOT RAISE <class 'ValueError'>" in out
    assert "E       AssertionError: assert 3600 == 5400" in out
    assert "FAILED test_duration.py::test_minutes - AssertionError" in out
    assert "2 failed, 7 passed in 0.06s" in out
    assert "Collecting pytest" not in out and "Syncing repository" not in out


def test_timestamps_colour_codes_and_group_markers_are_gone() -> None:
    out = failures(actions_log(("python -m pytest", PYTEST)))

    assert "2024-05-02T" not in out and "\x1b[" not in out
    assert "##[" not in out


def test_post_job_cleanup_after_the_failing_step_is_left_out() -> None:
    out = failures(actions_log(("python -m pytest", PYTEST)))

    assert "Cleaning up orphan processes" not in out and "Post job cleanup" not in out


def test_jest_failure_block_is_kept() -> None:
    out = failures(actions_log(("npm test", JEST)))

    assert "FAIL src/sum.test.js" in out and "● sum › adds two numbers" in out
    assert "Expected: 4" in out and "Received: 5" in out
    assert "Tests:       1 failed, 3 passed, 4 total" in out
    assert "PASS src/format.test.js" not in out


def test_go_test_failures_and_package_summary_are_kept() -> None:
    out = failures(actions_log(INSTALL, ("go test ./...", GO)))

    assert "calc_test.go:12: Add(2, 2) = 5, want 4" in out
    assert "--- FAIL: TestAdd (0.00s)" in out
    assert "FAIL\texample.com/calc\t0.004s" in out
    assert "Collecting pytest" not in out


def test_go_panic_keeps_its_message_and_first_frames() -> None:
    out = failures(actions_log(("go test ./...", GO_PANIC)))

    assert "panic: runtime error: index out of range [3] with length 3" in out
    assert "/home/runner/work/calc/calc/calc.go:9" in out


def test_lint_step_findings_are_kept() -> None:
    out = failures(actions_log(INSTALL, ("ruff check .", RUFF)))

    assert "app/views.py:1:8: F401 [*] `os` imported but unused" in out
    assert "app/views.py:14:89: E501 Line too long" in out
    assert "Found 2 errors." in out
    assert "Collecting pytest" not in out


def test_type_checker_errors_are_kept() -> None:
    out = failures(actions_log(("mypy app", MYPY)))

    assert 'app/models.py:27: error: Incompatible return value type (got "str | None"' in out


def test_python_traceback_is_kept_whole() -> None:
    crash = """Starting the smoke test
Traceback (most recent call last):
  File "/home/runner/work/app/app/smoke.py", line 3, in <module>
    main()
  File "/home/runner/work/app/app/smoke.py", line 1, in main
    raise KeyError("PORT")
KeyError: 'PORT'
"""
    out = failures(actions_log(INSTALL, ("python smoke.py", crash)))

    assert "Traceback (most recent call last):" in out
    assert 'raise KeyError("PORT")' in out and "KeyError: 'PORT'" in out
    assert "Collecting pytest" not in out


def test_unknown_output_falls_back_to_the_end_of_the_failing_step() -> None:
    steps = "\n".join(f"step {n} done" for n in range(2_000)) + "\nthe widget is not wobbly\n"
    out = failures(actions_log(("./check.sh", steps)), budget=300)

    assert out.startswith(CUT)
    assert out.rstrip().endswith("the widget is not wobbly")
    assert len(out) <= 300


def test_separate_findings_are_joined_with_a_gap_marker() -> None:
    out = failures(actions_log(INSTALL, ("ruff check .", RUFF), ("mypy app", MYPY)))

    assert GAP in out


def test_a_long_failure_keeps_its_start_and_its_summary_within_the_budget() -> None:
    many = "\n".join(f"E       assert {n} == {n + 1}" for n in range(3_000))
    log = PYTEST.replace("E       Failed: DID NOT RAISE <class 'ValueError'>", many)

    out = failures(actions_log(("python -m pytest", log)), budget=2_000)

    assert len(out) <= 2_000
    assert "=================================== FAILURES ===" in out
    assert "2 failed, 7 passed in 0.06s" in out
    assert CUT in out


def test_a_log_that_is_one_enormous_line_is_cut_per_line() -> None:
    out = failures("Error: " + "x" * 1_000_000)

    assert len(out) < 1_000


def test_a_log_without_github_stamps_is_read_the_same() -> None:
    assert "2 failed, 7 passed in 0.06s" in failures(PYTEST)


def test_an_empty_log_gives_nothing() -> None:
    assert failures("") == ""


def test_clean_turns_error_markers_into_words_and_keeps_indentation() -> None:
    lines = clean("2024-05-02T09:12:00.0000000Z ##[error]boom\n2024-05-02T09:12:00Z     x\r\n")

    assert lines[:2] == ["Error: boom", "    x"]
