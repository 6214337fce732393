"""Unit conversions."""

from units.conversions import convert

__all__ = ["convert"]
