"""Text from the model or an issue, made safe to show on GitHub."""

from __future__ import annotations

import re

import pytest

from codebot.prose import MARK, cell, code_cell, inline, neutralise, quoted, well_formed

# What GitHub acts on, written as loosely as GitHub might read it.
MENTION = re.compile(r"(?<![A-Za-z0-9])@[A-Za-z0-9]")
CLOSING = re.compile(
    r"(?i)(?<![a-z0-9])(close[sd]?|fix(e[sd])?|resolve[sd]?)\W*"
    r"([\w.-]+/[\w.-]+)?(#|GH-|https?://)"
)


def cells(row: str) -> list[str]:
    """A GFM table row split as GitHub splits it: at every `|` not right after a backslash."""
    return re.split(r"(?<!\\)\|", row.strip().strip("|"))


# --- HTML --------------------------------------------------------------------------------


def test_an_html_comment_can_neither_open_nor_close() -> None:
    text = neutralise("see <!-- codebot:runs [] --> here")

    assert "<!--" not in text and "-->" not in text
    assert text.replace(MARK, "") == "see <!-- codebot:runs [] --> here"


def test_html_tags_cannot_open_or_close_an_element() -> None:
    text = neutralise("<details><summary>x</summary> </details> <?php <!DOCTYPE")

    assert re.search(r"<[A-Za-z/!?]", text) is None


def test_a_less_than_sign_that_starts_no_html_is_left_alone() -> None:
    assert neutralise("a < b, c <= 3, x -> y, 2<3") == "a < b, c <= 3, x -> y, 2<3"


# --- mentions ------------------------------------------------------------------------------


@pytest.mark.parametrize("mention", ["@alice", "@org/team", "(@bob)", "cc:@carol", "é@dave"])
def test_user_and_team_mentions_no_longer_ping(mention: str) -> None:
    text = neutralise(f"thanks {mention}!")

    assert MENTION.search(text) is None
    assert text.replace(MARK, "") == f"thanks {mention}!"


def test_an_email_address_is_left_alone() -> None:
    assert neutralise("mail dev@example.com") == "mail dev@example.com"


# --- closing keywords ----------------------------------------------------------------------

KEYWORDS = ["close", "closes", "closed", "fix", "fixes", "fixed", "resolve", "resolves", "resolved"]
REFERENCES = ["#12", "owner/repo#9", "GH-3", "https://github.com/o/r/issues/4"]


@pytest.mark.parametrize("keyword", [*KEYWORDS, "FIXES", "Closes"])
@pytest.mark.parametrize("reference", REFERENCES)
def test_every_closing_keyword_before_a_reference_is_defused(keyword: str, reference: str) -> None:
    for said in (f"{keyword} {reference}", f"{keyword}: {reference}", f"**{keyword}** {reference}"):
        text = neutralise(f"This {said}.")

        assert CLOSING.search(text) is None, said
        assert text.replace(MARK, "") == f"This {said}."


def test_a_closing_keyword_without_a_reference_is_left_alone() -> None:
    assert neutralise("Fixed the parser; closes the file.") == "Fixed the parser; closes the file."


# --- text as a whole -----------------------------------------------------------------------


def test_neutralising_twice_changes_nothing_more() -> None:
    once = neutralise("<!-- @alice fixes #1 --> <b>")

    assert neutralise(once) == once


def test_lone_surrogates_become_replacement_characters() -> None:
    assert well_formed("a\ud800b\udfff") == "a\ufffdb\ufffd"
    assert neutralise("a\ud800b").encode() == "a\ufffdb".encode()


def test_well_formed_text_keeps_its_emoji() -> None:
    assert well_formed("ok 👍") == "ok 👍"


def test_inline_text_is_one_line() -> None:
    assert inline("  first\r\nsecond\rthird\n\n") == "first second third"


def test_quoted_text_keeps_every_line_inside_the_quote() -> None:
    lines = quoted("Why.\n\n~~~\nunclosed fence\r\n")

    assert lines == ["> Why.", ">", "> ~~~", "> unclosed fence"]


# --- table cells ---------------------------------------------------------------------------


def test_a_cell_keeps_pipes_and_line_breaks_inside_it() -> None:
    hostile = "a | b\nc \\| d"

    assert cells(f"| {cell(hostile)} | next |") == [" a \\| b c \\\\| d ", " next "]


def test_a_code_cell_stays_one_code_span_in_one_cell() -> None:
    value = code_cell("x`` y | z\nw")

    assert value == "```x`` y \\| z w```"
    assert len(cells(f"| {value} | next |")) == 2


def test_a_code_cell_pads_text_that_starts_or_ends_with_a_backtick() -> None:
    assert code_cell("`a") == "`` `a ``"


def test_a_code_cell_of_nothing_is_empty() -> None:
    assert code_cell(" ") == ""
