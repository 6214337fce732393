"""The host bounds what it takes back from the sandbox: disk, memory, processes and volumes.

The sandbox holds its own limits; these attacks go after the host instead, through what it
stores, reads or trusts on the sandbox's behalf: the container's log, files read back,
the output of the cleanup after a command, and volumes an image declares.
"""

from __future__ import annotations

import io
import os
import resource
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from codebot.config import SandboxConfig
from codebot.errors import FileTooLarge, SandboxError
from codebot.sandbox import LABEL, DockerSandbox, cleanup_orphans
from codebot.sandbox.archive import HEADER_ROOM, first_regular_file
from tests.support.docker_fixtures import sandbox_leftovers

pytestmark = pytest.mark.docker

MIB = 1 << 20


@pytest.fixture
def start(run_ids: Callable[[], str], sandbox_image: str) -> Iterator[Callable[..., DockerSandbox]]:
    """Start fresh sandboxes with config overrides; all are closed after the test."""
    started: list[DockerSandbox] = []

    def start_one(**overrides: Any) -> DockerSandbox:
        config = SandboxConfig(**{"image": sandbox_image, **overrides})
        started.append(DockerSandbox.start(config, run_ids()))
        return started[-1]

    yield start_one
    for sandbox in started:
        sandbox.close()


# -- 1. the container's log ----------------------------------------------------------------


def test_output_written_to_the_keepers_stdout_leaves_no_log_on_the_host(
    shared_sandbox: DockerSandbox, docker_client: docker.DockerClient
) -> None:
    flood = "head -c 32M /dev/zero | tr '\\0' x > /proc/1/fd/1"
    assert shared_sandbox.run(flood, 60).exit_code == 0
    log = docker_client.api.inspect_container(shared_sandbox.name)["LogPath"]
    assert not log or os.path.getsize(log) < 64 * 1024


def test_the_keepers_stdout_and_stderr_are_dev_null(shared_sandbox: DockerSandbox) -> None:
    result = shared_sandbox.run("readlink /proc/1/fd/1 /proc/1/fd/2", 10)
    assert result.output == "/dev/null\n/dev/null\n"


# -- 2. reading a file back ----------------------------------------------------------------


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def test_a_sparse_file_over_the_limit_is_refused_quickly_without_being_read(
    shared_sandbox: DockerSandbox,
) -> None:
    """1.5 GiB that costs the sandbox no disk must not cost the host 1.5 GiB of memory."""
    assert shared_sandbox.run("truncate -s 1500M /tmp/sparse", 10).exit_code == 0
    peak, started = peak_rss_bytes(), time.monotonic()
    with pytest.raises(FileTooLarge) as caught:
        shared_sandbox.read_file("/tmp/sparse", MIB)
    assert time.monotonic() - started < 2
    assert peak_rss_bytes() - peak < 64 * MIB
    assert (caught.value.size, caught.value.limit) == (1500 * MIB, MIB)


def test_a_file_exactly_at_the_limit_is_read_whole(shared_sandbox: DockerSandbox) -> None:
    write = "head -c 100000 /dev/zero | tr '\\0' y > /tmp/exact"
    assert shared_sandbox.run(write, 10).exit_code == 0
    assert shared_sandbox.read_file("/tmp/exact", 100_000) == b"y" * 100_000


def test_a_file_one_byte_over_the_limit_is_refused(shared_sandbox: DockerSandbox) -> None:
    shared_sandbox.run("head -c 100000 /dev/zero > /tmp/over", 10)
    with pytest.raises(FileTooLarge) as caught:
        shared_sandbox.read_file("/tmp/over", 99_999)
    assert caught.value.size == 100_000


class CountingReader:
    """An archive stream that counts what was taken from it."""

    def __init__(self, data: bytes) -> None:
        self._stream = io.BytesIO(data)
        self.taken = 0

    def read(self, size: int) -> bytes:
        chunk = self._stream.read(size)
        self.taken += len(chunk)
        return chunk


