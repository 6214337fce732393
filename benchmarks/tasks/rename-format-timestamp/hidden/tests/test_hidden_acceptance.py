from pathlib import Path

import logtools
from logtools import render_line, summarise, timefmt

PACKAGE = Path(logtools.__file__).resolve().parent


def test_the_function_has_its_new_name():
    assert timefmt.format_timestamp(3723.5) == "01:02:03.500"
    assert logtools.format_timestamp is timefmt.format_timestamp


def test_the_old_name_is_gone_everywhere():
    assert not hasattr(timefmt, "fmt_ts")
    assert not hasattr(logtools, "fmt_ts")
    assert "fmt_ts" not in logtools.__all__
    for source in PACKAGE.rglob("*.py"):
        assert "fmt_ts" not in source.read_text(), source.name


def test_callers_still_work():
    assert render_line({"t": 61, "level": "info", "msg": "x"}).startswith("00:01:01.000 INFO")
    assert summarise([{"t": 0}, {"t": 90.5}]) == "duration 00:01:30.500; 2 info"


def test_parse_ts_is_unchanged():
    assert timefmt.parse_ts("00:00:02") == 2.0
