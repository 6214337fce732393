"""The commands around a run: doctor, show, runs, init (registered on `codebot.cli.cli`)."""

from __future__ import annotations
