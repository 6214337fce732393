"""The operator's ceiling over what a repository's .codebot.yml may ask of the sandbox.

A repository may raise memory, CPUs, processes and disk for a heavy test suite, up to the
maxima the operator allows (environment only); above them a value is lowered, and the run
record says so. Values that would switch a protection off (no process limit, no CPU limit,
zero memory) are refused, and the image must be one the operator named.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from codebot.errors import ConfigError

if TYPE_CHECKING:  # config imports this module; the type is only needed for annotations
    from codebot.config import SandboxConfig

# The images sandbox/setup-host.sh builds (config.TOOLCHAIN_IMAGES): the operator's own.
TOOLCHAIN_IMAGES = {
    "python": "codebot-sandbox:bookworm",
    "node": "codebot-sandbox:node",
    "go": "codebot-sandbox:go",
    "polyglot": "codebot-sandbox:polyglot",
}

MIN_PIDS = 16  # below this even `sh -c` plus the test runner cannot start
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*")
_SCALE = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class SandboxCeiling:
    """Maxima for a repository's sandbox settings (env CODEBOT_MAX_SANDBOX_*), and the
    images it may choose besides the operator's own (CODEBOT_ALLOWED_IMAGES)."""

    memory: str = "4g"
    cpus: float = 2.0
    pids: int = 1024
    disk: str = "4g"
    tmp_size: str = "2g"
    images: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SandboxCeiling:
        base = cls()
        images = tuple(
            i.strip() for i in env.get("CODEBOT_ALLOWED_IMAGES", "").split(",") if i.strip()
        )
        return cls(
            memory=_size_env(env, "CODEBOT_MAX_SANDBOX_MEMORY", base.memory),
            cpus=_positive(env, "CODEBOT_MAX_SANDBOX_CPUS", base.cpus),
            pids=int(_positive(env, "CODEBOT_MAX_SANDBOX_PIDS", base.pids)),
            disk=_size_env(env, "CODEBOT_MAX_SANDBOX_DISK", base.disk),
            tmp_size=_size_env(env, "CODEBOT_MAX_SANDBOX_TMP", base.tmp_size),
            images=images,
        )


def parse_size(size: str) -> int | None:
    """Bytes in a size such as 512m or 2g (None when it is not one)."""
    match = _SIZE.fullmatch(size.lower())
    if not match:
        return None
    return int(float(match.group(1)) * _SCALE[match.group(2)])


def bound(
    asked: SandboxConfig, operator: SandboxConfig, ceiling: SandboxCeiling, path: str
) -> tuple[SandboxConfig, tuple[str, ...]]:
    """`asked` (the operator's settings with the repository's on top) within the ceiling:
    the settings to use, and a note for each value that was lowered."""
    allowed = tuple(dict.fromkeys((operator.image, *TOOLCHAIN_IMAGES.values(), *ceiling.images)))
    if asked.image not in allowed:
        raise ConfigError(
            f"{path}: `sandbox.image` {asked.image!r} is not an image the operator allows",
            f"use one of: {', '.join(allowed)} (the operator adds images with "
            "CODEBOT_ALLOWED_IMAGES)",
        )
    if asked.pids < MIN_PIDS:
        raise ConfigError(
            f"{path}: `sandbox.pids` must be at least {MIN_PIDS} (got {asked.pids})", ""
        )
    if not asked.cpus > 0:
        raise ConfigError(f"{path}: `sandbox.cpus` must be more than 0 (got {asked.cpus})", "")
    notes: list[str] = []
    values: dict[str, object] = {}
    for name in ("memory", "disk", "tmp_size"):
        wanted, most = getattr(asked, name), getattr(ceiling, name)
        size = parse_size(wanted)
        if not size:
            raise ConfigError(
                f"{path}: `sandbox.{name}` {wanted!r} is not a size", "use e.g. 512m or 2g"
            )
        if size > (parse_size(most) or 0):
            values[name] = most
    if asked.cpus > ceiling.cpus:
        values["cpus"] = ceiling.cpus
    if asked.pids > ceiling.pids:
        values["pids"] = ceiling.pids
    for name, most in values.items():
        notes.append(
            f"{path} asked for sandbox.{name} {getattr(asked, name)}; lowered to the operator's "
            f"maximum {most}"
        )
    return replace(asked, **values), tuple(notes)  # type: ignore[arg-type]


def _size_env(env: Mapping[str, str], key: str, default: str) -> str:
    value = env.get(key) or default
    if not parse_size(value):
        raise ConfigError(f"{key}={value!r} is not a size", f"set {key} to e.g. 512m or 2g")
    return value


def _positive(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ConfigError(f"{key}={raw!r} is not a positive number", f"set {key} to a number")
    return value
