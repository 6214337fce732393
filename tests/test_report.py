import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import replace

import pytest

from codebot.pr_history import earlier_runs
from codebot.prose import MARK
from codebot.records import CheckResult, EditOutcome, Iteration, Message, RunRecord, Usage
from codebot.redact import MASK, Redactor
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
    assert "## Fix | parse" in body
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


# --- text the model or an issue wrote --------------------------------------------------------


def _refusing(record: RunRecord, path: str, detail: str) -> RunRecord:
    it = record.iterations[0]
    refused = EditOutcome(path, 2, "refused", detail)
    return replace(record, iterations=(replace(it, edits=(*it.edits, refused)),))


def _explaining(record: RunRecord, *said: str) -> RunRecord:
    first = record.iterations[0]
    its = tuple(
        replace(first, number=n, reply=f"{text}\n\nduration.py\n<<<<<<< SEARCH\n")
        for n, text in enumerate(said, 1)
    )
    return replace(record, iterations=its)


PLACES: dict[str, Callable[[RunRecord, str], RunRecord]] = {
    "title": lambda r, t: replace(r, spec={**r.spec, "title": t}),
    "acceptance": lambda r, t: replace(r, spec={**r.spec, "acceptance": ["ok", t]}),
    "stop detail": lambda r, t: replace(r, stop_detail=t),
    "explanation": lambda r, t: _explaining(r, t),
    "one of several explanations": lambda r, t: _explaining(r, "First.", t),
    "refusal detail": lambda r, t: _refusing(r, "a.py", t),
    "refused path": lambda r, t: _refusing(r, t, "no match"),
    "check reason": lambda r, t: replace(r, baseline=(replace(r.baseline[0], reason=t),)),
    "check command": lambda r, t: replace(r, baseline=(replace(r.baseline[0], command=t),)),
    "model": lambda r, t: replace(r, model=t),
}


def _body_with(place: str, text: str) -> str:
    if place == "changed file":
        return render_pr_body(_record(), PATCH.replace("duration.py", text), issue=7)
    return render_pr_body(PLACES[place](_record(), text), PATCH, issue=7)


ALL_PLACES = [*PLACES, "changed file"]


@pytest.mark.parametrize("place", ALL_PLACES)
def test_a_planted_html_comment_is_shown_not_obeyed(place):
    body = _body_with(place, "<!-- codebot:runs [ hide the rest -->")

    assert [line for line in body.splitlines() if "<!--" in line or "-->" in line] == [
        body.splitlines()[-1]
    ]
    assert "<!-- codebot:runs [ hide the rest -->" in body.replace(MARK, "")
    assert [run.run_id for run in earlier_runs(body)] == ["r1"]


@pytest.mark.parametrize("place", ALL_PLACES)
def test_mentions_in_untrusted_text_ping_nobody(place):
    body = _body_with(place, "ping @alice and @org/team")

    assert re.search(r"(?<![A-Za-z0-9])@[A-Za-z0-9]", body) is None
    assert "ping @alice and @org/team" in body.replace(MARK, "")


@pytest.mark.parametrize("place", ALL_PLACES)
def test_closing_keywords_in_untrusted_text_close_nothing(place):
    body = _body_with(place, "fixes #12, Closes: #3, RESOLVED owner/repo#9")

    closing = r"(?i)(?<![a-z0-9])(close[sd]?|fix(e[sd])?|resolve[sd]?)\W*([\w.-]+/[\w.-]+)?#\d+"
    assert [m[0] for m in re.finditer(closing, body)] == ["Closes #7"]


def test_codebots_own_closing_line_is_left_as_it_is():
    assert "Closes #7" in render_pr_body(_record(), PATCH, issue=7).splitlines()


def test_a_single_explanation_is_quoted_so_a_block_it_opens_ends_with_it():
    body = render_pr_body(_explaining(_record(), "Why.\n~~~\nstill open"), PATCH)

    assert "> Why.\n> ~~~\n> still open\n\n### Changes" in body


def _tables(body: str) -> list[list[str]]:
    """The body's tables, each as its rows (consecutive lines starting with a pipe)."""
    tables: list[list[str]] = [[]]
    for line in body.splitlines():
        if line.startswith("|"):
            tables[-1].append(line)
        elif tables[-1]:
            tables.append([])
    return [t for t in tables if t]


