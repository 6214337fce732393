import pytest

from duration import parse_duration


def test_hours_and_seconds():
    assert parse_duration("2h5s") == 7205


def test_minutes():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2m") == 120


def test_surrounding_space_and_case_are_ignored():
    assert parse_duration(" 1H ") == 3600


@pytest.mark.parametrize("text", ["", "abc", "10", "5x", "1h junk"])
def test_invalid_input_raises_value_error(text):
    with pytest.raises(ValueError):
        parse_duration(text)
