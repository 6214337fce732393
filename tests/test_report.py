import dataclasses
import json

from codebot.records import CheckResult, EditOutcome, Iteration, Message, RunRecord, Usage
from codebot.redact import Redactor
from codebot.report import diff_stats, explanation, render_pr_body, write_run

PATCH = """diff --git a/duration.py b/duration.py
--- a/duration.py
+++ b/duration.py
@@ -1,2 +1,3 @@
-a
+b
+c
"""


def _record(stop="passed", cost=0.0123):
    test_fail = CheckResult("test", "pytest -q", False, 1, 0.5, "out", "1 test failed", 2, 1, 0, 0)
    test_ok = CheckResult("test", "pytest -q", True, 0, 0.4, "out", "", 3, 0, 0, 0)
    it = Iteration(
        1, 900, "Add the minutes unit.\n\nduration.py\n<<<<<<< SEARCH\n", Usage(800, 100), cost,
        0.2, (EditOutcome("duration.py", 1, "applied", "exact"),), (test_ok,), "green", "", 1.5,
    )  # fmt: skip
    return RunRecord(
        run_id="r1",
        spec={"title": "Fix | parse", "acceptance": ["1h30m == 5400"], "max_iterations": 4},
        model="m", repo="/r", base_ref="main", base_commit="abc", branch="codebot/x",
        started_at="t0", finished_at="t1", stop_reason=stop, stop_detail="in iteration 1 of 4",
        baseline=(test_fail,), iterations=(it,), usage=Usage(800, 100), cost_usd=cost,
        timings={"total_s": 3.2},
    )  # fmt: skip


def test_pr_body_has_summary_changes_checks_acceptance_and_costs():
    body = render_pr_body(_record(), PATCH, issue=7)
    assert "## Fix \\| parse" in body
    assert "Add the minutes unit." in body
    assert "| `duration.py` | +2 | −1 |" in body
    assert "| test | `pytest -q` | ✅ passed | 3 | 0 |" in body
    assert "❌ 1 test failed" in body  # the baseline
    assert "- [ ] 1h30m == 5400" in body
    assert "800 / 100" in body and "$0.0123" in body
    assert "Closes #7" in body


def test_pr_body_is_honest_about_a_failed_run_and_unknown_cost():
    body = render_pr_body(_record(stop="max_iterations", cost=None), PATCH)
    assert "⚠️ **stopped: iteration limit reached" in body
    assert "unknown" in body


def test_pr_body_says_which_request_options_the_endpoint_refused():
    assert "refused a request option" not in render_pr_body(_record(), PATCH)
    record = dataclasses.replace(
        _record(), model_adjustments=("temperature left out (the model refused 0.0)",)
    )
    body = render_pr_body(record, PATCH)
    assert (
        "The endpoint refused a request option: temperature left out (the model refused 0.0)."
        in body
    )


def test_explanation_stops_before_the_first_block_and_its_path_line():
    assert explanation("Fix it.\n\nsrc/a.py\n<<<<<<< SEARCH\nx") == "Fix it."
    assert explanation("Why.\n```diff\n--- a") == "Why."


def test_diff_stats_counts_per_file():
    assert diff_stats(PATCH) == {"duration.py": (2, 1)}


def test_written_files_are_redacted(tmp_path):
    record = _record()
    secret = "sk-live-secret-value-123"
    files = write_run(
        tmp_path, record, PATCH + f"+{secret}\n", [Message("user", f"key {secret}")],
        Redactor.of([secret]),
    )  # fmt: skip
    for path in (files.run_json, files.pr_md, files.patch, files.prompt):
        assert secret not in path.read_text()
    assert json.loads(files.run_json.read_text())["passed"] is True
