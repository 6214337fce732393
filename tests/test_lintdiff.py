"""Lint findings compared before and after a change: what makes a finding new, and what the
model and people are told. Pure: lint output in, findings and verdicts out."""

from __future__ import annotations

import json

from codebot.lintdiff import (
    LintDiff,
    compare,
    counts,
    lint_command,
    lint_reason,
    ruff_findings,
    text_findings,
)


def ruff(*findings: tuple[str, int, str, str]) -> str:
    """ruff's --output-format=json-lines, one record per (path, row, code, message)."""
    return "".join(
        json.dumps(
            {
                "cell": None,
                "code": code,
                "end_location": {"column": 10, "row": row},
                "filename": f"/workspace/{path}",
                "fix": None,
                "location": {"column": 8, "row": row},
                "message": message,
                "noqa_row": row,
                "url": None,
            }
        )
        + "\n"
        for path, row, code, message in findings
    )


OS = ("a.py", 1, "F401", "`os` imported but unused")


def diff(before: str, after: str) -> LintDiff:
    return compare(counts(ruff_findings(before, "/workspace")), ruff_findings(after, "/workspace"))


def text_diff(before: str, after: str) -> LintDiff:
    return compare(counts(text_findings(before)), text_findings(after))


# -- ruff's JSON --------------------------------------------------------------------------


def test_ruff_findings_are_shown_as_path_line_column_code_and_message() -> None:
    (finding,) = ruff_findings(ruff(OS), "/workspace")
    assert finding.text == "a.py:1:8: F401 `os` imported but unused"


def test_a_line_shift_above_a_preexisting_finding_is_not_a_new_finding() -> None:
    moved = ("a.py", 9, "F401", "`os` imported but unused")
    assert diff(ruff(OS), ruff(moved)) == LintDiff(new=0, preexisting=1, shown="")


def test_a_second_finding_of_the_same_kind_in_the_file_is_new() -> None:
    again = ("a.py", 5, "F401", "`os` imported but unused")
    result = diff(ruff(OS), ruff(OS, again))
    assert (result.new, result.preexisting) == (1, 1)
    assert result.shown == (
        "a.py:1:8: F401 `os` imported but unused\n"
        "a.py:5:8: F401 `os` imported but unused\n"
        "  (1 of these 2 was there before the change)"
    )


def test_the_same_finding_in_another_file_is_new() -> None:
    elsewhere = ("b.py", 1, "F401", "`os` imported but unused")
    assert diff(ruff(OS), ruff(elsewhere)).new == 1


def test_a_line_number_inside_a_message_does_not_make_a_moved_finding_new() -> None:
    before = ruff(("a.py", 2, "F811", "Redefinition of unused `os` from line 1"))
    after = ruff(("a.py", 4, "F811", "Redefinition of unused `os` from line 3"))
    assert diff(before, after).new == 0


def test_lines_that_are_not_ruff_findings_are_skipped() -> None:
    output = "warning: The top-level linter settings are deprecated\n" + ruff(OS) + "{oops\n"
    assert [f.text for f in ruff_findings(output, "/workspace")] == [
        "a.py:1:8: F401 `os` imported but unused"
    ]


def test_default_lint_asks_ruff_for_json_on_the_changed_python_files_only() -> None:
    command = lint_command(None, ["new mod.py", "notes.md", "a.py"], python_repo=True)
    assert command == (
        "ruff check --no-cache --force-exclude --output-format=json-lines -- 'new mod.py' a.py"
    )


# -- any lint's text ----------------------------------------------------------------------


def test_line_and_column_after_a_path_are_dropped_from_a_findings_key() -> None:
    (finding,) = text_findings("./pkg/a.py:12:5: F401 'os' imported but unused  \n")
    assert finding.key == "./pkg/a.py:: F401 'os' imported but unused"
    assert finding.text == "./pkg/a.py:12:5: F401 'os' imported but unused"


def test_a_configured_lints_line_shift_is_not_a_new_finding() -> None:
    before = "a.py:3: error: Name 'x' is not defined\nFound 1 error in 1 file\n"
    after = "a.py:7: error: Name 'x' is not defined\nFound 1 error in 1 file\n"
    assert text_diff(before, after) == LintDiff(new=0, preexisting=1, shown="")


def test_summaries_and_ratings_around_positioned_findings_are_not_findings() -> None:
    before = "a.py:3:0: W0611: Unused import os\n\nYour code has been rated at 9.50/10\n"
    after = (
        "a.py:4:0: W0611: Unused import os\n\n"
        "Your code has been rated at 9.50/10 (previous run: 9.50/10, +0.00)\n"
    )
    assert text_diff(before, after).new == 0


def test_a_line_that_only_points_at_a_place_takes_the_message_above_it() -> None:
    full = "F401 [*] `{0}` imported but unused\n --> a.py:{1}:8\n  |\n{1} | import {0}\n"
    result = text_diff(full.format("os", 1), full.format("os", 2) + full.format("sys", 3))
    assert (result.new, result.preexisting) == (1, 1)
    assert result.shown == "F401 [*] `sys` imported but unused\n --> a.py:3:8"


def test_without_any_positioned_line_every_line_of_the_output_is_a_finding() -> None:
    before = "would reformat old.py\n"
    after = "would reformat old.py\nwould reformat new.py\n"
    assert text_diff(before, after).shown == "would reformat new.py"


# -- reasons ------------------------------------------------------------------------------


def test_the_reason_counts_new_findings_and_the_preexisting_ones_left_alone() -> None:
    assert (
        lint_reason(LintDiff(2, 3, ""), known=True) == "2 new findings (3 pre-existing left alone)"
    )
    assert lint_reason(LintDiff(1, 0, ""), known=True) == "1 new finding"


def test_the_reason_of_a_pass_notes_the_preexisting_findings() -> None:
    assert (
        lint_reason(LintDiff(0, 3, ""), known=True) == "no new findings (3 pre-existing left alone)"
    )
    assert lint_reason(LintDiff(0, 0, ""), known=True) == ""


def test_without_a_baseline_no_finding_is_called_new() -> None:
    assert lint_reason(LintDiff(2, 0, ""), known=False) == "2 findings"
