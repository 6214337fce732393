import pytest

from sizes import format_size, parse_size


def test_plain_bytes():
    assert parse_size("512") == 512
    assert parse_size("512 b") == 512


def test_decimal_units_are_powers_of_1000():
    assert parse_size("1KB") == 1000
    assert parse_size("1.5 MB") == 1_500_000


def test_binary_units_are_powers_of_1024():
    assert parse_size("1KiB") == 1024
    assert parse_size("2 gib") == 2 * 1024**3


def test_format_uses_binary_units_and_says_so():
    assert format_size(1536) == "1.5 KiB"
    assert format_size(999) == "999 B"


def test_garbage_is_rejected():
    with pytest.raises(ValueError):
        parse_size("ten megs")
