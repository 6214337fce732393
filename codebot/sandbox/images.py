"""Images of cached dependency environments: committing a builder, finding, removing.

A builder sandbox runs the setup step once; its root filesystem is committed as an image
that later runs start from, with no install and no network. Which images to build, keep
and prune is policy (`environment.py`); this module only does what the engine is told.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import docker.errors

from codebot.errors import SandboxError
from codebot.sandbox.engine import connect, short, translated

# What a sandbox started from the image needs of its config, taken from the source image:
# the builder container's own (its keeper command, the run's environment) must not leak in.
_KEPT_CONFIG = ("Cmd", "Entrypoint", "User", "WorkingDir", "Env")


@dataclass(frozen=True)
class ImageInfo:
    """One tag of an image (an untagged image is named by its id)."""

    ref: str
    id: str
    created: str  # ISO 8601, UTC, to the second
    labels: Mapping[str, str]


def commit_container(
    api: Any,
    container: str,
    source_config: Mapping[str, Any],
    repository: str,
    tag: str,
    labels: Mapping[str, str],
) -> str:
    """Commit `container`'s root filesystem as `repository:tag`; the image's id.

    The engine fills every config field the request leaves empty from the container's, and
    merges the container's labels and environment under the request's: so the source
    image's fields are sent explicitly, and a variable the source image lacks but the
    sandbox sets for every command (`BASE_ENV`) stays in the image's environment.
    """
    conf = {key: source_config.get(key) for key in _KEPT_CONFIG}
    conf["Labels"] = dict(labels)
    answer = api.commit(container, repository=repository, tag=tag, conf=conf)
    return str(answer["Id"])


def image_exists(ref: str) -> bool:
    """Whether the engine holds an image by that name or id."""
    with _client() as client:
        try:
            client.api.inspect_image(ref)
        except docker.errors.NotFound:
            return False
    return True


def image_id(ref: str) -> str | None:
    """The id of the image `ref` names (None when the engine has none): a cache key built
    on it changes when the image is rebuilt under the same tag."""
    with _client() as client:
        try:
            return str(client.api.inspect_image(ref)["Id"])
        except docker.errors.NotFound:
            return None


def images_labelled(label: str) -> list[ImageInfo]:
    """Every image carrying `label` (`key`, or `key=value`), one entry per tag, oldest first."""
    with _client() as client:
        found = client.api.images(filters={"label": label})
    infos = []
    for image in found:
        created = datetime.fromtimestamp(int(image.get("Created") or 0), tz=timezone.utc)
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        for ref in tags or [image["Id"]]:
            infos.append(
                ImageInfo(
                    ref=ref,
                    id=image["Id"],
                    created=created.isoformat(),
                    labels=dict(image.get("Labels") or {}),
                )
            )
    return sorted(infos, key=lambda info: (info.created, info.ref))


def remove_image(ref: str) -> None:
    """Remove the image (untag it, if it has other tags); an absent one is no error. An
    image a container still uses is refused with the engine's reason: removing it by force
    would only untag it and leave its layers on disk, out of every sweep's sight."""
    with _client() as client:
        try:
            client.api.remove_image(ref)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            raise SandboxError(
                f"cannot remove image {ref}: {short(exc)}",
                "remove the container that uses it first (`docker ps -a`), then try again",
            ) from None


@contextlib.contextmanager
def _client() -> Iterator[Any]:
    """A connection for one call, its errors translated, closed afterwards."""
    client = connect()
    try:
        with translated(""):
            yield client
    finally:
        client.close()
