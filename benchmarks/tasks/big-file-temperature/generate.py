"""Writes units/conversions.py, this task's one very large file (about 95 KB), deterministically.

    python3 generate.py REPO_DIR

One function per pair of units in each family, as the real module was generated years ago
and then edited by hand (the temperature section, which is not linear, was written by hand;
it holds the bug this task is about, in the middle of the file).
"""

from __future__ import annotations

import sys
from pathlib import Path

# unit name -> size in the family's base unit
FAMILIES: dict[str, dict[str, float]] = {
    "length": {
        "millimeters": 0.001, "centimeters": 0.01, "meters": 1.0, "kilometers": 1000.0,
        "inches": 0.0254, "feet": 0.3048, "yards": 0.9144, "miles": 1609.344,
        "nautical_miles": 1852.0, "furlongs": 201.168, "micrometers": 1e-6, "leagues": 4828.032,
    },
    "mass": {
        "milligrams": 1e-6, "grams": 0.001, "kilograms": 1.0, "tonnes": 1000.0,
        "ounces": 0.028349523125, "pounds": 0.45359237, "stones": 6.35029318,
        "short_tons": 907.18474, "carats": 0.0002,
    },
    "volume": {
        "milliliters": 0.001, "liters": 1.0, "cubic_meters": 1000.0, "teaspoons": 0.00492892159375,
        "tablespoons": 0.01478676478125, "cups": 0.2365882365, "pints": 0.473176473,
        "gallons": 3.785411784, "fluid_ounces": 0.0295735295625, "quarts": 0.946352946,
    },
    "area": {
        "square_meters": 1.0, "square_kilometers": 1e6, "square_feet": 0.09290304,
        "square_yards": 0.83612736, "acres": 4046.8564224, "hectares": 10000.0,
        "square_miles": 2589988.110336,
    },
    "energy": {
        "joules": 1.0, "kilojoules": 1000.0, "calories": 4.184, "kilocalories": 4184.0,
        "watt_hours": 3600.0, "kilowatt_hours": 3.6e6, "btus": 1055.05585262, "therms": 1.05480400e8,
    },
    "pressure": {
        "pascals": 1.0, "kilopascals": 1000.0, "bars": 1e5, "atmospheres": 101325.0,
        "psi": 6894.757293168, "millimeters_of_mercury": 133.322387415,
    },
    "speed": {
        "meters_per_second": 1.0, "kilometers_per_hour": 1 / 3.6, "miles_per_hour": 0.44704,
        "knots": 1852 / 3600, "feet_per_second": 0.3048, "mach": 340.29,
    },
    "data": {
        "bytes": 1.0, "kilobytes": 1e3, "megabytes": 1e6, "gigabytes": 1e9, "kibibytes": 1024.0,
        "mebibytes": 1024.0**2, "gibibytes": 1024.0**3, "bits": 0.125,
    },
}  # fmt: skip
TEMPERATURE_AFTER = "mass"  # the hand-written section sits between these families

HEADER = '''"""Unit conversions: one function per pair of units, grouped by family.

Generated from the unit table in 2019 and edited by hand since; the temperature section
was always hand-written, since those scales are not proportional. Functions take and return
floats; `convert(value, from_unit, to_unit)` looks them up by name.
"""

from __future__ import annotations

from collections.abc import Callable

'''

TEMPERATURE = '''
# --- temperature (hand-written: these scales have offsets, not just factors) --------------


def celsius_to_fahrenheit(value: float) -> float:
    """Degrees Celsius to degrees Fahrenheit."""
    return value * 9 / 5 + 32


def fahrenheit_to_celsius(value: float) -> float:
    """Degrees Fahrenheit to degrees Celsius."""
    return (value - 32) * 9 / 5


def celsius_to_kelvin(value: float) -> float:
    """Degrees Celsius to kelvin."""
    return value + 273.15


def kelvin_to_celsius(value: float) -> float:
    """Kelvin to degrees Celsius."""
    return value - 273.15


def fahrenheit_to_kelvin(value: float) -> float:
    """Degrees Fahrenheit to kelvin."""
    return celsius_to_kelvin(fahrenheit_to_celsius(value))


def kelvin_to_fahrenheit(value: float) -> float:
    """Kelvin to degrees Fahrenheit."""
    return celsius_to_fahrenheit(kelvin_to_celsius(value))

'''

FOOTER = '''

def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert by unit names, e.g. convert(3, "feet", "meters")."""
    if from_unit == to_unit:
        return float(value)
    function: Callable[[float], float] | None = globals().get(f"{from_unit}_to_{to_unit}")
    if function is None:
        raise ValueError(f"cannot convert {from_unit} to {to_unit}")
    return function(value)
'''


def pair(family: str, a: str, b: str, factor: float) -> str:
    words = lambda unit: unit.replace("_", " ")  # noqa: E731
    return (
        f"\n\ndef {a}_to_{b}(value: float) -> float:\n"
        f'    """{words(a).capitalize()} to {words(b)} ({family}).\n\n'
        f"    1 {words(a)} = {factor!r} {words(b)}, from the unit table.\n"
        f'    """\n'
        f"    return value * {factor!r}\n"
    )


def source() -> str:
    parts = [HEADER]
    for family, units in FAMILIES.items():
        parts.append(f"\n# --- {family} " + "-" * (86 - len(family)) + "\n")
        for a, size_a in units.items():
            for b, size_b in units.items():
                if a != b:
                    parts.append(pair(family, a, b, size_a / size_b))
        if family == TEMPERATURE_AFTER:
            parts.append("\n" + TEMPERATURE)
    parts.append(FOOTER)
    return "".join(parts)


def main(target: Path) -> None:
    (target / "units").mkdir(parents=True, exist_ok=True)
    (target / "units" / "conversions.py").write_text(source())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
