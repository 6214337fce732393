"""`codebot runs` and `codebot show` over recorded runs (written by codebot.report, as a run
writes them): a passed run, a failed one and an interrupted one's checkpoint."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from codebot import report
from codebot.records import CheckResult, EditOutcome, FailedTest, Iteration, RunRecord, Usage
from tests.test_end_to_end import codebot
from tests.test_progress import ANSI, run_in_pty

STALE = """The parser must accept minutes.

duration.py
<<<<<<< SEARCH
def parse(text):
    return int(text)
=======
def parse(text):
    return 0
>>>>>>> REPLACE
"""
FIX = """Add the minutes unit.

duration.py
<<<<<<< SEARCH
_UNITS = {"h": 3600, "s": 1}
=======
_UNITS = {"h": 3600, "m": 60, "s": 1}
>>>>>>> REPLACE
"""
PASSED = "20261129-100000-aaaaaa"
FAILED = "20261129-110000-bbbbbb"
INTERRUPTED = "20261129-120000-cccccc"


def check(name: str, passed: bool, reason: str = "", failing: tuple[str, ...] = ()) -> CheckResult:
    return CheckResult(
        name, f"run {name}", passed, 0 if passed else 1, 0.5, "", reason,
        failing_tests=tuple(FailedTest(t, "assert 0") for t in failing),
    )  # fmt: skip


def iteration(number: int, reply: str, edits: tuple[EditOutcome, ...], checks: tuple) -> Iteration:
    return Iteration(
        number, 4000, reply, Usage(600, 150), 0.00615, 1.5, edits, checks,
        "green" if checks and all(c.passed for c in checks) else "retry", "feedback", 2.0,
    )  # fmt: skip


def record(run_id: str, started: str, iterations: tuple[Iteration, ...], **rest) -> RunRecord:
    base = {
        "run_id": run_id,
        "spec": {"title": f"Support minutes ({run_id[-6:]})", "description": "Add m.",
                 "test": "python3 -m pytest -q", "max_iterations": 4},
        "model": "test-model", "repo": "/src/example", "base_ref": "main",
        "base_commit": "0" * 40, "branch": "codebot/parse-duration-minutes",
        "started_at": started, "finished_at": started, "stop_reason": "passed",
        "stop_detail": "in iteration 2 of 4", "baseline": (check("test", False, "6 tests failed"),),
        "iterations": iterations, "usage": Usage(1200, 300), "cost_usd": 0.0123,
        "timings": {"baseline_s": 1.0, "total_s": 12.4},
    }  # fmt: skip
    return RunRecord(**{**base, **rest})


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    top = tmp_path / "runs"
    refused = EditOutcome("duration.py", 1, "refused", "no match; closest lines: def parse_dur")
    applied = EditOutcome("duration.py", 1, "applied", "exact")
    passed = record(
        PASSED, "2026-11-29T10:00:00+00:00",
        (iteration(1, STALE, (refused,), ()),
         iteration(2, FIX, (applied,), (check("lint", True), check("test", True)))),
        head_commit="f" * 40, files_changed=("duration.py",),
    )  # fmt: skip
    failing = (check("lint", True), check("test", False, "1 test failed", ("test_minutes",)))
    failed = record(
        FAILED, "2026-11-29T11:00:00+00:00", (iteration(1, FIX, (applied,), failing),),
        stop_reason="max_iterations", stop_detail="checks still failing after 1 iterations",
        cost_usd=None, timings={"total_s": 30.0},
    )  # fmt: skip
    for run in (passed, failed):
        report.write_run(top / run.run_id, run, "", (), lambda text: text)
    cut = record(
        INTERRUPTED, "2026-11-29T12:00:00+00:00", (iteration(1, STALE, (refused,), ()),),
        stop_reason="interrupted", stop_detail="stopped after iteration 1", timings={},
    )  # fmt: skip
    report.write_checkpoint(top / INTERRUPTED, cut, lambda text: text)
    return top


def env() -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}


def test_runs_lists_every_run_newest_first(runs, tmp_path) -> None:
    result = codebot(["runs", "--runs-dir", str(runs)], env(), tmp_path)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["run", "title", "outcome", "iters", "cost", "time", "started", "(UTC)"]
    assert [(r[0], r[-6], r[-5], r[-4], r[-3]) for r in rows[1:]] == [
        (INTERRUPTED, "interrupted", "1", "$0.0123", "–"),
        (FAILED, "max_iterations", "1", "unknown", "30s"),
        (PASSED, "passed", "2", "$0.0123", "12s"),
    ]
    assert "Support minutes (cccccc)" in result.stdout


def test_show_latest_is_the_interrupted_run(runs, tmp_path) -> None:
    result = codebot(["show", "--runs-dir", str(runs)], env(), tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"run {INTERRUPTED}: interrupted")
    assert "stopped: interrupted (stopped after iteration 1)" in out
    assert "timings: none recorded" in out


def test_show_a_passed_run_gives_its_edits_as_diffs_refusals_checks_and_spend(
    runs, tmp_path
) -> None:
    out = codebot(["show", PASSED[:11], "--runs-dir", str(runs)], env(), tmp_path).stdout
    lines = [line.rstrip() for line in out.splitlines()]
    assert "task: Support minutes (aaaaaa)" in lines
    assert "  ✗ test: `run test` 6 tests failed (0.5s)" in lines  # the baseline
    assert "  duration.py (block 1): refused no match; closest lines: def parse_dur" in lines
    assert "    -    return int(text)" in lines and "    +    return 0" in lines
    first, second = out.index("iteration 1"), out.index("iteration 2")
    assert first < out.index("refused") < second
    assert '    +_UNITS = {"h": 3600, "m": 60, "s": 1}' in lines
    assert "    ✓ lint: `run lint` passed (0.5s)" in lines
    assert "stopped: passed (in iteration 2 of 4)" in lines
    assert "tokens: 1,200 prompt + 300 completion; cost $0.0123" in lines
    assert "timings: baseline 1.0s, total 12.4s" in lines
    assert "files changed: duration.py" in lines


def test_show_a_failed_run_names_its_failing_tests(runs, tmp_path) -> None:
    out = codebot(["show", FAILED, "--runs-dir", str(runs)], env(), tmp_path).stdout
    assert "run 20261129-110000-bbbbbb: max_iterations" in out
    assert "    ✗ test: `run test` 1 test failed (0.5s)" in out
    assert "        failing: test_minutes" in out
    assert "tokens: 1,200 prompt + 300 completion; cost unknown" in out


def test_on_a_terminal_the_diffs_are_coloured(runs, tmp_path) -> None:
    code, screen = run_in_pty(
        ["show", PASSED, "--runs-dir", str(runs)], {**env(), "TERM": "xterm-256color"}
    )
    assert code == 0, screen
    assert re.search(r"\x1b\[32m\s*\+_UNITS", screen)  # added lines green
    assert re.search(r"\x1b\[31m\s*-_UNITS", screen)  # removed lines red
    assert "iteration 2" in ANSI.sub("", screen)


def test_an_unknown_run_says_how_to_list_them(runs, tmp_path) -> None:
    result = codebot(["show", "nope", "--runs-dir", str(runs)], env(), tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"codebot: error: no run match `nope` in {runs} — `codebot runs` lists them"
    )


def test_with_no_runs_show_fails_and_runs_says_so(tmp_path) -> None:
    empty = tmp_path / "none"
    empty.mkdir()
    shown = codebot(["show", "--runs-dir", str(empty)], env(), tmp_path)
    assert shown.returncode == 2 and "no runs found" in shown.stderr
    listed = codebot(["runs", "--runs-dir", str(empty)], env(), tmp_path)
    assert listed.returncode == 0 and listed.stdout.startswith("codebot: no runs found")
