"""Specification of edit parsing and applying: what the model may send and what it is told back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codebot.config import DEFAULT_PROTECTED
from codebot.edits import (
    FUZZY_MIN_RATIO,
    FileTree,
    ParsedReply,
    TestsPolicy,
    apply_edits,
    is_test_path,
    parse_edits,
    refuse_path,
)
from codebot.records import Edit, EditOutcome

CALC = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"


def block(path: str, search: str, replace: str) -> str:
    return f"{path}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def sr(path: str, search: str, replace: str, number: int = 1, hint: int | None = None) -> Edit:
    return Edit(path, search, replace, "search_replace", number, hint)


def write(root: Path, rel: str, text: str) -> Path:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text.encode())
    return target


def backdate(target: Path) -> int:
    """Set an old modification time, so a test can tell whether the file was written again."""
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    return target.stat().st_mtime_ns


def apply_one(root: Path, edit: Edit) -> EditOutcome:
    (outcome,) = apply_edits(root, [edit], DEFAULT_PROTECTED)
    return outcome


def apply_reply(root: Path, reply: str) -> tuple[ParsedReply, tuple[EditOutcome, ...]]:
    parsed = parse_edits(reply)
    return parsed, apply_edits(root, parsed.edits, DEFAULT_PROTECTED)


# ---------------------------------------------------------------- parsing search/replace


def test_bare_search_replace_block_is_parsed() -> None:
    parsed = parse_edits("Fix it.\n\n" + block("src/calc.py", "a - b\n", "a + b\n"))
    assert parsed == ParsedReply((sr("src/calc.py", "a - b\n", "a + b\n"),), ())


@pytest.mark.parametrize(
    "reply",
    [
        "`src/calc.py`\n```python\n<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE\n```",
        "**src/calc.py**\n```\n<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE\n```",
        "```python\nsrc/calc.py\n<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE\n```",
        "### File: `src/calc.py`:\n\n<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE",
        "Update `src/calc.py`:\n<<<<<<< SEARCH\nold\n=======\nnew\n>>>>>>> REPLACE",
    ],
    ids=["backticks-before-fence", "bold-before-fence", "inside-fence", "heading-label", "prose"],
)
def test_path_line_is_found_however_it_is_decorated(reply: str) -> None:
    assert parse_edits(reply).edits == (sr("src/calc.py", "old\n", "new\n"),)


def test_following_blocks_reuse_the_last_named_path() -> None:
    reply = block("a.py", "1\n", "2\n") + "\nAnd then:\n\n" + block("", "3\n", "4\n")
    assert [(e.path, e.block) for e in parse_edits(reply).edits] == [("a.py", 1), ("a.py", 2)]


def test_search_without_any_path_is_a_problem() -> None:
    parsed = parse_edits("Here is the fix:\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n")
    assert parsed.edits == ()
    assert parsed.problems[0].startswith("block 1: SEARCH without a file path")


def test_unterminated_block_is_a_problem_and_does_not_swallow_the_next() -> None:
    reply = "a.py\n<<<<<<< SEARCH\nx\n=======\ny\n\n" + block("b.py", "p\n", "q\n")
    parsed = parse_edits(reply)
    assert parsed.edits == (sr("b.py", "p\n", "q\n", 2),)
    assert parsed.problems == ("block 1: SEARCH section has no closing `>>>>>>> REPLACE` line",)


def test_empty_search_section_means_create() -> None:
    (edit,) = parse_edits("new.py\n<<<<<<< SEARCH\n=======\nprint(1)\n>>>>>>> REPLACE").edits
    assert (edit.search, edit.replace) == ("", "print(1)\n")


def test_fence_tagged_diff_holding_search_blocks_is_read_as_search_replace() -> None:
    reply = "```diff\n" + block("a.py", "x\n", "y\n") + "```\n"
    assert parse_edits(reply) == ParsedReply((sr("a.py", "x\n", "y\n"),), ())


def test_fence_lines_inside_replace_are_content() -> None:
    reply = block("README.md", "old\n", "```sh\nmake\n```\n")
    assert parse_edits(reply).edits[0].replace == "```sh\nmake\n```\n"


# ---------------------------------------------------------------- parsing diffs

DIFF = """```diff
--- a/src/calc.py
+++ b/src/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
@@ -5,2 +5,2 @@
 def sub(a, b):
-    return a - b
+    return a + b
```
"""


def test_each_diff_hunk_becomes_one_edit_with_its_line_hint() -> None:
    edits = parse_edits(DIFF).edits
    assert [(e.path, e.format, e.block, e.hint_line) for e in edits] == [
        ("src/calc.py", "diff", 1, 1),
        ("src/calc.py", "diff", 2, 5),
    ]
    assert edits[0].search == "def add(a, b):\n    return a - b\n"
    assert edits[0].replace == "def add(a, b):\n    return a + b\n"


def test_mixed_formats_in_one_reply_are_both_parsed() -> None:
    reply = block("a.py", "x\n", "y\n") + "\n" + DIFF + "\n" + block("b.py", "p\n", "q\n")
    edits = parse_edits(reply).edits
    assert [(e.path, e.format, e.block) for e in edits] == [
        ("a.py", "search_replace", 1),
        ("src/calc.py", "diff", 2),
        ("src/calc.py", "diff", 3),
        ("b.py", "search_replace", 4),
    ]


def test_diff_after_an_unclosed_fence_is_still_parsed() -> None:
    reply = "```python\nprint('example')\n\n" + DIFF
    assert len(parse_edits(reply).edits) == 2


def test_diff_with_bad_hunk_counts_is_repaired() -> None:
    reply = "```diff\n--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,9 @@\n a\n-b\n+B\n c\n```"
    (edit,) = parse_edits(reply).edits
    assert (edit.search, edit.replace) == ("a\nb\nc\n", "a\nB\nc\n")


def test_hunk_counts_too_small_do_not_drop_lines() -> None:
    reply = "```diff\n--- a/x.py\n+++ b/x.py\n@@ -1,1 +1,1 @@\n a\n-b\n+B\n c\n```"
    assert parse_edits(reply).edits[0].search == "a\nb\nc\n"


def test_hunk_header_without_numbers_is_tolerated() -> None:
    reply = "```diff\n--- x.py\n+++ x.py\n@@ ... @@\n a\n-b\n+B\n```"
    (edit,) = parse_edits(reply).edits
    assert (edit.path, edit.search, edit.replace, edit.hint_line) == (
        "x.py",
        "a\nb\n",
        "a\nB\n",
        None,
    )


def test_blank_context_line_without_its_space_is_kept() -> None:
    reply = "```diff\n--- a/x.py\n+++ b/x.py\n@@ -1,3 +1,3 @@\n a\n\n-b\n+B\n```"
    assert parse_edits(reply).edits[0].search == "a\n\nb\n"


def test_blank_lines_between_files_of_a_diff_are_not_context() -> None:
    reply = "```diff\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n\n\n--- a/y.py\n+++ b/y.py\n"
    reply += "@@ -1 +1 @@\n-c\n+d\n```"
    assert [(e.path, e.search) for e in parse_edits(reply).edits] == [
        ("x.py", "a\n"),
        ("y.py", "c\n"),
    ]


def test_untagged_diff_fence_after_an_unclosed_fence_is_parsed() -> None:
    reply = "```python\nx = 1\n\n```python\ny = 2\n```\n\n```\n--- a/x.py\n+++ b/x.py\n"
    reply += "@@ -1 +1 @@\n-a\n+b\n```"
    assert [e.path for e in parse_edits(reply).edits] == ["x.py"]


def test_new_file_via_dev_null_diff(tmp_path: Path) -> None:
    reply = "```diff\n--- /dev/null\n+++ b/pkg/new.py\n@@ -0,0 +1,2 @@\n+x = 1\n+y = 2\n```"
    parsed, outcomes = apply_reply(tmp_path, reply)
    assert parsed.edits[0].path == "pkg/new.py"
    assert outcomes[0].status == "applied"
    assert (tmp_path / "pkg/new.py").read_text() == "x = 1\ny = 2\n"


def test_deleted_file_via_dev_null_diff(tmp_path: Path) -> None:
    write(tmp_path, "old.py", "x = 1\n")
    reply = "```diff\n--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n```"
    parsed, outcomes = apply_reply(tmp_path, reply)
    assert parsed.edits[0].delete
    assert outcomes[0].status == "applied"
    assert not (tmp_path / "old.py").exists()


def test_no_newline_marker_keeps_the_last_line_unterminated() -> None:
    reply = (
        "```diff\n--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1 @@\n+x\n\\ No newline at end of file\n```"
    )
    assert parse_edits(reply).edits[0].replace == "x"


def test_unparseable_diff_is_a_problem_not_an_exception() -> None:
    parsed = parse_edits("```diff\n@@ -1 +1 @@\n-a\n+b\n```")
    assert parsed.edits == ()
    assert parsed.problems[0].startswith("diff block 1: cannot parse")


# ---------------------------------------------------------------- parsing: fences around diffs

README_AND_CALC_DIFF = """```diff
--- a/README.md
+++ b/README.md
@@ -3,3 +3,3 @@
 ```sh
