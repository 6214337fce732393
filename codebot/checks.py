"""Build, lint and test commands as `CheckResult`s over any `Sandbox`.

Tests and lint are judged against the run before the change (`Expectation`): old findings do
not fail a fix (codebot.lintdiff), and tests that ran then must run and pass now. Output is
trimmed for people here (`CheckResult.output`), and for the model in codebot.feedback. A test
check may first run the tests most likely to fail (codebot.selection); lint runs with the
first test run, in one exec. Pure apart from the sandbox calls; imports no SDK.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from codebot import selection
from codebot.feedback import share_budget
from codebot.junit import (
    MAX_NAME_CHARS,
    MAX_REPORT_BYTES,
    JUnitReport,
    Unreadable,
    parse_pytest_summary,
    report_of,
)
from codebot.lintdiff import (
    BASELINE_LINT,
    BASELINE_LINT_FILE,
    MAX_LINT_BYTES,
    LintBaseline,
    judge_ruff,
    judge_text,
    lint_command,
    ruff_baseline,
    text_baseline,
)
from codebot.protocols import ReadBack, Sandbox, Step
from codebot.records import CheckName, CheckResult, ExecResult, FailedTest
from codebot.spec import TaskSpec
from codebot.text import clip, tail

OUTPUT_CHARS = 4000  # CheckResult.output, for people
DETAIL_CHARS = 4000  # one failing test's text, as kept in the run record
MAX_FAILING_TESTS = 50  # kept in the run record; the counts still say how many failed
NO_NETWORK = "the sandbox has no network"
SETUP_NETWORK_FIX = (
    "allow it for the setup step with CODEBOT_SANDBOX_NETWORK=1 (Action input setup-network: "
    "true), and CODEBOT_SANDBOX_CA_BUNDLE=<host CA file> behind a TLS-intercepting proxy"
)
# What a connection or name lookup says when there is no network at all.
_NETWORK_FAILURE = re.compile(
    r"Network is unreachable|Temporary failure in name resolution|Name or service not known"
    r"|Could not resolve host|No address associated with hostname"
)


@dataclass(frozen=True)
class Expectation:
    """What the checks must show after a change, learned from the run before it: every test
    that ran then (passed, failed or errored in the test itself) runs now and passes, and a
    report is written when one was written then. This is what makes skipping, deselecting,
    deleting or exiting early unable to pass for a fix. `lint`: the findings there were
    (None when the lint could not say), which the change is not asked to fix."""

    tests: frozenset[str] = frozenset()
    report: bool = False
    lint: LintBaseline | None = None
    # How to run the tests most likely to fail before the full suite (codebot.selection);
    # None: every check runs the full suite only.
    first: selection.FirstPass | None = None


_Tested = tuple[ExecResult, JUnitReport | Unreadable | None]  # a test run, and its report


def run_checks(
    sandbox: Sandbox,
    spec: TaskSpec,
    changed: Sequence[str],
    *,
    python_repo: bool,
    expect: Expectation = Expectation(),
    select: bool = True,
) -> tuple[CheckResult, ...]:
    """Build (a failure stops here), then lint, then test; one `CheckResult` per check run.

    `changed`: the files the run changed that still exist (the default lint checks those, and
    its test files are run first). `select`: run the tests most likely to fail first, when
    the baseline taught how (`Expectation.first`); a failure there is the test check's
    result, and a pass is always followed by the full suite."""
    return _checks(sandbox, spec, changed, python_repo, expect, select=select)[0]


def baseline_checks(
    sandbox: Sandbox, spec: TaskSpec, *, python_repo: bool
) -> tuple[tuple[CheckResult, ...], Expectation]:
    """The checks before any change, and what every later run of them is held to."""
    results, tested, lint = _checks(sandbox, spec, (), python_repo, Expectation(), baseline=True)
    report = tested[1] if tested else None
    if tested is None or not isinstance(report, JUnitReport) or not report.outcomes:
        return results, Expectation(report=isinstance(report, JUnitReport), lint=lint)
    ran = frozenset(name for name in report.outcomes if _held(name, report))
    first = selection.learn(spec.test, report, tested[0], sandbox.workdir)
    return results, Expectation(ran, report=True, lint=lint, first=first)


def _checks(
    sandbox: Sandbox,
    spec: TaskSpec,
    changed: Sequence[str],
    python_repo: bool,
    expect: Expectation,
    *,
    baseline: bool = False,
    select: bool = False,
) -> tuple[tuple[CheckResult, ...], _Tested | None, LintBaseline | None]:
    results: list[CheckResult] = []
    if spec.build:
        results.append(_plain_check(sandbox, "build", spec.build, spec.timeout))
        if not results[-1].passed:
            return tuple(results), None, None
    # The lint runs with the first test run, in one go (Sandbox.run_steps): one exec less.
    lint = _lint_step(spec, changed, python_repo, baseline)
    chosen = selection.plan(expect.first, changed) if select else None
    if chosen is None:
        test, tested, linted = _test_check(sandbox, spec.test, spec.timeout, expect, lint=lint)
    else:
        test, tested, linted = _selected_then_full(sandbox, spec, chosen, expect, lint)
    check, known = (
        _lint(spec, linted, expect.lint, baseline, sandbox.workdir) if linted else (None, None)
    )
    return (*results, *([check] if check else []), test), tested, known


def _selected_then_full(
    sandbox: Sandbox,
    spec: TaskSpec,
    chosen: selection.Plan,
    expect: Expectation,
    lint: _LintStep | None,
) -> tuple[CheckResult, _Tested, _Linted | None]:
    """The first pass, held to nothing (it runs only some tests on purpose), then unless it
    settles the check, the full suite held to `expect`."""
    first, tested, linted = _test_check(
        sandbox, chosen.command, spec.timeout, Expectation(), lint=lint
    )
    if selection.settles(first, tested[0]):
        return selection.stopped(chosen, first), tested, linted
    full, tested, _ = _test_check(sandbox, spec.test, spec.timeout, expect)
    return selection.followed(chosen, first, full, OUTPUT_CHARS), tested, linted


@dataclass(frozen=True)
class _LintStep:
    """The lint to run before the tests; `read`: the findings file it writes, read back."""

    step: Step
    read: Mapping[str, int]


_Linted = tuple[ExecResult, ReadBack]  # the lint's run, and what was read back after it


def _lint_step(
    spec: TaskSpec, changed: Sequence[str], python_repo: bool, baseline: bool
) -> _LintStep | None:
    """The lint command to run: at the baseline without a spec lint, every ruff finding in the
    repo (written to a file); else the spec's lint or ruff on the changed files."""
    if baseline and spec.lint is None:  # no check: the whole repo's findings are no task
        read = {BASELINE_LINT_FILE: MAX_LINT_BYTES}
        return _LintStep(Step(BASELINE_LINT, spec.timeout), read) if python_repo else None
    command = lint_command(spec.lint, changed, python_repo=python_repo)
    return _LintStep(Step(command, spec.timeout), {}) if command else None