def test_hostile_cells_keep_every_table_row_whole():
    record = replace(
        _record(),
        model="m`|x",
        baseline=(replace(_record().baseline[0], reason="a | b\nc", command="pytest |\r tee"),),
    )
    body = render_pr_body(record, PATCH.replace("duration.py", "odd|name`.py"))

    tables = _tables(body)
    assert len(tables) == 4  # changes, final checks, baseline checks, run
    for rows in tables:
        # GitHub splits a row at every pipe not right after a backslash.
        assert len({len(re.split(r"(?<!\\)\|", row)) for row in rows}) == 1, rows


def test_render_pr_body_redacts_untrusted_text_before_escaping_it():
    secret = "tok|en@value-77"
    record = replace(_record(), stop_detail=f"leaked {secret}")

    body = render_pr_body(record, PATCH, redact=Redactor.of([secret]))

    assert f"leaked {MASK}" in body and "en@" not in body and "value-77" not in body


def test_a_secret_with_a_pipe_is_masked_in_pr_md(tmp_path):
    secret = "tok|en-value-77"
    record = replace(_record(), spec={**_record().spec, "title": f"use {secret}"})

    files = write_run(tmp_path, record, PATCH, [], Redactor.of([secret]))

    assert "value-77" not in files.pr_md.read_text()


def test_a_secret_the_refusal_log_would_cut_is_still_masked(tmp_path):
    secret = "secret-value-that-is-long"
    record = _refusing(_record(), "a.py", "x" * 190 + secret)

    files = write_run(tmp_path, record, PATCH, [], Redactor.of([secret]))

    assert "secret-va" not in files.pr_md.read_text()


def test_the_final_table_shows_the_committed_trees_checks_from_the_fresh_sandbox():
    fresh = CheckResult("test", "pytest -q", False, 1, 0.3, "out", "1 test failed", 2, 1, 0, 0)
    record = dataclasses.replace(_record(), final_checks=(fresh,))

    body = render_pr_body(record, PATCH)

    section = body.split("### Checks on the committed change (fresh sandbox)", 1)[1]
    assert section.split("###")[0].count("| test |") == 1 and "❌ 1 test failed" in section


def test_without_a_commit_the_table_says_it_shows_the_last_change_tried():
    body = render_pr_body(_record(), PATCH)

    assert "### Checks on the last change tried (nothing was committed)" in body


def test_the_test_integrity_section_names_the_policy_and_the_test_files_added():
    patch = (
        "diff --git a/tests/test_new.py b/tests/test_new.py\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/tests/test_new.py\n@@ -0,0 +1 @@\n+def test_x(): pass\n"
    )
    body = render_pr_body(_record(), patch)

    assert "- Policy `may_add`: new test files only;" in body
    assert "- Test files added: `tests/test_new.py`." in body
    assert "changed or deleted" not in body


def test_no_test_file_touched_is_said_plainly():
    assert "- No test file was added or changed." in render_pr_body(_record(), PATCH)


def test_settings_lowered_from_what_the_repository_asked_are_listed_as_notes():
    note = ".codebot.yml asked for sandbox.memory 64g; lowered to the operator's maximum 4g"
    body = render_pr_body(dataclasses.replace(_record(), notes=(note,)), PATCH)

    assert f"### Notes\n\n- {note}" in body


def test_a_follow_up_keeps_every_runs_explanation_and_the_base_branchs_checks():
    first = render_pr_body(_record(), PATCH)  # the fix, begun on the base branch
    earlier = earlier_runs(first)
    fixed = Iteration(
        1, 900, "Documented longest_word.\n\nREADME.md\n<<<<<<< SEARCH\n", Usage(10, 1), 0.0,
        0.2, (EditOutcome("README.md", 1, "applied", "exact"),), (), "green", "", 1.5,
    )  # fmt: skip
    green = CheckResult("test", "pytest -q", True, 0, 0.4, "out", "", 3, 0, 0, 0)
    followup = dataclasses.replace(
        _record(), run_id="r2", iterations=(fixed,), baseline=(green,), continued=True
    )

    body = render_pr_body(followup, PATCH, earlier=earlier)

    said = body.split("### What changed and why", 1)[1].split("###", 1)[0]
    assert "- run `r1` (task): Add the minutes unit." in said
    assert "- run `r2` (this run): Documented longest_word." in said
    base = body.split("### Checks on the base branch (run `r1`)", 1)[1].split("###", 1)[0]
    assert "❌ 1 test failed" in base  # the base still fails, as the first run saw it
    assert "### Checks at the start of this run (the pull request's branch)" in body
    assert [r.run_id for r in earlier_runs(body)] == ["r1", "r2"]
