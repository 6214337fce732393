"""Render and summarise job logs."""

from logtools.render import render_line, render_log
from logtools.summary import summarise
from logtools.timefmt import fmt_ts, parse_ts

__all__ = ["fmt_ts", "parse_ts", "render_line", "render_log", "summarise"]
