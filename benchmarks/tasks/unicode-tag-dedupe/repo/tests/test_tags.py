import pytest

from tagging.tags import dedupe, matches, normalise, parse_list


def test_normalise_trims_and_lowers():
    assert normalise("  Quick   Dinner ") == "quick dinner"


def test_dedupe_keeps_first_occurrence_order():
    assert dedupe(["Vegan", "soup", "vegan ", "Soup"]) == ["vegan", "soup"]


def test_accents_typed_two_ways_are_one_tag():
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    assert dedupe([composed, decomposed]) == ["caf\u00e9"]


def test_sharp_s_matches_ss():
    assert matches("strasse", "Straße food")


def test_parse_list():
    assert parse_list("Soup; vegan, SOUP,") == ["soup", "vegan"]


def test_empty_tag_is_refused():
    with pytest.raises(ValueError):
        normalise("   ")