def archive(size: int, pax: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member = tarfile.TarInfo("report.xml")
        member.size, member.pax_headers = size, pax or {}
        tar.addfile(member, io.BytesIO(b"r" * size))
    return buffer.getvalue()


def test_an_archive_member_bigger_than_the_limit_is_refused_unread() -> None:
    """The stat said small, the tar header says big: the header does not get its way."""
    source = CountingReader(archive(4 * MIB))
    with pytest.raises(FileTooLarge):
        first_regular_file(source.read, "report.xml", 64 * 1024)
    assert source.taken <= 64 * 1024 + HEADER_ROOM


def test_archive_headers_past_the_budget_are_not_read() -> None:
    source = CountingReader(archive(10, pax={"comment": "c" * (2 * MIB)}))
    with pytest.raises(SandboxError, match="unreadable"):
        first_regular_file(source.read, "report.xml", 64 * 1024)
    assert source.taken <= 64 * 1024 + HEADER_ROOM


# -- 3. cleanup after a command ------------------------------------------------------------

# Leaves a daemon behind, then does all it can to make the host skip its cleanup: reads the
# argv of its wrapper (where a secret mark would be), prints that as the mark with counters
# that only ever grow, and kills its wrapper and `timeout` so neither finishes its own work.
FORGER = r"""
(setsid sh -c 'while :; do date +%s%N > /tmp/heartbeat; sleep 0.1; done' \
    </dev/null >/dev/null 2>&1 &)
while [ ! -s /tmp/heartbeat ]; do sleep 0.05; done
parent=$PPID
read -r _ _ _ grand _ < /proc/$parent/stat
for pid in $grand $parent; do
    [ "$pid" -gt 1 ] || continue
    mark=$(tr '\0' '\n' < /proc/$pid/cmdline | tail -n 1)
    now=$(date +%s%N)
    printf '\n%s\noom_kill %s\npids\nmax %s\n' "$mark" "$now" "$now"
done
for pid in $grand $parent; do [ "$pid" -gt 1 ] && kill -9 "$pid"; done
exit 0
"""


def test_a_daemon_left_by_a_check_that_forges_its_end_is_killed_after_it(
    shared_sandbox: DockerSandbox, docker_client: docker.DockerClient
) -> None:
    result = shared_sandbox.run(FORGER, 20)
    assert not result.timed_out, result.output  # the daemon did start and write
    processes = docker_client.api.top(shared_sandbox.name, ps_args="-eo pid,args")["Processes"]
    assert not [p for p in processes if "heartbeat" in " ".join(p)]


def test_counters_forged_by_a_check_are_not_believed(shared_sandbox: DockerSandbox) -> None:
    result = shared_sandbox.run(FORGER, 20)
    assert not result.timed_out, result.output
    assert not result.oom_killed and not result.pids_limited


# -- 4. images that declare VOLUME -----------------------------------------------------------


@pytest.fixture(scope="session")
def volume_image(docker_client: docker.DockerClient, sandbox_image: str) -> Iterator[str]:
    """The base image with a world-writable `/data` declared as VOLUME; removed at the end."""
    tag = f"codebot-test-volume:{uuid.uuid4().hex[:12]}"
    maker = docker_client.containers.run(
        sandbox_image,
        ["mkdir", "-m", "1777", "/data"],
        user="root",
        detach=True,
        network_mode="none",
    )
    try:
        assert maker.wait(timeout=30)["StatusCode"] == 0
        repository, version = tag.split(":")
        maker.commit(repository=repository, tag=version, changes=["VOLUME /data"])
    finally:
        maker.remove(force=True, v=True)
    yield tag
    docker_client.images.remove(tag, force=True)


def unlabelled_volumes(client: docker.DockerClient) -> set[str]:
    return {v.name for v in client.volumes.list() if LABEL not in (v.attrs.get("Labels") or {})}


def test_writing_past_the_tmp_size_under_an_image_volume_fails(
    start: Callable[..., DockerSandbox], volume_image: str
) -> None:
    sandbox = start(image=volume_image, tmp_size="8m")
    result = sandbox.run("dd if=/dev/zero of=/data/big bs=1M count=16", 30)
    assert result.exit_code != 0
    assert "No space left on device" in result.output


def test_closing_removes_the_image_volumes_and_leaves_no_anonymous_volume(
    run_ids: Callable[[], str], volume_image: str, docker_client: docker.DockerClient
) -> None:
    before, run_id = unlabelled_volumes(docker_client), run_ids()
    sandbox = DockerSandbox.start(SandboxConfig(image=volume_image), run_id)
    sandbox.run("echo kept > /data/file", 10)
    sandbox.close()
    assert sandbox_leftovers(docker_client, run_id) == []
    assert unlabelled_volumes(docker_client) - before == set()


def test_the_orphan_sweep_removes_the_image_volumes_too(
    start: Callable[..., DockerSandbox], volume_image: str, docker_client: docker.DockerClient
) -> None:
    before = unlabelled_volumes(docker_client)
    orphan = start(image=volume_image)
    assert cleanup_orphans(orphan.run_id) == 4  # container, workspace, /tmp, /data
    assert sandbox_leftovers(docker_client, orphan.run_id) == []
    assert unlabelled_volumes(docker_client) - before == set()
