"""Typed settings: the .env file's values, overridden by the process environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from appconfig.dotenv import parse

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


class Settings:
    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    @classmethod
    def load(cls, path: Path, environ: Mapping[str, str] | None = None) -> Settings:
        file_values = parse(path.read_text(encoding="utf-8")) if path.exists() else {}
        return cls({**file_values, **(os.environ if environ is None else environ)})

    def str(self, key: str, default: str | None = None) -> str:
        if key in self._values:
            return self._values[key]
        if default is None:
            raise KeyError(f"setting {key} is required")
        return default

    def int(self, key: str, default: int | None = None) -> int:
        text = self.str(key, None if default is None else str(default))
        return int(text)

    def bool(self, key: str, default: bool | None = None) -> bool:
        text = self.str(key, None if default is None else str(default)).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise ValueError(f"setting {key}={text!r} is not a boolean")