-make
+make install
 ```
--- a/src/calc.py
+++ b/src/calc.py
@@ -1,2 +1,2 @@
 def add(a, b):
-    return a - b
+    return a + b
```
"""
README_HUNK = ("README.md", "```sh\nmake\n```\n", "```sh\nmake install\n```\n")
CALC_HUNK = (
    "src/calc.py",
    "def add(a, b):\n    return a - b\n",
    "def add(a, b):\n    return a + b\n",
)


def sides(parsed: ParsedReply) -> list[tuple[str, str, str]]:
    return [(e.path, e.search, e.replace) for e in parsed.edits]


def test_fence_lines_in_a_hunk_do_not_end_the_diff_block() -> None:
    parsed = parse_edits(README_AND_CALC_DIFF)
    assert (sides(parsed), parsed.problems) == ([README_HUNK, CALC_HUNK], ())


def test_diff_touching_fence_lines_applies_to_every_file_it_names(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "# Calc\n\n```sh\nmake\n```\n")
    write(tmp_path, "src/calc.py", CALC)
    _, outcomes = apply_reply(tmp_path, README_AND_CALC_DIFF)
    assert [(o.path, o.status) for o in outcomes] == [
        ("README.md", "applied"),
        ("src/calc.py", "applied"),
    ]
    assert (tmp_path / "README.md").read_text() == "# Calc\n\n```sh\nmake install\n```\n"
    assert (tmp_path / "src/calc.py").read_text() == CALC.replace("a - b", "a + b", 1)


def test_longer_backtick_fence_holds_a_diff_with_fence_lines() -> None:
    reply = README_AND_CALC_DIFF.replace("```diff\n", "````diff\n").replace("\n```\n", "\n````\n")
    parsed = parse_edits(reply)
    assert (sides(parsed), parsed.problems) == ([README_HUNK, CALC_HUNK], ())


def test_tilde_fence_holds_a_diff_with_fence_lines() -> None:
    reply = README_AND_CALC_DIFF.replace("```diff\n", "~~~diff\n").replace("\n```\n", "\n~~~\n")
    parsed = parse_edits(reply)
    assert (sides(parsed), parsed.problems) == ([README_HUNK, CALC_HUNK], ())


def test_a_shorter_fence_line_does_not_close_a_longer_fence() -> None:
    reply = "The README reads:\n````markdown\n```sh\nmake\n```\n````\n\n```\n--- a/x.py\n"
    reply += "+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n```\n"
    assert [e.path for e in parse_edits(reply).edits] == ["x.py"]


def test_diff_in_an_indented_fence_is_read_relative_to_the_fence() -> None:
    reply = "1. Fix it:\n   ```diff\n   --- a/x.py\n   +++ b/x.py\n   @@ -1,2 +1,2 @@\n"
    reply += "    keep\n   -a\n   +b\n   ```\n"
    parsed = parse_edits(reply)
    assert (sides(parsed), parsed.problems) == ([("x.py", "keep\na\n", "keep\nb\n")], ())


def test_closing_fence_indented_like_a_context_line_still_closes_a_complete_hunk() -> None:
    parsed = parse_edits("```diff\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n ```\n")
    assert (sides(parsed), parsed.problems) == ([("x.py", "a\n", "b\n")], ())


def test_diff_cut_off_inside_a_hunk_is_a_problem_and_no_edit() -> None:
    reply = "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,5 +1,5 @@\n def add(a, b):\n-    return"
    parsed = parse_edits(reply)
    assert parsed.edits == ()
    assert parsed.problems == (
        "diff block 1: the reply ends inside the hunk `@@ -1,5 +1,5 @@` of calc.py, which has "
        "fewer lines than its header says, so the diff was cut off and none of this block was "
        "applied; send it again in full, and end every fence with a line of ```",
    )


def test_a_cut_diff_block_gives_no_edit_even_for_its_complete_hunks() -> None:
    cut = README_AND_CALC_DIFF.split("-    return a - b")[0]
    parsed = parse_edits(cut)
    assert parsed.edits == ()
    assert parsed.problems[0].startswith("diff block 1: the reply ends inside the hunk")


def test_a_fence_line_that_ends_a_cut_hunk_is_not_taken_for_the_closing_fence() -> None:
    reply = "```diff\n--- a/README.md\n+++ b/README.md\n@@ -1,4 +1,4 @@\n ```\n-make\n"
    reply += "+make install\n ```\n"
    parsed = parse_edits(reply)
    assert parsed.edits == ()
    assert parsed.problems[0].startswith("diff block 1: the reply ends inside the hunk")


def test_unclosed_diff_fence_is_read_to_the_end_and_reported() -> None:
    reply = "```diff\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    parsed = parse_edits(reply)
    assert sides(parsed) == [("x.py", "a\n", "b\n")]
    assert parsed.problems == (
        "diff block 1: its ```diff fence is never closed, so it was read up to the end of the "
        "reply; check that nothing is missing, end every fence with a line of ```, and wrap a "
        "diff that has ``` lines in a longer fence such as ````diff",
    )


def test_unclosed_diff_fence_ends_where_the_next_tagged_fence_opens() -> None:
    reply = "```diff\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n\nAnd:\n```python\n"
    reply += block("y.py", "c\n", "d\n") + "```\n"
    parsed = parse_edits(reply)
    assert sides(parsed) == [("x.py", "a\n", "b\n"), ("y.py", "c\n", "d\n")]
    assert parsed.problems[0].startswith(
        "diff block 1: its ```diff fence is never closed, so it was read up to the next fence "
        "(```python)"
    )


# ---------------------------------------------------------------- applying: matching


def test_exact_edit_applies_and_says_how(tmp_path: Path) -> None:
    write(tmp_path, "calc.py", CALC)
    outcome = apply_one(
        tmp_path,
        sr("calc.py", "def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n"),
    )
    assert (outcome.status, outcome.detail) == ("applied", "exact")
    assert (tmp_path / "calc.py").read_text() == CALC.replace("a - b", "a + b", 1)


def test_trailing_whitespace_differences_still_match(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "x = 1   \ny = 2\n")
    outcome = apply_one(tmp_path, sr("a.py", "x = 1\ny = 2\n", "x = 1\ny = 3\n"))
    assert (outcome.status, outcome.detail) == ("applied", "whitespace-insensitive")
    assert (tmp_path / "a.py").read_text() == "x = 1\ny = 3\n"


def test_reindents_replace_when_search_indentation_differs(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "class A:\n    def f(self):\n        return 1\n")
    edit = sr("a.py", "def f(self):\n    return 1\n", "def f(self):\n    x = 2\n    return x\n")
    assert apply_one(tmp_path, edit).detail == "whitespace-insensitive"
    assert (tmp_path / "a.py").read_text() == (
        "class A:\n    def f(self):\n        x = 2\n        return x\n"
    )


def test_small_drift_is_applied_by_fuzzy_match(tmp_path: Path) -> None:
    current = (
        "def total(items):\n"
        "    result = 0\n"
        "    for item in items:\n"
        "        result += item.price\n"
        "    return result\n"
    )
    write(tmp_path, "a.py", current)
    stale = current.replace("item.price", "item.cost")
    new = "def total(items):\n    return sum(i.price for i in items)\n"
    outcome = apply_one(tmp_path, sr("a.py", stale, new))
    assert (outcome.status, outcome.detail) == ("applied", "fuzzy (ratio 0.96)")
    assert (tmp_path / "a.py").read_text() == new


def test_fuzzy_match_never_changes_the_lines_around_its_span(tmp_path: Path) -> None:
    head = "import json\nimport os\n\n\n"
    write(
        tmp_path,
        "a.py",
        head + "def load(path):\n    with open(path) as f:\n        return json.load(f)\n",
    )
    stale = "def load(path):\n    with open(path) as f:\n        return json.load(f)\n\n\n\n"
    new = (
        'def load(path, encoding="utf-8"):\n'
        "    with open(path, encoding=encoding) as f:\n"
        "        return json.load(f)\n"
    )
    outcome = apply_one(tmp_path, sr("a.py", stale, new))
    assert (outcome.status, outcome.detail) == ("applied", "fuzzy (ratio 0.97)")
    assert (tmp_path / "a.py").read_text() == head + new


def test_fuzzy_match_is_refused_rather_than_drop_a_line_the_search_lacks(tmp_path: Path) -> None:
    current = (
        "def load(path):\n"
        "    with open(path) as f:\n"
        "        data = json.load(f)\n"
        '    log.debug("loaded %s", path)\n'
        "    return data\n"
    )
    target = write(tmp_path, "a.py", current)
    stale = current.replace('    log.debug("loaded %s", path)\n', "")
    outcome = apply_one(tmp_path, sr("a.py", stale, stale.replace("(path)", "(path, mode)")))
    assert outcome.status == "refused"
    assert '    4 |     log.debug("loaded %s", path)' in outcome.detail
    assert target.read_text() == current


def test_edit_with_stale_context_reports_closest_match(tmp_path: Path) -> None:
    write(tmp_path, "calc.py", CALC)
    outcome = apply_one(tmp_path, sr("calc.py", "def add(x, y):\n    return x * y\n", "pass\n", 3))
    assert outcome.status == "refused"
    assert "block 3" in outcome.detail and "calc.py" in outcome.detail
    assert "    1 | def add(a, b):" in outcome.detail
    assert "similarity 0." in outcome.detail
    assert (tmp_path / "calc.py").read_text() == CALC


def test_fuzzy_threshold_is_high_enough_to_refuse_a_different_function(tmp_path: Path) -> None:
    assert FUZZY_MIN_RATIO >= 0.9
    write(tmp_path, "a.py", "def alpha():\n    return 1\n")
    assert apply_one(tmp_path, sr("a.py", "def beta():\n    return 2\n", "x\n")).status == "refused"


def test_ambiguous_match_without_hint_asks_for_more_context(tmp_path: Path) -> None:
    write(tmp_path, "calc.py", CALC)
    outcome = apply_one(tmp_path, sr("calc.py", "    return a - b\n", "    return a + b\n"))
    assert outcome.status == "refused"
    assert "matches 2 places (lines 2, 6)" in outcome.detail
    assert "more context" in outcome.detail


def test_ambiguous_search_is_refused_even_if_the_replace_text_is_elsewhere(tmp_path: Path) -> None:
    write(tmp_path, "calc.py", CALC + "\n\ndef plus(a, b):\n    return a + b\n")
    outcome = apply_one(tmp_path, sr("calc.py", "    return a - b\n", "    return a + b\n"))
    assert outcome.status == "refused"


def test_hint_line_picks_the_nearest_of_equal_matches(tmp_path: Path) -> None:
    write(tmp_path, "calc.py", CALC)
    outcome = apply_one(tmp_path, sr("calc.py", "    return a - b\n", "    return a + b\n", hint=5))
    assert outcome.status == "applied"
    assert (tmp_path / "calc.py").read_text().splitlines()[1::4] == [
        "    return a - b",
        "    return a + b",
    ]


def test_all_hunks_of_a_diff_apply_in_order(tmp_path: Path) -> None:
    write(tmp_path, "src/calc.py", CALC)
    _, outcomes = apply_reply(tmp_path, DIFF)
    assert [o.status for o in outcomes] == ["applied", "applied"]
    assert (tmp_path / "src/calc.py").read_text() == CALC.replace("a - b", "a + b")


def test_diff_with_wrong_line_numbers_applies(tmp_path: Path) -> None:
    write(tmp_path, "calc.py", "# header\n\n" + CALC)
    reply = """```diff
--- a/calc.py
+++ b/calc.py
@@ -40,2 +40,2 @@
 def sub(a, b):
-    return a - b
+    return a + b
```"""
    _, outcomes = apply_reply(tmp_path, reply)
    assert outcomes[0].status == "applied"
    assert (tmp_path / "calc.py").read_text().endswith("def sub(a, b):\n    return a + b\n")


def calc_hunk(header: int, old: str = "def sub(a, b):") -> str:
    return (
        f"```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -{header},2 +{header},2 @@\n {old}\n"
        "-    return a - b\n+    return a + b\n```"
    )


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (5, "exact"),
        (40, "exact, moved by -35 lines from the header's line 40"),
        (4, "exact, moved by 1 line from the header's line 4"),
        (1, "exact, moved by 4 lines from the header's line 1"),
    ],
)
def test_diff_hunk_found_away_from_its_header_line_says_how_far(
    tmp_path: Path, header: int, detail: str
) -> None:
    write(tmp_path, "calc.py", CALC)
    _, (outcome,) = apply_reply(tmp_path, calc_hunk(header))
    assert (outcome.status, outcome.detail) == ("applied", detail)


def test_whitespace_insensitive_hunk_away_from_its_header_says_how_far(tmp_path: Path) -> None:
    write(tmp_path, "calc.py", CALC.replace("def sub(a, b):", "def sub(a, b):  "))
    _, (outcome,) = apply_reply(tmp_path, calc_hunk(9))
    assert outcome.detail == "whitespace-insensitive, moved by -4 lines from the header's line 9"


def test_hunk_placed_by_the_lines_earlier_hunks_added_is_not_called_moved(tmp_path: Path) -> None:
    write(tmp_path, "calc.py", CALC)
    reply = (
        "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,4 @@\n+import math\n+\n"
        " def add(a, b):\n-    return a - b\n+    return a + b\n@@ -5,2 +7,2 @@\n def sub(a, b):\n"
        "-    return a - b\n+    return a + b\n```"
    )
    _, outcomes = apply_reply(tmp_path, reply)
    assert [(o.status, o.detail) for o in outcomes] == [("applied", "exact"), ("applied", "exact")]


def test_already_applied_edit_is_not_an_error(tmp_path: Path) -> None:
    write(tmp_path, "calc.py", CALC.replace("a - b", "a + b", 1))
    edit = sr("calc.py", "def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n")
    assert apply_one(tmp_path, edit).status == "already_applied"


def test_resent_insertion_is_not_applied_twice(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "import os\n")
    edit = sr("a.py", "import os\n", "import os\nimport sys\n")
    assert [apply_one(tmp_path, edit).status for _ in range(2)] == ["applied", "already_applied"]
    assert (tmp_path / "a.py").read_text() == "import os\nimport sys\n"


def test_replace_identical_to_the_matched_lines_is_already_applied_and_not_written(
    tmp_path: Path,
) -> None:
    target = write(tmp_path, "calc.py", CALC)
    stamp = backdate(target)
    outcome = apply_one(tmp_path, sr("calc.py", "def add(a, b):\n", "def add(a, b):\n"))
    assert (outcome.status, outcome.detail) == (
        "already_applied",
        "the edit changes nothing: REPLACE is identical to the lines it matched",
    )
    assert target.stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    "hunk",
    [" def add(a, b):\n     return a - b\n", "-    return a - b\n+    return a - b\n"],
    ids=["context-only", "removes-and-adds-the-same-line"],
)
def test_diff_hunk_without_a_real_change_is_already_applied_and_not_written(
    tmp_path: Path, hunk: str
) -> None:
    target = write(tmp_path, "calc.py", CALC)
    stamp = backdate(target)
    reply = f"```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n{hunk}```"
    _, (outcome,) = apply_reply(tmp_path, reply)
    assert (outcome.status, outcome.detail) == (
        "already_applied",
        "the edit changes nothing: REPLACE is identical to the lines it matched",
    )
    assert target.stat().st_mtime_ns == stamp


def test_later_edits_apply_after_an_earlier_refusal(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "x = 1\n")
    outcomes = apply_edits(
        tmp_path, [sr("a.py", "nope\n", "z\n", 1), sr("a.py", "x = 1\n", "x = 2\n", 2)], ()
    )
    assert [o.status for o in outcomes] == ["refused", "applied"]
    assert (tmp_path / "a.py").read_text() == "x = 2\n"


# ---------------------------------------------------------------- applying: files


def test_crlf_file_keeps_crlf(tmp_path: Path) -> None:
    target = write(tmp_path, "w.txt", "one\r\ntwo\r\n")
    apply_one(tmp_path, sr("w.txt", "two\n", "2\n"))
    assert target.read_bytes() == b"one\r\n2\r\n"


def test_missing_final_newline_stays_missing(tmp_path: Path) -> None:
    target = write(tmp_path, "a.txt", "one\ntwo")
    apply_one(tmp_path, sr("a.txt", "one\n", "1\n"))
    assert target.read_bytes() == b"1\ntwo"


def test_empty_search_creates_file_with_parents(tmp_path: Path) -> None:
    outcome = apply_one(tmp_path, sr("pkg/sub/new.py", "", "x = 1\n"))
    assert (outcome.status, outcome.detail) == ("applied", "created new file")
    assert (tmp_path / "pkg/sub/new.py").read_text() == "x = 1\n"


def test_empty_search_fills_an_existing_empty_file(tmp_path: Path) -> None:
    write(tmp_path, "empty.py", "")
    assert apply_one(tmp_path, sr("empty.py", "", "x = 1\n")).status == "applied"
    assert (tmp_path / "empty.py").read_text() == "x = 1\n"


def test_empty_search_on_a_file_with_content_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "x = 1\n")
    outcome = apply_one(tmp_path, sr("a.py", "", "y = 2\n"))
    assert outcome.status == "refused"
    assert "file exists; give SEARCH lines to change it" in outcome.detail


def test_recreating_a_file_with_the_same_content_is_already_applied(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "x = 1\n")
    assert apply_one(tmp_path, sr("a.py", "", "x = 1\n")).status == "already_applied"


def test_recreating_a_file_with_the_same_content_says_so_and_does_not_write_it(
    tmp_path: Path,
) -> None:
    target = write(tmp_path, "a.py", "x = 1\n")
    stamp = backdate(target)
    outcome = apply_one(tmp_path, sr("a.py", "", "x = 1\n"))
    assert outcome.detail == "the file already has exactly this content"
    assert target.stat().st_mtime_ns == stamp


def test_missing_file_refusal_suggests_similar_names(tmp_path: Path) -> None:
    write(tmp_path, "src/codebot/utils/calc.py", CALC)
    outcome = apply_one(tmp_path, sr("calc.py", "def add(a, b):\n", "def add(x, y):\n", 2))
    assert outcome.status == "refused"
    assert "block 2: calc.py does not exist" in outcome.detail
    assert "Similar files: src/codebot/utils/calc.py" in outcome.detail


def test_creating_under_a_path_that_is_a_file_is_refused_not_raised(tmp_path: Path) -> None:
    write(tmp_path, "calc.py", CALC)
    outcome = apply_one(tmp_path, sr("calc.py/extra.py", "", "x = 1\n"))
    assert outcome.status == "refused"
    assert "cannot write calc.py/extra.py" in outcome.detail


def test_deleting_a_missing_file_is_refused(tmp_path: Path) -> None:
    edit = Edit("gone.py", "", "", "diff", 1, delete=True)
    assert apply_one(tmp_path, edit).status == "refused"


# ---------------------------------------------------------------- path safety


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("/etc/passwd", "not a relative path"),
        ("../outside.py", "escapes the repository"),
        ("src/../../outside.py", "escapes the repository"),
        ("a\x00b", "NUL byte"),
        (".git/hooks/pre-commit", "(.git)"),
        ("sub/.git/config", "(.git)"),
        (".github/workflows/ci.yml", "protected by the bot's configuration (.github/workflows/**)"),
        ("./.codebot.yml", "protected by the bot's configuration (.codebot.yml)"),
    ],
)
def test_unsafe_paths_are_refused_with_the_rule(tmp_path: Path, path: str, rule: str) -> None:
    reason = refuse_path(tmp_path, path, DEFAULT_PROTECTED)
    assert reason is not None and rule in reason


@pytest.mark.parametrize(
    ("path", "glob"),
    [(".GITHUB/workflows/ci.yml", ".github/workflows/**"), (".CODEBOT.yml", ".codebot.yml")],
)
def test_protected_globs_match_whatever_the_case(tmp_path: Path, path: str, glob: str) -> None:
    outcome = apply_one(tmp_path, sr(path, "", "on: push\n"))
    assert (outcome.status, outcome.detail) == (
        "refused",
        f"block 1: refused: {path} is protected by the bot's configuration ({glob})",
    )
    assert not (tmp_path / path).exists()


@pytest.mark.parametrize(
    ("path", "shown", "named"),
    [
        ("a\x1bb.py", "a\\x1bb.py", "U+001B (a control character)"),
        ("x\u202e.py", "x\\u202e.py", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ],
)
def test_control_characters_in_a_path_are_refused_by_code_point_never_echoed(
    tmp_path: Path, path: str, shown: str, named: str
) -> None:
    outcome = apply_one(tmp_path, sr(path, "", "x = 1\n"))
    plain = path[0] + path[2:]
    assert (outcome.path, outcome.status, outcome.detail) == (
        shown,
        "refused",
        f"block 1: refused: the path '{shown}' contains {named}; file paths may not contain "
        "control or invisible formatting characters, so name the file with visible characters "
        f"only, such as `{plain}`",
    )
    assert list(tmp_path.iterdir()) == []


def test_refused_absolute_path_is_reported_as_given(tmp_path: Path) -> None:
    outcome = apply_one(tmp_path, sr("/etc/passwd", "", "x\n"))
    assert (outcome.path, outcome.status) == ("/etc/passwd", "refused")


def test_edit_into_git_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    outcome = apply_one(tmp_path, sr(".git/hooks/pre-commit", "", "#!/bin/sh\nrm -rf /\n"))
    assert outcome.status == "refused"
    assert not (tmp_path / ".git/hooks").exists()


def test_protected_refusal_names_path_and_glob(tmp_path: Path) -> None:
    outcome = apply_one(tmp_path, sr(".github/workflows/ci.yml", "", "on: push\n"))
    assert outcome.detail.endswith(
        "refused: .github/workflows/ci.yml is protected by the bot's configuration "
        "(.github/workflows/**)"
    )


def test_symlink_escaping_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "repo", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    outcome = apply_one(root, sr("link/evil.py", "", "x\n"))
    assert outcome.status == "refused" and "outside the repository" in outcome.detail
    assert not (outside / "evil.py").exists()


def test_symlink_into_a_protected_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".github/workflows").mkdir(parents=True)
    os.symlink(tmp_path / ".github/workflows", tmp_path / "docs")
    outcome = apply_one(tmp_path, sr("docs/ci.yml", "", "on: push\n"))
    assert "(.github/workflows/**)" in outcome.detail
    assert not (tmp_path / ".github/workflows/ci.yml").exists()


def test_dot_and_double_slash_are_normalised(tmp_path: Path) -> None:
    outcome = apply_one(tmp_path, sr("./src//new.py", "", "x\n"))
    assert (outcome.path, outcome.status) == ("src/new.py", "applied")
    assert refuse_path(tmp_path, "./src//new.py", DEFAULT_PROTECTED) is None


# ---------------------------------------------------------------- the work tree (FileTree)


def test_file_tree_reads_a_file_inside_the_root(tmp_path: Path) -> None:
    write(tmp_path, "src/calc.py", CALC)
    assert FileTree(tmp_path, ()).read("src/calc.py") == CALC


def test_file_tree_read_replaces_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    assert FileTree(tmp_path, ()).read("latin1.txt") == "caf\ufffd\n"


def test_file_tree_reads_a_symlink_as_absent(tmp_path: Path) -> None:
    write(tmp_path, "real.py", "x = 1\n")
    os.symlink(tmp_path / "real.py", tmp_path / "link.py")
    assert FileTree(tmp_path, ()).read("link.py") is None


def test_file_tree_reads_a_path_escaping_with_dotdot_as_absent(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    write(tmp_path, "secret.txt", "token\n")
    assert FileTree(root, ()).read("../secret.txt") is None


def test_file_tree_reads_a_missing_file_as_absent(tmp_path: Path) -> None:
    assert FileTree(tmp_path, ()).read("nope.py") is None


def test_file_tree_says_a_regular_file_exists(tmp_path: Path) -> None:
    write(tmp_path, "a.py", "x = 1\n")
    assert FileTree(tmp_path, ()).exists("a.py")


def test_file_tree_says_a_directory_is_not_a_file_that_exists(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    assert not FileTree(tmp_path, ()).exists("pkg")


def test_file_tree_says_a_missing_path_does_not_exist(tmp_path: Path) -> None:
    assert not FileTree(tmp_path, ()).exists("nope.py")


def test_file_tree_apply_refuses_its_protected_paths(tmp_path: Path) -> None:
    tree = FileTree(tmp_path, ("secrets/*",))
    refused, applied = tree.apply([sr("secrets/key.txt", "", "k\n", 1), sr("a.py", "", "x\n", 2)])
    assert (refused.status, applied.status) == ("refused", "applied")
    assert "protected by the bot's configuration (secrets/*)" in refused.detail
    assert not (tmp_path / "secrets").exists()


# ---------------------------------------------------------------- test integrity (tests policy)

TEST_CALC = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"


def apply_under(
    root: Path, edit: Edit, tests: TestsPolicy = "may_add", base: frozenset[str] = frozenset()
) -> EditOutcome:
    (outcome,) = apply_edits(root, [edit], DEFAULT_PROTECTED, tests, base)
    return outcome


def weaken_assertion(number: int = 1) -> Edit:
    return sr("tests/test_calc.py", "    assert add(2, 3) == 5\n", "    assert True\n", number)


def test_editing_an_existing_test_file_is_refused_under_may_add(tmp_path: Path) -> None:
    target = write(tmp_path, "tests/test_calc.py", TEST_CALC)
    outcome = apply_under(tmp_path, weaken_assertion(2), base=frozenset({"tests/test_calc.py"}))
    assert (outcome.status, outcome.detail) == (
        "refused",
        "block 2: refused: tests/test_calc.py is an existing test file; the task is to make the "
        "code pass its tests, not to change them (tests: may_add lets you add new test files only)",
    )
    assert target.read_text() == TEST_CALC


def test_editing_an_existing_test_file_is_allowed_under_may_edit(tmp_path: Path) -> None:
    write(tmp_path, "tests/test_calc.py", TEST_CALC)
    outcome = apply_under(
        tmp_path, weaken_assertion(), "may_edit", frozenset({"tests/test_calc.py"})
    )
    assert outcome.status == "applied"
    assert "assert True" in (tmp_path / "tests/test_calc.py").read_text()


def test_creating_a_new_test_file_is_allowed_under_may_add(tmp_path: Path) -> None:
    outcome = apply_under(tmp_path, sr("tests/test_sub.py", "", "def test_sub():\n    pass\n"))
    assert (outcome.status, outcome.detail) == ("applied", "created new file")


def test_creating_a_new_test_file_is_refused_under_frozen(tmp_path: Path) -> None:
    outcome = apply_under(tmp_path, sr("tests/test_sub.py", "", "def test_sub():\n"), "frozen")
    assert (outcome.status, outcome.detail) == (
        "refused",
        "block 1: refused: tests/test_sub.py is a test file and tests are frozen for this run "
        "(tests: frozen): no test file may be created, changed or deleted; "
        "change the code under test only",
    )
    assert not (tmp_path / "tests").exists()


def test_the_models_own_new_test_file_may_be_edited_under_may_add(tmp_path: Path) -> None:
    write(tmp_path, "tests/test_calc.py", TEST_CALC)  # created by an earlier reply: not in base
    outcome = apply_under(tmp_path, weaken_assertion(), base=frozenset({"calc.py"}))
    assert outcome.status == "applied"


def test_deleting_an_existing_test_file_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path, "tests/test_calc.py", TEST_CALC)
    edit = Edit("tests/test_calc.py", "", "", "diff", 1, delete=True)
    outcome = apply_under(tmp_path, edit, base=frozenset({"tests/test_calc.py"}))
    assert (outcome.status, outcome.detail) == (
        "refused",
        "block 1: refused: tests/test_calc.py is an existing test file; the task is to make the "
        "code pass its tests, not to delete them (tests: may_add lets you add new test files only)",
    )
    assert target.read_text() == TEST_CALC


def test_creating_a_conftest_is_refused(tmp_path: Path) -> None:
    hook = "def pytest_collection_modifyitems(items):\n    items.clear()\n"
    outcome = apply_under(tmp_path, sr("tests/conftest.py", "", hook))
    assert (outcome.status, outcome.detail) == (
        "refused",
        "block 1: refused: tests/conftest.py is test configuration (conftest.py); creating, "
        "changing or deleting it could make tests pass without fixing the code, so define any "
        "fixture you need inside your new test file instead",
    )
    assert not (tmp_path / "tests").exists()


def test_editing_pytest_ini_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path, "pytest.ini", "[pytest]\naddopts = -q\n")
    outcome = apply_under(
        tmp_path, sr("pytest.ini", "addopts = -q\n", "addopts = -q -k 'not add'\n")
    )
    assert (outcome.status, outcome.detail) == (
        "refused",
        "block 1: refused: pytest.ini is test configuration (pytest.ini); creating, changing or "
        "deleting it could make tests pass without fixing the code, so leave test configuration "
        "alone and fix the code under test",
    )
    assert target.read_text() == "[pytest]\naddopts = -q\n"


PYPROJECT = (
    '[project]\nname = "calc"\ndependencies = []\n\n[tool.pytest.ini_options]\naddopts = "-q"\n'
)


def test_editing_pyproject_outside_the_test_sections_is_allowed(tmp_path: Path) -> None:
    write(tmp_path, "pyproject.toml", PYPROJECT)
    edit = sr("pyproject.toml", "dependencies = []\n", 'dependencies = ["attrs"]\n')
    assert apply_under(tmp_path, edit).status == "applied"


def test_editing_pyproject_inside_tool_pytest_ini_options_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path, "pyproject.toml", PYPROJECT)
    edit = sr(
        "pyproject.toml", 'addopts = "-q"\n', 'addopts = "-q --deselect tests/test_calc.py"\n'
    )
    outcome = apply_under(tmp_path, edit)
    assert (outcome.status, outcome.detail) == (
        "refused",
        "block 1: refused: it changes [tool.pytest.ini_options] in pyproject.toml, which "
        "configures how the tests run; changing it could make tests pass without fixing the "
        "code, so edit only the other sections",
    )
    assert target.read_text() == PYPROJECT


def test_editing_the_tool_pytest_section_of_setup_cfg_is_refused(tmp_path: Path) -> None:
    cfg = "[metadata]\nname = calc\n\n[tool:pytest]\ntestpaths = tests\n"
    target = write(tmp_path, "setup.cfg", cfg)
    outcome = apply_under(tmp_path, sr("setup.cfg", "testpaths = tests\n", "testpaths = docs\n"))
    assert (outcome.status, outcome.detail) == (
        "refused",
        "block 1: refused: it changes [tool:pytest] in setup.cfg, which configures how the tests "
        "run; changing it could make tests pass without fixing the code, so edit only the other "
        "sections",
    )
    assert target.read_text() == cfg


def test_adding_a_skip_marker_to_a_source_file_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path, "calc.py", CALC)
    edit = sr("calc.py", "def add(a, b):\n", "@pytest.mark.skip\ndef add(a, b):\n", 3)
    outcome = apply_under(tmp_path, edit)
    assert (outcome.status, outcome.detail) == (
        "refused",
        "block 3: refused: it adds a skip/xfail marker (`@pytest.mark.skip`) to calc.py; "
        "fix the code under test instead",
    )
    assert target.read_text() == CALC


def test_an_existing_skip_line_kept_in_search_and_replace_is_not_an_added_marker(
    tmp_path: Path,
) -> None:
    skipped = '@pytest.mark.skipif(sys.platform == "win32", reason="posix")\n' + CALC
    write(tmp_path, "calc.py", skipped)
    search = '@pytest.mark.skipif(sys.platform == "win32", reason="posix")\ndef add(a, b):\n'
    edit = sr("calc.py", search + "    return a - b\n", search + "    return a + b\n")
    assert apply_under(tmp_path, edit).status == "applied"


def test_a_diff_hunk_adding_pytest_skip_is_refused(tmp_path: Path) -> None:
    target = write(tmp_path, "calc.py", CALC)
    reply = (
        "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,3 @@\n def add(a, b):\n"
        '+    pytest.skip("later")\n     return a - b\n```'
    )
    (edit,) = parse_edits(reply).edits
    outcome = apply_under(tmp_path, edit)
    assert (outcome.status, outcome.detail) == (
        "refused",
        'block 1: refused: it adds a skip/xfail marker (`pytest.skip("later")`) to calc.py; '
        "fix the code under test instead",
    )
    assert target.read_text() == CALC


@pytest.mark.parametrize(
    ("path", "is_test"),
    [
        ("tests/helpers.py", True),
        ("src/pkg/test/data.json", True),
        ("testing/util.py", True),
        ("web/__tests__/App.jsx", True),
        ("spec/models/user_spec.rb", True),
        ("test_calc.py", True),
        ("pkg/calc_test.py", True),
        ("pkg/conftest.py", True),
        ("server/handler_test.go", True),
        ("src/App.test.tsx", True),
        ("src/api.spec.mjs", True),
        ("Tests/Test_Calc.py", True),
        ("src/calc.py", False),
        ("src/test_utils.rs", False),
        ("src/testament.py", False),
        ("docs/testing.md", False),
        ("src/contest.js", False),
    ],
)
def test_is_test_path_follows_the_common_conventions(path: str, is_test: bool) -> None:
    assert is_test_path(path) is is_test


def test_file_tree_applies_its_test_policy_to_its_base_files(tmp_path: Path) -> None:
    write(tmp_path, "tests/test_calc.py", TEST_CALC)
    tree = FileTree(tmp_path, DEFAULT_PROTECTED, base_files=frozenset({"tests/test_calc.py"}))
    (outcome,) = tree.apply([weaken_assertion()])
    assert outcome.status == "refused" and "existing test file" in outcome.detail


@pytest.mark.parametrize(
    "path",
    [".github/actions/setup/action.yml", ".gitmodules", "lib/.gitignore", "docs/.gitattributes"],
)
def test_the_files_that_steer_ci_and_git_are_protected_by_default(tmp_path: Path, path: str):
    reason = refuse_path(tmp_path, path, DEFAULT_PROTECTED)
    assert reason is not None and "protected" in reason
