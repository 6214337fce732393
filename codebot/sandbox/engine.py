"""Reaching the Docker engine, and the one place its SDK's exceptions become SandboxErrors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors

from codebot.errors import SandboxError
from codebot.text import clip

ENGINE_FIX = "start it (e.g. `sudo dockerd &` or `bash sandbox/setup-host.sh`) or set DOCKER_HOST"
IMAGE_FIX = "build it with `bash sandbox/setup-host.sh`"
GONE_FIX = "something stopped or removed it during the run; start the run again"


def ping(image: str | None = None) -> None:
    """Raise SandboxError unless a Docker engine answers (and holds `image`, if given)."""
    client = connect()
    try:
        with translated(image or ""):
            if image:
                client.images.get(image)
    finally:
        client.close()


def connect() -> Any:
    """A client for the engine DOCKER_HOST names; an unreachable engine is a SandboxError."""
    try:
        # version=None makes the SDK ask the engine for its API version: a cheap ping.
        return docker.from_env()
    except (docker.errors.DockerException, OSError) as exc:
        raise SandboxError(
            f"cannot reach the Docker engine ({os_reason(exc)})", ENGINE_FIX
        ) from None


@contextlib.contextmanager
def translated(image: str, container: str = "") -> Iterator[None]:
    """The one place docker SDK exceptions become SandboxErrors."""
    try:
        yield
    except docker.errors.ImageNotFound:
        raise SandboxError(f"sandbox image {image} not found", IMAGE_FIX) from None
    except docker.errors.NotFound as exc:
        if not container:
            raise SandboxError(f"docker: {short(exc)}", "") from None
        raise SandboxError(
            f"the sandbox container {container} is gone ({short(exc)})", GONE_FIX
        ) from None
    except docker.errors.APIError as exc:
        if container and "is not running" in short(exc):
            # Killed, or its removal is under way (409 or 500 by engine version): not a
            # problem with the settings.
            raise SandboxError(
                f"the sandbox container {container} is not running any more ({short(exc)})",
                GONE_FIX,
            ) from None
        raise SandboxError(
            f"the Docker engine refused: {short(exc)}",
            "check the sandbox settings and `docker info`",
        ) from None
    except OSError as exc:
        raise SandboxError(
            f"cannot reach the Docker engine ({os_reason(exc)})", ENGINE_FIX
        ) from None
    except docker.errors.DockerException as exc:
        raise SandboxError(f"docker: {short(exc)}", "check the sandbox settings") from None


def os_reason(exc: BaseException) -> str:
    """The operating system's words for a failed connection ("Connection refused"), found
    under the layers requests and urllib3 wrap around it; else the exception's own text."""
    stack, seen, found = [exc], set(), None
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            found = current.strerror
        stack += [a for a in current.args if isinstance(a, BaseException)]
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
    return found or short(exc)


def short(exc: BaseException) -> str:
    """The engine's own explanation, cut so one error stays one readable line."""
    text = str(getattr(exc, "explanation", None) or exc)
    return clip(text, 300)