def _lint(
    spec: TaskSpec,
    linted: _Linted,
    before: LintBaseline | None,
    baseline: bool,
    workdir: str,
) -> tuple[CheckResult | None, LintBaseline | None]:
    """The lint check judged against `before`; at the baseline, the check as it stands and
    the findings later runs are compared with."""
    result, got = linted
    if baseline and spec.lint is None:
        return None, ruff_baseline(result, got.get(BASELINE_LINT_FILE), workdir)
    plain = _plain_result("lint", result.command, result, spec.timeout)
    if baseline:
        return plain, text_baseline(result)
    if spec.lint is None:
        return judge_ruff(plain, result, before, workdir=workdir, limit=OUTPUT_CHARS), None
    return judge_text(plain, result, before, limit=OUTPUT_CHARS), None


def run_setup(sandbox: Sandbox, spec: TaskSpec, env: Mapping[str, str]) -> CheckResult | None:
    """The spec's setup command (None when the spec has none), in an environment builder
    (codebot.environment), with `env` telling the installers where to put things."""
    if not spec.setup:
        return None
    return _plain_check(sandbox, "setup", spec.setup, spec.setup_timeout, env)


def _plain_check(
    sandbox: Sandbox,
    name: CheckName,
    command: str,
    timeout: int,
    env: Mapping[str, str] | None = None,
) -> CheckResult:
    return _plain_result(name, command, sandbox.run(command, timeout, env), timeout)


def _plain_result(name: CheckName, command: str, result: ExecResult, timeout: int) -> CheckResult:
    reason = _reason(result, timeout, None)
    if name == "setup" and reason.endswith(NO_NETWORK):  # the one step that may have one
        reason += f" ({SETUP_NETWORK_FIX})"
    return CheckResult(
        name=name,
        command=command,
        passed=_passed(result),
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        output=tail(result.output, OUTPUT_CHARS),
        reason=reason,
    )


def run_base_tests(
    sandbox: Sandbox, spec: TaskSpec, added: Sequence[str], expect: Expectation
) -> CheckResult:
    """The tests with the test files the model added left out: a new test module runs at
    import, before any test, and could patch the code under test for the whole session."""
    ignore = " ".join(shlex.quote(f"--ignore={path}") for path in added)
    check, _, _ = _test_check(sandbox, spec.test, spec.timeout, expect, ignore, "base tests")
    return check


def _run_tests(
    sandbox: Sandbox, command: str, timeout: int, addopts: str, lint: _LintStep | None
) -> tuple[_Tested, _Linted | None]:
    # A fresh, unguessable report path per run: no stale report to delete first (one exec
    # less per iteration), and none the checked code could plant in advance. xunit1 names
    # each test's file, which turns the baseline's failing tests into pytest ids.
    path = f"/tmp/codebot-junit-{secrets.token_hex(8)}.xml"
    opts = f"--junitxml={path} -o junit_family=xunit1 -p no:cacheprovider {addopts}"
    test = Step(command, timeout, {"PYTEST_ADDOPTS": opts.rstrip()})
    steps = [lint.step, test] if lint else [test]
    ran, got = sandbox.run_steps(steps, {**(lint.read if lint else {}), path: MAX_REPORT_BYTES})
    return (ran[-1], report_of(got[path])), ((ran[0], got) if lint else None)


