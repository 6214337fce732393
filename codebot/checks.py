"""Build, lint and test commands as `CheckResult`s over any `Sandbox`.

Also reads pytest's JUnit XML into counts and failing tests, and trims output twice: for
people (`CheckResult.output`) and, within a token budget, for the model (`feedback_for_model`).
Pure apart from the sandbox calls; imports no SDK.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Mapping, Sequence
from xml.etree import ElementTree

from codebot.protocols import Sandbox
from codebot.records import CheckName, CheckResult, ExecResult, FailedTest
from codebot.spec import TaskSpec
from codebot.text import tail
from codebot.tokens import chars_for

SETUP_ENV = {"PIP_USER": "1", "PIP_BREAK_SYSTEM_PACKAGES": "1"}
DEFAULT_LINT = "ruff check --no-cache --output-format=concise --"
OUTPUT_CHARS = 4000  # CheckResult.output, for people
DETAIL_CHARS = 4000  # one failing test's text, as kept in the run record
MAX_FAILING_TESTS = 50  # kept in the run record; the counts still say how many failed
MIN_TEST_CHARS = 300  # below this a traceback tail is useless: list fewer tests instead
# What a connection or name lookup says when there is no network at all.
_NETWORK_FAILURE = re.compile(
    r"Network is unreachable|Temporary failure in name resolution|Name or service not known"
    r"|Could not resolve host|No address associated with hostname"
)
_OUTCOMES = (("failure", "failed"), ("error", "errors"), ("skipped", "skipped"))
_SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+|no tests ran) in \d+(?:\.\d+)?s", re.MULTILINE)
_SUMMARY_KEYS = {
    "passed": "passed",
    "xpassed": "passed",
    "failed": "failed",
    "error": "errors",
    "errors": "errors",
    "skipped": "skipped",
    "xfailed": "skipped",
}


def run_checks(
    sandbox: Sandbox, spec: TaskSpec, changed: Sequence[str], *, python_repo: bool
) -> tuple[CheckResult, ...]:
    """Build (a failure stops here), then lint, then test; one `CheckResult` per check run.

    `changed`: the files the run changed that still exist (the default lint checks those)."""
    results: list[CheckResult] = []
    if spec.build:
        results.append(_plain_check(sandbox, "build", spec.build, spec.timeout))
        if not results[-1].passed:
            return tuple(results)
    lint = lint_command(spec.lint, changed, python_repo=python_repo)
    if lint:
        results.append(_plain_check(sandbox, "lint", lint, spec.timeout))
    results.append(_test_check(sandbox, spec.test, spec.timeout))
    return tuple(results)


def run_setup(sandbox: Sandbox, spec: TaskSpec) -> CheckResult | None:
    """The spec's setup command, once per sandbox (None when the spec has none).

    The root filesystem is read-only, so `pip install` goes to the user site in the run's
    /tmp home, which Python puts on sys.path for every later check; the image's
    "externally managed" marker guards a system that cannot be written here anyway."""
    if not spec.setup:
        return None
    return _plain_check(sandbox, "setup", spec.setup, spec.setup_timeout, SETUP_ENV)


def lint_command(
    lint: str | bool | None, changed: Sequence[str], *, python_repo: bool
) -> str | None:
    """The spec's lint command; or ruff on the changed Python files."""
    if isinstance(lint, str):
        return lint
    if lint is False or not python_repo:
        return None
    files = [path for path in dict.fromkeys(changed) if path.endswith((".py", ".pyi"))]
    if not files:
        return None
    return f"{DEFAULT_LINT} {' '.join(shlex.quote(f) for f in files)}"


def parse_junit(xml: bytes) -> tuple[dict[str, int], tuple[FailedTest, ...]]:
    """Counts (passed, failed, errors, skipped) and the failing tests with their full text.

    Each testcase counts once: a failure outranks an error (e.g. in teardown), which outranks
    a skip. Raises ValueError if `xml` is not XML.
    """
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not JUnit XML: {exc}") from None
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failing: list[FailedTest] = []
    for case in root.iter("testcase"):
        outcome, detail = _outcome(case)
        counts[outcome] += 1
        if outcome in ("failed", "errors"):
            failing.append(FailedTest(_test_name(case), detail))
    return counts, tuple(failing)


def parse_pytest_summary(output: str) -> dict[str, int] | None:
    """Counts from pytest's last summary line ("3 passed, 1 failed in 0.12s"), if any."""
    lines = _SUMMARY.findall(output)
    if not lines:
        return None
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for number, word in re.findall(r"(\d+) (\w+)", lines[-1]):
        if word in _SUMMARY_KEYS:
            counts[_SUMMARY_KEYS[word]] += int(number)
    return counts


