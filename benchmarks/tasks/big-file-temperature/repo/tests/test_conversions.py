import pytest

from units import convert
from units.conversions import feet_to_meters, kilograms_to_pounds


def test_linear_conversions():
    assert feet_to_meters(10) == pytest.approx(3.048)
    assert kilograms_to_pounds(1) == pytest.approx(2.20462262)


def test_convert_by_name():
    assert convert(1, "miles", "kilometers") == pytest.approx(1.609344)


@pytest.mark.parametrize(
    ("value", "frm", "to", "expected"),
    [
        (100, "celsius", "fahrenheit", 212),
        (212, "fahrenheit", "celsius", 100),
        (-40, "fahrenheit", "celsius", -40),
        (0, "celsius", "kelvin", 273.15),
    ],
)
def test_temperatures(value, frm, to, expected):
    assert convert(value, frm, to) == pytest.approx(expected)


def test_unknown_pair():
    with pytest.raises(ValueError):
        convert(1, "feet", "grams")
