"""The text codebot sends to the model: plain template files beside this module.

Templates use `string.Template` ($name); a missing value is an error, never a silent gap.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from string import Template


@cache
def template(name: str) -> Template:
    return Template(resources.files(__name__).joinpath(name).read_text(encoding="utf-8"))


def render(name: str, **values: object) -> str:
    """The template `name` (e.g. "feedback.md") with every $placeholder filled."""
    return template(name).substitute(values)


def text(name: str) -> str:
    """A template with no placeholders, as it is."""
    return template(name).template


def snippet(name: str, **values: object) -> str:
    """A short template rendered for use inside other text: without its final newline."""
    return render(name, **values).removesuffix("\n")
