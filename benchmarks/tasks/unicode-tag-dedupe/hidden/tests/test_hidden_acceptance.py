import unicodedata

import pytest

from tagging.tags import dedupe, matches, normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Cafe\u0301", "caf\u00e9"),
        ("CAF\u00c9", "caf\u00e9"),
        ("Stra\u00dfe", "strasse"),
        ("  cr\u00e8me   br\u00fbl\u00e9e ", "cr\u00e8me br\u00fbl\u00e9e"),
        ("A\u030angstr\u00f6m", "\u00e5ngstr\u00f6m"),
    ],
)
def test_normalise(raw, expected):
    assert normalise(raw) == expected


def test_normalised_tags_are_nfc():
    tag = normalise("Jalapen\u0303o")
    assert unicodedata.is_normalized("NFC", tag)
    assert tag == "jalape\u00f1o"


def test_dedupe_across_unicode_spellings():
    tags = ["Cr\u00e8me", "cre\u0300me", "CR\u00c8ME", "Stra\u00dfe", "STRASSE"]
    assert dedupe(tags) == ["cr\u00e8me", "strasse"]


def test_search_is_insensitive_to_case_and_composition():
    assert matches("STRASSE", "Stra\u00dfenk\u00fcche")
    assert matches("cre\u0300me", "Cr\u00e8me br\u00fbl\u00e9e")
