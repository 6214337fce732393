"""codebot: an AI coding bot that lives in CI and opens honest pull requests."""

__version__ = "0.1.0"