def feedback_for_model(checks: Sequence[CheckResult], max_tokens: int) -> str:
    """What the model needs about the failing checks, in at most `max_tokens` (chars/4).

    Each failing check gives its command and reason; tests give each failing test with the end
    of its traceback (the assertion matters most), the budget shared across tests; build and
    lint give the tail of their output. Empty when every check passed.
    """
    budget = chars_for(max_tokens)
    failing = [c for c in checks if not c.passed]
    heads: list[str] = []
    bodies: list[str] = []
    for check in failing:
        heads.append(f"## {check.name} failed: {check.reason or 'failed'}\n$ {check.command}\n")
        tests = check.failing_tests
        bodies.append("" if tests else check.output)
        shown = max(1, min(len(tests), budget // (MIN_TEST_CHARS * len(failing))))
        for test in tests[:shown]:
            heads.append(f"### {test.name}\n")
            bodies.append(test.detail)
        total = max(len(tests), (check.tests_failed or 0) + (check.tests_errors or 0))
        if tests and total > shown:
            heads.append(f"(and {total - shown} more failing tests)\n")
            bodies.append("")
    if not heads:
        return ""
    fixed = sum(len(h) + 1 for h in heads)
    allowances = share_budget([b.strip("\n") for b in bodies], max(0, budget - fixed))
    parts = [
        head + (tail(body.strip("\n"), allowed) + "\n" if allowed else "")
        for head, body, allowed in zip(heads, bodies, allowances, strict=True)
    ]
    return "\n".join(parts).rstrip("\n")[:budget]


def share_budget(texts: Sequence[str], budget: int) -> list[int]:
    """Characters each text may keep: short texts keep all, long ones split what is left."""
    allowances = [0] * len(texts)
    pending = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    remaining = budget
    while pending:
        share = remaining // len(pending)
        shortest = pending[0]
        if len(texts[shortest]) > share:
            for index in pending:
                allowances[index] = share
            break
        allowances[shortest] = len(texts[shortest])
        remaining -= allowances[shortest]
        pending.pop(0)
    return allowances


def _plain_check(
    sandbox: Sandbox,
    name: CheckName,
    command: str,
    timeout: int,
    env: Mapping[str, str] | None = None,
) -> CheckResult:
    result = sandbox.run(command, timeout, env)
    return CheckResult(
        name=name,
        command=command,
        passed=_passed(result),
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        output=tail(result.output, OUTPUT_CHARS),
        reason=_reason(result, timeout, None),
    )


def _test_check(sandbox: Sandbox, command: str, timeout: int) -> CheckResult:
    # A fresh, unguessable report path per run: no stale report to delete first (one exec
    # less per iteration), and none the checked code could plant in advance.
    junit = f"/tmp/codebot-junit-{secrets.token_hex(8)}.xml"
    env = {"PYTEST_ADDOPTS": f"--junitxml={junit} -p no:cacheprovider"}
    result = sandbox.run(command, timeout, env=env)
    counts, failing = _test_results(sandbox.read_file(junit), result.output)
    kept = tuple(
        FailedTest(t.name, tail(t.detail, DETAIL_CHARS)) for t in failing[:MAX_FAILING_TESTS]
    )
    if kept and not _passed(result):
        output = _join_tests(kept, OUTPUT_CHARS)
    else:
        output = tail(result.output, OUTPUT_CHARS)
    return CheckResult(
        name="test",
        command=command,
        passed=_passed(result),
        exit_code=result.exit_code,
        duration_s=result.duration_s,
        output=output,
        reason=_reason(result, timeout, counts),
        tests_passed=counts["passed"] if counts else None,
        tests_failed=counts["failed"] if counts else None,
        tests_errors=counts["errors"] if counts else None,
        tests_skipped=counts["skipped"] if counts else None,
        failing_tests=kept,
    )


def _test_results(
    xml: bytes | None, output: str
) -> tuple[dict[str, int] | None, tuple[FailedTest, ...]]:
    if xml is not None:
        try:
            return parse_junit(xml)
        except ValueError:
            pass  # a half-written report (e.g. after a timeout): fall back to the output
    return parse_pytest_summary(output), ()


def _join_tests(tests: Sequence[FailedTest], limit: int) -> str:
    heads = [f"{t.name}\n" for t in tests]
    allowances = share_budget([t.detail for t in tests], max(0, limit - sum(map(len, heads))))
    parts = [h + tail(t.detail, n) for h, t, n in zip(heads, tests, allowances, strict=True)]
    return "\n\n".join(parts)[:limit]


def _passed(result: ExecResult) -> bool:
    return result.exit_code == 0 and not result.timed_out


def _reason(result: ExecResult, timeout: float, counts: dict[str, int] | None) -> str:
    """A short human cause of a failure; empty for a pass."""
    if _passed(result):
        return ""
    cause = _cause(result, timeout, counts)
    if result.pids_limited:
        cause += "; the process limit was hit"
    if _NETWORK_FAILURE.search(result.output):
        cause += "; the sandbox has no network"
    return cause


def _cause(result: ExecResult, timeout: float, counts: dict[str, int] | None) -> str:
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


def _outcome(case: ElementTree.Element) -> tuple[str, str]:
    for tag, outcome in _OUTCOMES:
        element = case.find(tag)
        if element is not None:
            text = (element.text or "").strip() or element.get("message", "")
            return outcome, text
    return "passed", ""


def _test_name(case: ElementTree.Element) -> str:
    classname, name = case.get("classname", ""), case.get("name", "?")
    return f"{classname}::{name}" if classname else name
