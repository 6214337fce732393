import pytest

from billing.money import format_cents, percent, to_cents


def test_to_cents():
    assert to_cents("19.99") == 1999


def test_to_cents_refuses_fractions_of_a_cent():
    with pytest.raises(ValueError):
        to_cents("1.005")


def test_format_cents():
    assert format_cents(-5) == "-0.05"


def test_percent():
    assert percent("0.075") == "7.5%"
