"""Reading what a test run reports: JUnit XML written by hostile code, and pytest's summary."""

from __future__ import annotations

import pytest

from codebot.errors import FileTooLarge
from codebot.junit import (
    MAX_REPORT_BYTES,
    JUnitReport,
    Unreadable,
    parse_junit,
    parse_pytest_summary,
    report_of,
)
from codebot.records import FailedTest

JUNIT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="2" tests="5">
<testcase classname="tests.test_math" name="test_add" time="0.001"/>
<testcase classname="tests.test_math" name="test_sub" time="0.001">
<failure message="assert -1 == 1">def test_sub():
&gt;       assert sub(1, 2) == 1
E       assert -1 == 1

tests/test_math.py:7: AssertionError</failure></testcase>
<testcase classname="tests.test_math" name="test_io" time="0.001">
<error message="failed on setup with &quot;fixture 'db' not found&quot;">
fixture 'db' not found</error></testcase>
<testcase classname="tests.test_math" name="test_later" time="0">
<skipped message="todo"/></testcase>
<testcase classname="tests.test_math" name="test_xfail" time="0">
<skipped type="pytest.xfail" message="known"/></testcase>
</testsuite></testsuites>
"""

# -- parse_junit / parse_pytest_summary -------------------------------------------------


def test_parse_junit_counts_each_outcome() -> None:
    assert parse_junit(JUNIT).counts == {"passed": 1, "failed": 1, "errors": 1, "skipped": 2}


def test_parse_junit_names_failing_tests_with_their_failure_text() -> None:
    failing = parse_junit(JUNIT).failing
    assert [t.name for t in failing] == ["tests.test_math::test_sub", "tests.test_math::test_io"]
    assert failing[0].detail.startswith("def test_sub():")
    assert failing[0].detail.endswith("tests/test_math.py:7: AssertionError")
    assert failing[1].detail == "fixture 'db' not found"


def test_parse_junit_falls_back_to_the_message_without_text() -> None:
    xml = b'<testsuite><testcase name="t"><failure message="boom"/></testcase></testsuite>'
    report = parse_junit(xml)
    assert report.counts == {"passed": 0, "failed": 1, "errors": 0, "skipped": 0}
    assert report.failing == (FailedTest("t", "boom"),)


def test_parse_junit_counts_a_test_failing_then_erroring_once() -> None:
    xml = (
        b'<testsuite><testcase classname="m" name="t"><failure message="f">F</failure>'
        b'<error message="teardown">E</error></testcase></testsuite>'
    )
    report = parse_junit(xml)
    assert (report.counts["failed"], report.counts["errors"]) == (1, 0)
    assert report.failing == (FailedTest("m::t", "F"),)


def test_parse_junit_keeps_each_tests_file_where_the_report_names_it() -> None:
    xml = (
        b'<testsuite><testcase classname="tests.test_a.TestK" name="test_x" '
        b'file="tests/test_a.py" line="3"><failure>F</failure></testcase>'
        b'<testcase classname="m" name="t"/></testsuite>'
    )
    assert parse_junit(xml).files == {"tests.test_a.TestK::test_x": "tests/test_a.py"}


def test_parse_junit_rejects_what_is_not_xml() -> None:
    with pytest.raises(SyntaxError):
        parse_junit(b"<testsuite><testcase")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("..F\n1 failed, 2 passed in 0.12s\n", (2, 1, 0, 0)),
        ("== 3 passed, 1 skipped, 2 warnings in 1.02s ==", (3, 0, 0, 1)),
        ("= 1 failed, 1 error, 1 xfailed, 1 xpassed in 0.5s =", (1, 1, 1, 1)),
        ("==== no tests ran in 0.01s ====", (0, 0, 0, 0)),
        ("1 passed in 0.1s\nrerun:\n2 failed in 0.2s\n", (0, 2, 0, 0)),
    ],
)
def test_parse_pytest_summary_reads_the_last_summary_line(
    output: str, expected: tuple[int, int, int, int]
) -> None:
    report = parse_pytest_summary(output)
    assert report is not None
    counts = report.counts
    assert (counts["passed"], counts["failed"], counts["errors"], counts["skipped"]) == expected


def test_parse_pytest_summary_without_a_summary_line_is_none() -> None:
    assert parse_pytest_summary("make: *** [test] Error 2\n") is None


# -- a report written by hostile code ----------------------------------------------------


def test_a_report_over_the_size_limit_is_unreadable_with_its_size() -> None:
    found = report_of(FileTooLarge("/tmp/r.xml", 9_437_207, MAX_REPORT_BYTES))  # as read back

    assert isinstance(found, Unreadable)
    assert found.why.startswith("the test report is 9,437,207 bytes, over 8,388,608")


def test_a_report_in_an_unknown_encoding_is_unreadable_not_a_crash() -> None:
    found = report_of(b'<?xml version="1.0" encoding="x-no-such"?><testsuite/>')

    assert isinstance(found, Unreadable) and "cannot be read" in found.why


def test_a_report_declaring_entities_is_refused_before_any_expansion() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<testsuite><testcase name="&b;"/></testsuite>'
    )
    assert isinstance(report_of(bomb), Unreadable)


def test_no_report_at_all_is_none() -> None:
    assert report_of(None) is None


def test_test_names_are_cut_to_a_bounded_length() -> None:
    name = "t" * 5000
    xml = f'<testsuite><testcase classname="m" name="{name}"><failure>x</failure></testcase>'
    report = parse_junit((xml + "</testsuite>").encode())

    assert isinstance(report, JUnitReport)
    assert len(report.failing[0].name) == 300 and report.failing[0].name.endswith("…")
