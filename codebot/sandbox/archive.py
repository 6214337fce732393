"""Reading one file back out of the sandbox without trusting anything about it.

Sandboxed code wrote the file, so its size is hostile: a sparse file costs it no disk and
would cost the host its memory. The engine's stat of the path (sent with the archive) is
checked before a byte of the archive is read, and the read itself stops at a hard budget,
so a tar header that disagrees with the stat cannot make the host take more.

Docker errors propagate from here; `DockerSandbox.read_file` translates them.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Callable
from typing import Any

import docker.errors
import urllib3.exceptions
from docker.utils import decode_json_header

from codebot.errors import FileTooLarge, SandboxError
from codebot.sandbox.engine import GONE_FIX

# What the archive may hold besides the file's bytes: a PAX header block and its records (a
# long or non-ASCII name), the file's own header, and one block of slack.
HEADER_ROOM = 4 * tarfile.BLOCKSIZE
# Go's os.ModeType bits in the stat's mode: directory, symlink, device, named pipe, socket,
# character device, irregular. A regular file has none of them.
_NOT_REGULAR = (1 << 31) | (1 << 27) | (1 << 26) | (1 << 25) | (1 << 24) | (1 << 21) | (1 << 19)


def read_file(api: Any, container: str, path: str, max_bytes: int) -> bytes | None:
    """The regular file at `path` (absolute), None if absent or not a regular file; raises
    FileTooLarge, having read none of it, when the engine's stat says it is over `max_bytes`."""
    response = _open_archive(api, container, path)
    if response is None:
        return None
    with contextlib.closing(response):  # closing unread drops the rest: nothing is drained
        header = response.headers.get("X-Docker-Container-Path-Stat")
        stat = decode_json_header(header) if header else {}
        if int(stat.get("mode", 0)) & _NOT_REGULAR:
            return None
        if int(stat.get("size", 0)) > max_bytes:
            raise FileTooLarge(path, int(stat["size"]), max_bytes)
        try:
            return first_regular_file(response.raw.read, path, max_bytes)
        except urllib3.exceptions.HTTPError as exc:
            raise SandboxError(
                f"reading {path} from {container} broke off ({exc})", GONE_FIX
            ) from None


def first_regular_file(read: Callable[[int], bytes], path: str, max_bytes: int) -> bytes | None:
    """The bytes of the archive's first member if it is a regular file (None if not). `read`
    is asked for no more than `max_bytes + HEADER_ROOM` bytes in all, whatever the archive
    says; a member whose header claims more than `max_bytes` is refused unread."""
    source = _Budget(read, max_bytes + HEADER_ROOM)
    try:
        with tarfile.open(fileobj=source, mode="r|") as archive:
            member = archive.next()
            if member is None or not member.isfile():
                return None
            if member.size > max_bytes:
                raise FileTooLarge(path, member.size, max_bytes)
            data = archive.extractfile(member)
            return data.read() if data else None
    except tarfile.TarError as exc:  # cut short at the budget, or not an archive at all
        raise SandboxError(
            f"the archive of {path} is unreadable ({exc})", "see the Docker daemon log"
        ) from None


def _open_archive(api: Any, container: str, path: str) -> Any:
    """The engine's archive response for `path`, unread; None if the path does not exist.

    Not `APIClient.get_archive`: it hides the response inside a generator, so a refused
    file could not be closed without reading it (or leaving the connection to the
    garbage collector). The request and its errors are the SDK's own.
    """
    url = api._url("/containers/{0}/archive", container)
    headers = {"Accept-Encoding": "identity"}
    response = api._get(url, params={"path": path}, stream=True, headers=headers)
    try:
        api._raise_for_status(response)
    except docker.errors.NotFound as exc:
        response.close()
        if "No such container" in str(exc.explanation):
            raise
        return None
    except BaseException:
        response.close()
        raise
    return response


class _Budget(io.RawIOBase):
    """A reader that hands out at most `limit` bytes of `read`, then reports the end: past
    it tarfile sees a short archive and fails, having pulled nothing more."""

    def __init__(self, read: Callable[[int], bytes], limit: int) -> None:
        super().__init__()
        self._read = read
        self._left = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self._left if size < 0 else min(size, self._left)
        data = self._read(size)[:size] if size > 0 else b""
        self._left -= len(data)
        return data
