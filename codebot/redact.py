"""Secrets never leave the process: everything written or sent goes through a Redactor.

It knows the values of the configured secrets (API keys, tokens, any CODEBOT_SECRET_*) and
the shapes of common credentials, and replaces both wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from codebot.protocols import Model
from codebot.records import Completion, Message

SECRET_ENV_NAMES = ("OPENAI_API_KEY", "GITHUB_TOKEN", "GH_TOKEN", "AZURE_OPENAI_API_KEY")
_SECRET_NAME = re.compile(r"(?i)(^CODEBOT_SECRET_|TOKEN$|SECRET$|PASSWORD$|API_KEY$|_KEY$)")
_SHAPES = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-[A-Za-z0-9_-]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})"
)
MIN_SECRET_LEN = 6
MASK = "[REDACTED]"


@dataclass(frozen=True)
class Redactor:
    secrets: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str], extra: Iterable[str] = ()) -> Redactor:
        values = [v for k, v in env.items() if k in SECRET_ENV_NAMES or _SECRET_NAME.search(k)]
        return cls.of([*values, *extra])

    @classmethod
    def of(cls, values: Iterable[str]) -> Redactor:
        # Longest first, so a secret that contains another is masked whole.
        kept = {v for v in values if v and len(v) >= MIN_SECRET_LEN}
        return cls(tuple(sorted(kept, key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _SHAPES.sub(MASK, text)

    def leaks(self, text: str) -> bool:
        return self(text) != text


class RedactingModel:
    """Wraps a Model so that no configured secret can reach the endpoint in a prompt."""

    def __init__(self, inner: Model, redact: Redactor) -> None:
        self.inner, self.redact, self.name = inner, redact, inner.name

    @property
    def adjustments(self) -> Sequence[str]:
        return self.inner.adjustments

    def complete(self, messages: Sequence[Message], variant: int = 0) -> Completion:
        said = [Message(m.role, self.redact(m.content)) for m in messages]
        if not variant:
            return self.inner.complete(said)
        varied: Any = self.inner  # OpenAIModel.complete takes a candidate's `variant`
        return varied.complete(said, variant)  # type: ignore[no-any-return]
