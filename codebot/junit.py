"""What a test run reports: pytest's JUnit XML, or failing that its summary line.

The report is written by the code under test, so it is hostile input: it is read only up to
a size (`MAX_REPORT_BYTES`, checked before a byte is read), parsed with defusedxml (no DTDs,
no entity expansion), and any way it can fail to parse becomes `Unreadable`, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import defusedxml.ElementTree as SafeTree

from codebot.errors import FileTooLarge
from codebot.records import FailedTest
from codebot.text import clip

MAX_REPORT_BYTES = 8 << 20  # ~20,000 tests with their tracebacks; more is not a test report
MAX_NAME_CHARS = 300  # a test id as kept in the run record and shown to the model
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


@dataclass(frozen=True)
class JUnitReport:
    """Counts (passed, failed, errors, skipped), the failing tests with their text, how
    each test id ended (empty when only a summary line was read), and each test's file
    relative to pytest's rootdir where the report says (junit_family=xunit1 does)."""

    counts: Mapping[str, int]
    failing: tuple[FailedTest, ...] = ()
    outcomes: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unreadable:
    """Why the report written for this run could not be read."""

    why: str


def report_of(xml: bytes | FileTooLarge | None) -> JUnitReport | Unreadable | None:
    """The JUnit report in the bytes read back from the sandbox; None when there were none."""
    if isinstance(xml, FileTooLarge):
        return Unreadable(f"the test report is {xml.size:,} bytes, over {xml.limit:,}")
    if xml is None:
        return None
    try:
        return parse_junit(xml)
    except Exception as exc:  # hostile bytes: whatever the parser raises is a reason, not a crash
        return Unreadable(f"the test report cannot be read ({clip(str(exc), 200)})")


def parse_junit(xml: bytes) -> JUnitReport:
    """Each testcase counts once: a failure outranks an error (e.g. in teardown), which
    outranks a skip. Raises ValueError (or another parser error) if `xml` is not JUnit XML."""
    root: Any = SafeTree.fromstring(xml)
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failing: list[FailedTest] = []
    outcomes: dict[str, str] = {}
    files: dict[str, str] = {}
    for case in root.iter("testcase"):
        outcome, detail = _outcome(case)
        name = case_id(case.get("classname", ""), case.get("name", "?"))
        counts[outcome] += 1
        outcomes[name] = outcome
        if case.get("file"):
            files[name] = str(case.get("file"))
        if outcome in ("failed", "errors"):
            failing.append(FailedTest(clip(name, MAX_NAME_CHARS), detail))
    return JUnitReport(counts, tuple(failing), outcomes, files)


def parse_pytest_summary(output: str) -> JUnitReport | None:
    """Counts from pytest's last summary line ("3 passed, 1 failed in 0.12s"), if any."""
    lines = _SUMMARY.findall(output)
    if not lines:
        return None
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    for number, word in re.findall(r"(\d+) (\w+)", lines[-1]):
        if word in _SUMMARY_KEYS:
            counts[_SUMMARY_KEYS[word]] += int(number)
    return JUnitReport(counts)


def case_id(classname: str, name: str) -> str:
    return f"{classname}::{name}" if classname else name


def _outcome(case: Any) -> tuple[str, str]:
    for tag, outcome in _OUTCOMES:
        element = case.find(tag)
        if element is not None:
            text = (element.text or "").strip() or element.get("message", "")
            return outcome, str(text)
    return "passed", ""
