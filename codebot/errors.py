"""Every failure a user can act on is a CodebotError with a cause and a fix.

SDK exceptions are translated into these in the one module that imports the SDK;
only cli.py turns them into a one-line message and an exit code.
"""

from __future__ import annotations


class CodebotError(Exception):
    """Base class: `cause` says what went wrong, `fix` says what to do about it."""

    exit_code = 1

    def __init__(self, cause: str, fix: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def one_line(self) -> str:
        return f"{self.cause} — {self.fix}" if self.fix else self.cause


class SpecError(CodebotError):
    """The task spec is invalid; raised before any side effect."""

    exit_code = 2


class ConfigError(CodebotError):
    """Settings from env, .codebot.yml or flags are invalid or missing."""

    exit_code = 2


class ModelError(CodebotError):
    """The LLM endpoint failed after retries (unreachable, auth, malformed reply)."""

    exit_code = 3


class SandboxError(CodebotError):
    """The Docker engine or the sandbox image is unusable."""

    exit_code = 4


class WorkspaceError(CodebotError):
    """A git operation on the isolated clone or the target repo failed."""

    exit_code = 5


class ForgeError(CodebotError):
    """The GitHub API refused or failed a request."""

    exit_code = 6


class FileTooLarge(Exception):
    """A file in the sandbox is larger than the host agreed to read (sandboxed code wrote it,
    so it may be hostile). Not a CodebotError: callers turn it into a failed check's reason."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(f"{path} is {size} bytes, over the {limit}-byte limit")
        self.path, self.size, self.limit = path, size, limit
