import pytest

from units import convert
from units.conversions import fahrenheit_to_celsius, fahrenheit_to_kelvin


@pytest.mark.parametrize(
    ("fahrenheit", "celsius"), [(212, 100), (32, 0), (-40, -40), (98.6, 37), (0, -17.7777778)]
)
def test_fahrenheit_to_celsius(fahrenheit, celsius):
    assert fahrenheit_to_celsius(fahrenheit) == pytest.approx(celsius)


def test_fahrenheit_to_kelvin_goes_through_celsius():
    assert fahrenheit_to_kelvin(32) == pytest.approx(273.15)


@pytest.mark.parametrize("value", [-40, 0, 37.5, 451])
def test_round_trips(value):
    assert convert(convert(value, "fahrenheit", "celsius"), "celsius", "fahrenheit") == (
        pytest.approx(value)
    )


def test_linear_families_are_untouched():
    assert convert(1, "pounds", "kilograms") == pytest.approx(0.45359237)
    assert convert(1, "atmospheres", "psi") == pytest.approx(14.6959488)
