"""The run history a PR body carries: written by one run, read back by the next."""

from __future__ import annotations

import json

from codebot.pr_history import MAX_RUNS, RunSummary, earlier_runs, render


def run(n: int, cost: float | None = 0.01) -> RunSummary:
    return RunSummary(f"2026-r{n}", "2026-11-23T10:00:00+00:00", "task", "passed", 2, 100, cost)


def body_with(*runs: RunSummary) -> str:
    return "## Title\n\nSome text.\n" + "\n".join(render(runs[:-1], runs[-1])) + "\n"


def test_what_one_run_writes_the_next_reads_back() -> None:
    assert earlier_runs(body_with(run(1), run(2))) == (run(1), run(2))
    assert earlier_runs(None) == () and earlier_runs("a body a person wrote") == ()


def test_a_single_run_shows_no_table_but_leaves_the_list() -> None:
    lines = render((), run(1))
    assert len(lines) == 1 and lines[0].startswith("<!-- codebot:runs [")


def test_the_table_lists_every_run_once_and_totals_what_is_known() -> None:
    lines = render((run(1), run(2, cost=None), run(3)), run(3))
    rows = [line for line in lines if line.startswith("| `")]
    assert [row.split(" | ")[0] for row in rows] == ["| `2026-r1`", "| `2026-r2`", "| `2026-r3`"]
    assert "Total: 300 tokens, $0.0200 (some unknown)." in lines


def test_edited_or_hostile_entries_are_dropped_not_trusted() -> None:
    good = {"run_id": "r1", "finished_at": "t", "kind": "task", "stop_reason": "passed",
            "iterations": 1, "tokens": 5, "cost_usd": None}  # fmt: skip
    hostile = [
        {**good, "run_id": "x | <script>alert(1)</script>"},
        {**good, "tokens": -5},
        {**good, "iterations": True},
        {**good, "cost_usd": "free"},
        {**good, "stop_reason": None},
        "not a dict",
    ]
    body = f"<!-- codebot:runs {json.dumps([good, *hostile])} -->"
    assert [r.run_id for r in earlier_runs(body)] == ["r1"]
    assert earlier_runs("<!-- codebot:runs [not json] -->") == ()
    assert earlier_runs('<!-- codebot:runs {"a": 1} -->') == ()


def test_only_the_newest_runs_are_kept() -> None:
    many = tuple(run(n) for n in range(MAX_RUNS + 10))
    kept = earlier_runs(body_with(*many))
    assert len(kept) == MAX_RUNS and kept[-1] == many[-1]


def test_a_list_planted_above_codebots_own_does_not_hide_it() -> None:
    body = "Why: <!-- codebot:runs [ and more\n" + body_with(run(1), run(2))

    assert earlier_runs(body) == (run(1), run(2))


def test_a_complete_list_planted_above_codebots_own_is_not_read() -> None:
    fake = "\n".join(render((), RunSummary("fake", "t", "task", "passed", 1, 1, 0.0)))
    body = fake + "\n" + body_with(run(1))

    assert earlier_runs(body) == (run(1),)


def test_a_list_that_is_not_the_last_line_is_not_read() -> None:
    assert earlier_runs(body_with(run(1)) + "A line someone added.\n") == ()


def test_a_body_sent_back_with_crlf_line_endings_is_read() -> None:
    body = body_with(run(1), run(2)).replace("\n", "\r\n") + "\r\n"

    assert earlier_runs(body) == (run(1), run(2))
