"""DockerSandbox: one locked-down container per run; every check is an exec inside it.

The only package that imports the docker SDK; its exceptions become SandboxError here
(`engine.translated`). Every writable place (the workspace, /tmp, and any path the image
declares as VOLUME) is a tmpfs-backed *volume*, not a container tmpfs mount: the daemon
mounts volumes itself, so put_archive/get_archive see their files (they do not see a
container `tmpfs=` mount), and the tmpfs size is a disk quota.

`container` holds the lifecycle, `commands` one command's exec and its kill machinery,
`archive` reading a file back within a size, `images` the committed images of dependency
builders, `orphans` the sweeps of what killed runs left behind, `engine` the connection and
the error translation. What goes into the workspace
(which files, as a tar) is `tree.py`.
"""

from __future__ import annotations

from codebot.sandbox.commands import BASE_ENV, WATCHDOG_GRACE_S
from codebot.sandbox.container import (
    HOST_CA_ENV,
    HOST_CA_PATH,
    SANDBOX_UID,
    DockerSandbox,
    cgroup_memory,
)
from codebot.sandbox.engine import ENGINE_FIX, GONE_FIX, IMAGE_FIX, ping
from codebot.sandbox.images import (
    ImageInfo,
    image_exists,
    image_id,
    images_labelled,
    remove_image,
)
from codebot.sandbox.orphans import (
    LABEL,
    OWNER_LABEL,
    REMOVE_WAIT_S,
    cleanup_orphans,
    sweep_abandoned,
)

__all__ = [
    "BASE_ENV",
    "ENGINE_FIX",
    "GONE_FIX",
    "HOST_CA_ENV",
    "HOST_CA_PATH",
    "IMAGE_FIX",
    "LABEL",
    "OWNER_LABEL",
    "REMOVE_WAIT_S",
    "SANDBOX_UID",
    "WATCHDOG_GRACE_S",
    "DockerSandbox",
    "ImageInfo",
    "cgroup_memory",
    "cleanup_orphans",
    "image_exists",
    "image_id",
    "images_labelled",
    "ping",
    "remove_image",
    "sweep_abandoned",
]
