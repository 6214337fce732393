"""The knowledge commands: learn, knowledge search (registered on `codebot.cli.cli`)."""

from __future__ import annotations