def _test_check(
    sandbox: Sandbox,
    command: str,
    timeout: int,
    expect: Expectation,
    addopts: str = "",
    name: CheckName = "test",
    *,
    lint: _LintStep | None = None,
) -> tuple[CheckResult, _Tested, _Linted | None]:
    """The test check; with `lint`, the lint runs just before the tests, in the same go."""
    tested, linted = _run_tests(sandbox, command, timeout, addopts, lint)
    result, report = tested
    found = report if isinstance(report, JUnitReport) else parse_pytest_summary(result.output)
    counts = found.counts if found else None
    failing = (found.failing if found else ()) + _missing(expect, report)
    kept = tuple(
        FailedTest(t.name, tail(t.detail, DETAIL_CHARS)) for t in failing[:MAX_FAILING_TESTS]
    )
    broken = _broken_promise(expect, report, failing)
    passed = _passed(result) and not broken
    output = (
        _join_tests(kept, OUTPUT_CHARS)
        if kept and not passed
        else tail(result.output, OUTPUT_CHARS)
    )
    # A command that failed says why itself; the promise matters when it claims success.
    reason = _reason(result, timeout, counts) if not _passed(result) else broken
    check = CheckResult(
        name=name,
        command=command,
        passed=passed,
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        output=output,
        reason=reason,
        tests_passed=counts["passed"] if counts else None,
        tests_failed=counts["failed"] if counts else None,
        tests_errors=counts["errors"] if counts else None,
        tests_skipped=counts["skipped"] if counts else None,
        failing_tests=kept,
    )
    return check, tested, linted


def _held(name: str, report: JUnitReport) -> bool:
    """A baseline test every later run must show passing: not a skip, and not a collection
    error (reported under the module's name, with no `::`), which the real tests of that
    module replace once it imports."""
    outcome = report.outcomes[name]
    return outcome != "skipped" and (outcome != "errors" or "::" in name)


def _missing(
    expect: Expectation, report: JUnitReport | Unreadable | None
) -> tuple[FailedTest, ...]:
    """Tests that ran before the change and did not pass now, as failing tests."""
    if not expect.tests or not isinstance(report, JUnitReport):
        return ()
    gone = sorted(n for n in expect.tests if report.outcomes.get(n) in (None, "skipped"))
    return tuple(
        FailedTest(
            clip(n, MAX_NAME_CHARS),
            "this test ran before the change and "
            + ("was skipped now" if n in report.outcomes else "did not run now")
            + "; keep every existing test running and fix the code under test",
        )
        for n in gone
    )


def _broken_promise(
    expect: Expectation, report: JUnitReport | Unreadable | None, failing: Sequence[FailedTest]
) -> str:
    """Why the run cannot count as passing although the command may have exited 0."""
    if isinstance(report, Unreadable):
        return report.why
    if expect.report and report is None:
        return "the test run wrote no report, though it did before the change (did it exit early?)"
    gone = sum(1 for t in failing if t.detail.startswith("this test ran before the change"))
    if gone:
        return f"{_plural(gone, 'test')} that ran before the change did not pass now"
    return ""


def _join_tests(tests: Sequence[FailedTest], limit: int) -> str:
    heads = [f"{t.name}\n" for t in tests]
    allowances = share_budget([t.detail for t in tests], max(0, limit - sum(map(len, heads))))
    parts = [h + tail(t.detail, n) for h, t, n in zip(heads, tests, allowances, strict=True)]
    return "\n\n".join(parts)[:limit]


def _passed(result: ExecResult) -> bool:
    return result.exit_code == 0 and not result.timed_out


def _reason(result: ExecResult, timeout: float, counts: Mapping[str, int] | None) -> str:
    """A short human cause of a failure; empty for a pass."""
    if _passed(result):
        return ""
    cause = _cause(result, timeout, counts)
    if result.pids_limited:
        cause += "; the process limit was hit"
    if _NETWORK_FAILURE.search(result.output):
        cause += f"; {NO_NETWORK}"
    return cause


def _cause(result: ExecResult, timeout: float, counts: Mapping[str, int] | None) -> str:
    if result.timed_out:
        return f"timed out after {timeout:g}s"
    if result.oom_killed:
        return "killed (out of memory?)"
    if counts:
        parts = [_plural(counts["failed"], "test") + " failed"] if counts["failed"] else []
        parts += [_plural(counts["errors"], "error")] if counts["errors"] else []
        if parts:
            return ", ".join(parts)
        if not any(counts.values()):
            return f"no tests ran (exit code {result.exit_code})"
    return f"exit code {result.exit_code}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
