"""Test configuration: the files and sections that decide which tests run and what passes.

Whole files (conftest.py, pytest.ini, tox.ini, ...) are refused by name; pyproject.toml and
setup.cfg also hold the project's other settings, so only a change to their test sections is.
"""

from __future__ import annotations

import configparser
import re
import sys
from collections.abc import Callable

if sys.version_info >= (3, 11):
    import tomllib

# Files that decide how tests are collected or judged: no line of them may change.
CONFIG_FILES = frozenset(
    {"conftest.py", "pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml"}
    | {"tox.ini", "noxfile.py", ".coveragerc"}
)
_TEST_TABLES = ("tool.pytest", "tool.coverage")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]")

_Sections = dict[str, object]
_Reader = Callable[[str], _Sections]


def refuse_config_change(rel: str, before: str, after: str) -> str | None:
    """Why turning `before` into `after` changes the test sections of a pyproject.toml or
    setup.cfg; None for any other file, or when only other sections changed."""
    reader = _READERS.get(rel.rsplit("/", 1)[-1].casefold())
    return _refuse_sections(rel, before, after, *reader) if reader else None


def _refuse_sections(rel: str, before: str, after: str, read: _Reader, kind: str) -> str | None:
    """An unreadable result cannot be judged, so it is refused; an unreadable original had no
    test configuration in effect, so it counts as empty."""
    try:
        new = read(after)
    except (ValueError, configparser.Error) as exc:  # tomllib.TOMLDecodeError is a ValueError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (
            f"refused: after this edit {rel} is not valid {kind} ({first}), so its test "
            "configuration cannot be checked; keep the file valid"
        )
    try:
        old = read(before)
    except (ValueError, configparser.Error):
        old = {}
    changed = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
    if not changed:
        return None
    names = ", ".join(f"[{name}]" for name in changed)
    return (
        f"refused: it changes {names} in {rel}, which configures how the tests run; changing it "
        "could make tests pass without fixing the code, so edit only the other sections"
    )


def _toml_sections(text: str) -> _Sections:
    """[tool.pytest], [tool.pytest.*] and [tool.coverage.*] of a pyproject.toml, by name."""
    if sys.version_info < (3, 11):
        return _toml_sections_as_text(text)
    tool = tomllib.loads(text).get("tool", {})
    sections: _Sections = {}
    for name in ("pytest", "coverage"):
        table = tool.get(name, {}) if isinstance(tool, dict) else {}
        if not isinstance(table, dict):
            sections[f"tool.{name}"] = table
            continue
        loose = {key: value for key, value in table.items() if not isinstance(value, dict)}
        if loose:
            sections[f"tool.{name}"] = loose
        sections |= {f"tool.{name}.{k}": v for k, v in table.items() if isinstance(v, dict)}
    return sections


def _toml_sections_as_text(text: str) -> _Sections:
    """Python 3.10 has no tomllib: compare the lines of the test tables as written, and any
    other line naming pytest or coverage (a dotted key), which errs towards refusing."""
    sections: dict[str, list[str]] = {}
    table = ""
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            table = re.sub(r"[\s\"']", "", header.group(1))
        elif line.strip() and not line.lstrip().startswith("#"):
            if table.startswith(_TEST_TABLES):
                sections.setdefault(table, []).append(line.strip())
            elif re.search(r"pytest|coverage", line, re.IGNORECASE):
                sections.setdefault(table or "top level", []).append(line.strip())
    return dict(sections)


def _cfg_sections(text: str) -> _Sections:
    """[tool:pytest] and [coverage:*] of a setup.cfg, with [DEFAULT] merged in as they read it."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    return {
        name: dict(parser[name])
        for name in parser.sections()
        if name == "tool:pytest" or name.startswith("coverage:")
    }


_READERS: dict[str, tuple[_Reader, str]] = {
    "pyproject.toml": (_toml_sections, "TOML"),
    "setup.cfg": (_cfg_sections, "INI"),
}
