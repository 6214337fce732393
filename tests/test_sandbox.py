"""DockerSandbox against the real engine: isolation, sync, timeouts, limits, cleanup."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from codebot.config import SandboxConfig
from codebot.errors import FileTooLarge, SandboxError
from codebot.owner import owner
from codebot.protocols import ReadBack, Step
from codebot.records import ExecResult
from codebot.sandbox import (
    BASE_ENV,
    HOST_CA_PATH,
    LABEL,
    OWNER_LABEL,
    DockerSandbox,
    cleanup_orphans,
    image_exists,
    images_labelled,
    ping,
    remove_image,
)
from tests.support.docker_fixtures import sandbox_leftovers

pytestmark = pytest.mark.docker

StartSandbox = Callable[..., DockerSandbox]
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture
def workspace(shared_sandbox: DockerSandbox) -> DockerSandbox:
    """The shared sandbox with an empty workspace."""
    assert shared_sandbox.run("find . -mindepth 1 -delete", 10).exit_code == 0
    return shared_sandbox


@pytest.fixture
def start(run_ids: Callable[[], str], sandbox_image: str) -> Iterator[StartSandbox]:
    """Start fresh sandboxes with config overrides; all are closed after the test."""
    started: list[DockerSandbox] = []

    def start_one(**overrides: Any) -> DockerSandbox:
        config = SandboxConfig(image=sandbox_image, **overrides)
        started.append(DockerSandbox.start(config, run_ids()))
        return started[-1]

    yield start_one
    for sandbox in started:
        sandbox.close()


def _run_and_read(
    sandbox: DockerSandbox, command: str, timeout_s: float, paths: dict[str, int]
) -> tuple[ExecResult, ReadBack]:
    """One command, and the files read back after it (`Sandbox.run_steps` of one step)."""
    ran, got = sandbox.run_steps([Step(command, timeout_s)], paths)
    return ran[0], got


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def listing(sandbox: DockerSandbox) -> list[str]:
    result = sandbox.run("find . -mindepth 1 | sort", 10)
    assert result.exit_code == 0, result.output
    return [line.removeprefix("./") for line in result.output.splitlines()]


# -- the place commands run in ---------------------------------------------------------------


def test_command_runs_in_workspace_as_unprivileged_user(shared_sandbox: DockerSandbox) -> None:
    result = shared_sandbox.run("id -u; id -g; pwd", 10)
    assert (result.exit_code, result.output) == (0, "65534\n65534\n/workspace\n")


def test_exit_code_and_both_output_streams_are_returned(shared_sandbox: DockerSandbox) -> None:
    result = shared_sandbox.run("echo to-stdout; echo to-stderr >&2; exit 3", 10)
    assert result.exit_code == 3
    assert "to-stdout" in result.output and "to-stderr" in result.output
    assert not (result.timed_out or result.truncated or result.oom_killed)
    assert 0 < result.duration_s < 5


def test_interleaved_stdout_and_stderr_come_back_whole_and_in_order(
    shared_sandbox: DockerSandbox,
) -> None:
    command = "for i in $(seq 1 300); do echo out$i; echo err$i >&2; done; printf end >&2"
    for _ in range(3):
        result = shared_sandbox.run(command, 20)
        expected = "".join(f"out{i}\nerr{i}\n" for i in range(1, 301)) + "end"
        assert result.output == expected


def test_environment_holds_only_explicit_variables(
    monkeypatch: pytest.MonkeyPatch, start: StartSandbox
) -> None:
    monkeypatch.setenv("CODEBOT_HOST_SECRET", "must-not-leak")
    sandbox = start()
    output = sandbox.run("env", 10, env={"EXTRA": "given"}).output
    names = {line.split("=", 1)[0] for line in output.splitlines()}
    assert "CODEBOT_HOST_SECRET" not in names
    assert names <= {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "HOSTNAME", "PWD", "EXTRA",
                     "PYTHONUSERBASE", "GOMODCACHE"}  # fmt: skip
    assert "HOME=/tmp" in output.splitlines() and "EXTRA=given" in output.splitlines()


def test_home_and_tmp_are_writable_and_tmp_allows_executables(
    shared_sandbox: DockerSandbox,
) -> None:
    script = "printf '#!/bin/sh\\necho ran\\n' > /tmp/x.sh && chmod +x /tmp/x.sh && /tmp/x.sh"
    result = shared_sandbox.run(f"touch $HOME/.config-probe && {script}", 10)
    assert (result.exit_code, result.output) == (0, "ran\n")


def test_root_filesystem_is_read_only(shared_sandbox: DockerSandbox) -> None:
    result = shared_sandbox.run("touch /usr/probe", 10)
    assert result.exit_code != 0
    assert "Read-only file system" in result.output


def test_no_network_interface_but_loopback(shared_sandbox: DockerSandbox) -> None:
    result = shared_sandbox.run("ls /sys/class/net; tail -n +2 /proc/net/route", 10)
    assert result.output.split() == ["lo"]


def host_listener() -> tuple[socket.socket, int, list[str]]:
    """A listener on every host interface that records who connects."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.2)
    seen: list[str] = []

    def accept() -> None:
        while server.fileno() != -1:
            try:
                conn, address = server.accept()
            except OSError:
                continue
            seen.append(address[0])
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    return server, server.getsockname()[1], seen


def connect_command(gateway: str, port: int) -> str:
    probe = (
        "import socket\n"
        f"for host in ('127.0.0.1', '{gateway}'):\n"
        "    try:\n"
        f"        socket.create_connection((host, {port}), timeout=2).close()\n"
        "        print('reached', host)\n"
        "    except OSError as exc:\n"
        "        print('blocked', host, exc.__class__.__name__)\n"
    )
    return f'python3 -c "{probe}"'


def bridge_gateway(client: docker.DockerClient) -> str:
    """The docker0 address on this host (older engines leave `Gateway` out: use the subnet's
    first address, which is where docker0 sits)."""
    ipam = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return str(ipam.get("Gateway") or ipaddress.ip_network(ipam["Subnet"])[1])


def test_sandbox_cannot_reach_a_listener_on_the_host(
    shared_sandbox: DockerSandbox, docker_client: docker.DockerClient
) -> None:
    server, port, seen = host_listener()
    try:
        result = shared_sandbox.run(connect_command(bridge_gateway(docker_client), port), 20)
    finally:
        server.close()
    assert "reached" not in result.output and result.output.count("blocked") == 2
    assert seen == []


def test_network_enabled_sandbox_reaches_the_host_listener(
    start: StartSandbox, docker_client: docker.DockerClient
) -> None:
    """The control for the test above: the same probe does connect when networking is on."""
    gateway = bridge_gateway(docker_client)
    server, port, seen = host_listener()
    try:
        result = start(network=True).run(connect_command(gateway, port), 20)
    finally:
        server.close()
    assert f"reached {gateway}" in result.output
    assert seen


def test_sealing_a_network_enabled_sandbox_leaves_only_loopback(
    start: StartSandbox, docker_client: docker.DockerClient
) -> None:
    gateway = bridge_gateway(docker_client)
    server, port, seen = host_listener()
    try:
        sandbox = start(network=True)
        assert sandbox.run(connect_command(gateway, port), 20).output.count("reached") == 1
        reached = len(seen)
        sandbox.seal()
        after = sandbox.run(connect_command(gateway, port), 20)
        interfaces = sandbox.run("ls /sys/class/net; tail -n +2 /proc/net/route", 10)
    finally:
        server.close()
    assert "reached" not in after.output and after.output.count("blocked") == 2
    assert len(seen) == reached  # nothing new arrived after the seal
    assert interfaces.output.split() == ["lo"]
    networks = docker_client.containers.get(sandbox.name).attrs["NetworkSettings"]["Networks"]
    assert not networks
    sandbox.seal()  # again: nothing left to cut, no error


def test_sealing_a_sandbox_without_network_changes_nothing(
    shared_sandbox: DockerSandbox, docker_client: docker.DockerClient
) -> None:
    shared_sandbox.seal()
    assert (
        docker_client.containers.get(shared_sandbox.name).attrs["HostConfig"]["NetworkMode"]
        == "none"
    )
    assert shared_sandbox.run("ls /sys/class/net", 10).output.split() == ["lo"]


def test_container_is_locked_down(
    shared_sandbox: DockerSandbox, docker_client: docker.DockerClient
) -> None:
    host = docker_client.containers.get(shared_sandbox.name).attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    # memory + workspace disk + /tmp: tmpfs pages are charged to the container's memory
    assert host["Memory"] == host["MemorySwap"] == 1024**3 + 1024**3 + 256 * 1024**2
    assert (host["NanoCpus"], host["PidsLimit"]) == (10**9, 256)


# -- sync and read_file ------------------------------------------------------------------


def test_sync_copies_tree_without_git_dir(workspace: DockerSandbox, tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "src/app.py": "print('app')\n",
            "README.md": "hi\n",
            ".git/config": "[remote]\n url = https://token@example.invalid/r.git\n",
            "sub/.git": "gitdir: ../.git/modules/sub\n",
        },
    )
    workspace.sync(tmp_path)
    assert listing(workspace) == ["README.md", "src", "src/app.py", "sub"]
    assert workspace.read_file("src/app.py", 1000) == b"print('app')\n"


def test_synced_tree_belongs_to_the_sandbox_user(workspace: DockerSandbox, tmp_path: Path) -> None:
    write_tree(tmp_path, {"pkg/deep/mod.py": "", "run.sh": "#!/bin/sh\necho ran\n"})
    (tmp_path / "run.sh").chmod(0o755)
    workspace.sync(tmp_path)
    result = workspace.run("stat -c '%u %n' pkg pkg/deep; touch pkg/deep/new.py && ./run.sh", 10)
    assert result.output == "65534 pkg\n65534 pkg/deep\nran\n"


def test_sync_deletes_removed_files(workspace: DockerSandbox, tmp_path: Path) -> None:
    write_tree(tmp_path, {"keep.py": "", "gone.py": "", "old/dir/x.py": "", "o'dd name.py": ""})
    workspace.sync(tmp_path)
    for rel in ("gone.py", "o'dd name.py"):
        (tmp_path / rel).unlink()
    (tmp_path / "old/dir/x.py").unlink()
    (tmp_path / "new.py").write_text("added\n")
    workspace.sync(tmp_path, ["gone.py", "o'dd name.py", "old/dir/x.py", "new.py"])
    assert listing(workspace) == ["keep.py", "new.py", "old", "old/dir"]


def test_sync_of_paths_copies_only_those(workspace: DockerSandbox, tmp_path: Path) -> None:
    write_tree(tmp_path, {"a.py": "a\n", "b.py": "b\n", "lib/c.py": "c\n"})
    workspace.sync(tmp_path, ["a.py", "lib/c.py"])
    assert listing(workspace) == ["a.py", "lib", "lib/c.py"]


def test_sync_skips_symlinks_pointing_outside_root(
    workspace: DockerSandbox, tmp_path: Path
) -> None:
    root = write_tree(tmp_path / "repo", {"real.py": "x = 1\n", "pkg/mod.py": ""})
    (tmp_path / "secret.txt").write_text("host secret\n")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    (root / "escape_rel").symlink_to("../secret.txt")
    (root / "pkg/alias.py").symlink_to("../real.py")
    (root / "pkg_link").symlink_to("pkg")
    workspace.sync(root)
    assert listing(workspace) == ["pkg", "pkg/alias.py", "pkg/mod.py", "pkg_link", "real.py"]
    assert workspace.run("cat pkg/alias.py", 10).output == "x = 1\n"
    workspace.sync(root, ["escape", "escape_rel"])
    assert "escape" not in " ".join(listing(workspace))


def test_sync_refuses_paths_outside_root(workspace: DockerSandbox, tmp_path: Path) -> None:
    for bad in ("../outside.py", "/etc/passwd", "a/../../x"):
        with pytest.raises(SandboxError, match="not inside the workspace"):
            workspace.sync(tmp_path, [bad])


def test_read_file_returns_bytes_or_none(workspace: DockerSandbox, tmp_path: Path) -> None:
    workspace.sync(write_tree(tmp_path, {"dir/data.bin": ""}))
    workspace.run("printf 'a\\0b' > dir/data.bin; echo report > /tmp/report.xml; ln -s dir l", 10)
    assert workspace.read_file("dir/data.bin", 1000) == b"a\0b"
    assert workspace.read_file("/tmp/report.xml", 1000) == b"report\n"
    assert workspace.read_file("missing.txt", 1000) is None
    assert workspace.read_file("dir", 1000) is None
    assert workspace.read_file("l", 1000) is None  # a link, not a regular file


def test_run_and_read_gives_the_files_as_the_command_left_them(
    workspace: DockerSandbox, tmp_path: Path
) -> None:
    workspace.sync(write_tree(tmp_path, {"dir/keep.txt": ""}))
    forged = "x\ncodebot-read-back 999\nnot a header\n"  # the script's own framing, as data
    command = (
        f"printf 'a\\0b' > dir/data.bin; printf '{forged}' > /tmp/r.xml; ln -s dir l; "
        "truncate -s 1G /tmp/sparse; (sleep 0.5; echo late > /tmp/r.xml) & echo ran"
    )

    ran, got = _run_and_read(
        workspace, command, 10,
        {"dir/data.bin": 100, "/tmp/r.xml": 100, "missing": 100, "dir": 100, "l": 100,
         "/tmp/sparse": 1000},
    )  # fmt: skip

    assert (ran.exit_code, ran.output) == (0, "ran\n")
    assert got["dir/data.bin"] == b"a\0b"
    assert got["/tmp/r.xml"] == forged.encode()  # read after the leftover was killed
    assert (got["missing"], got["dir"], got["l"]) == (None, None, None)
    large = got["/tmp/sparse"]
    assert isinstance(large, FileTooLarge) and (large.size, large.limit) == (1 << 30, 1000)
    time.sleep(0.7)
    assert workspace.read_file("/tmp/r.xml", 100) == forged.encode()  # nothing rewrote it


def test_run_and_read_of_nothing_is_a_plain_run(workspace: DockerSandbox) -> None:
    ran, got = _run_and_read(workspace, "exit 3", 10, {})
    assert (ran.exit_code, got) == (3, {})


def test_workspace_has_a_disk_quota(start: StartSandbox) -> None:
    result = start(disk="8m").run("dd if=/dev/zero of=big bs=1M count=16", 30)
    assert result.exit_code != 0
    assert "No space left on device" in result.output


# -- timeouts, leftovers, output, memory ------------------------------------------------


def test_timeout_kills_command_and_returns(shared_sandbox: DockerSandbox) -> None:
    started = time.monotonic()
    result = shared_sandbox.run("echo begun; sleep 30; echo never", 1)
    assert time.monotonic() - started < 5
    assert result.timed_out and result.exit_code == 124
    assert result.output == "begun\n"


def test_command_ignoring_sigterm_is_killed_after_grace(shared_sandbox: DockerSandbox) -> None:
    started = time.monotonic()
    result = shared_sandbox.run("trap '' TERM; sleep 30", 1)
    assert time.monotonic() - started < 6
    assert result.timed_out and result.exit_code == 137
    assert not result.oom_killed


def test_watchdog_returns_even_if_timeout_itself_is_stopped(shared_sandbox: DockerSandbox) -> None:
    """`kill -STOP $PPID` freezes coreutils timeout; only the host-side watchdog can end it."""
    started = time.monotonic()
    result = shared_sandbox.run("kill -STOP $PPID; sleep 60", 1)
    assert time.monotonic() - started < 12
    assert result.timed_out
    assert shared_sandbox.run("echo alive", 10).output == "alive\n"


def test_background_process_does_not_survive_the_check(shared_sandbox: DockerSandbox) -> None:
    shared_sandbox.run("setsid sleep 301 >/dev/null 2>&1 & nohup sleep 302 >/dev/null 2>&1 &", 10)
    processes = shared_sandbox.run("ps -eo stat=,args=", 10).output
    assert "sleep 30" not in processes


def test_killed_leftovers_are_reaped_not_left_as_zombies(shared_sandbox: DockerSandbox) -> None:
    for _ in range(3):
        shared_sandbox.run("sleep 303 >/dev/null 2>&1 &", 10)
    states = [
        line.split()[0] for line in shared_sandbox.run("ps -eo stat=", 10).output.splitlines()
    ]
    assert not [s for s in states if s.startswith("Z")]


def test_output_is_capped(start: StartSandbox) -> None:
    sandbox = start(max_output_bytes=1000)
    result = sandbox.run("echo HEAD; head -c 100000 /dev/zero | tr '\\0' x; echo; echo TAIL", 30)
    assert result.truncated
    assert result.output.startswith("HEAD\n") and result.output.endswith("\nTAIL\n")
    assert "bytes cut ...]" in result.output
    assert len(result.output) < 1100


def test_short_output_is_not_truncated(shared_sandbox: DockerSandbox) -> None:
    result = shared_sandbox.run("seq 1 1000", 10)
    assert not result.truncated and result.output.splitlines()[-1] == "1000"


def test_out_of_memory_is_reported(start: StartSandbox) -> None:
    sandbox = start(memory="64m", disk="16m", tmp_size="16m")
    result = sandbox.run("python3 -c 'b = bytearray(256 * 2**20)'", 60)
    assert result.oom_killed and result.exit_code == 137
    assert not result.timed_out


def test_hitting_the_process_limit_is_reported_for_that_command_only(start: StartSandbox) -> None:
    sandbox = start(pids=20)
    hit = sandbox.run("for i in $(seq 1 40); do sleep 5 & done 2>/dev/null; exit 1", 30)
    after = sandbox.run("exit 1", 10)
    assert hit.pids_limited and not hit.oom_killed
    assert not after.pids_limited  # the counter is compared, not just read


def test_files_in_the_workspace_do_not_eat_the_process_memory_limit(start: StartSandbox) -> None:
    sandbox = start(memory="96m", disk="128m", tmp_size="16m")
    command = "dd if=/dev/zero of=big bs=1M count=100 && python3 -c 'b = bytearray(64 * 2**20)'"
    result = sandbox.run(command, 60)
    assert result.exit_code == 0, result.output
    assert not result.oom_killed


def test_sigkill_without_memory_pressure_is_not_reported_as_oom(
    shared_sandbox: DockerSandbox,
) -> None:
    result = shared_sandbox.run("kill -9 $$", 10)
    assert result.exit_code == 137
    assert not result.oom_killed


# -- lifecycle and errors ------------------------------------------------------------------


def test_container_and_volume_removed_on_close(
    run_ids: Callable[[], str], sandbox_image: str, docker_client: docker.DockerClient
) -> None:
    run_id = run_ids()
    sandbox = DockerSandbox.start(SandboxConfig(image=sandbox_image), run_id)
    assert docker_client.containers.get(sandbox.name).status == "running"
    assert len(sandbox_leftovers(docker_client, run_id)) == 3  # container, workspace, /tmp
    sandbox.close()
    assert sandbox_leftovers(docker_client, run_id) == []


def test_close_is_idempotent(
    run_ids: Callable[[], str], sandbox_image: str, docker_client: docker.DockerClient
) -> None:
    sandbox = DockerSandbox.start(SandboxConfig(image=sandbox_image), run_ids())
    docker_client.containers.get(sandbox.name).remove(force=True)
    sandbox.close()
    sandbox.close()


def test_a_container_removed_under_the_run_gives_sandbox_error(
    start: StartSandbox, docker_client: docker.DockerClient
) -> None:
    sandbox = start()
    docker_client.containers.get(sandbox.name).remove(force=True)
    for call in (lambda: sandbox.run("true", 10), lambda: sandbox.read_file("x", 1000)):
        with pytest.raises(SandboxError, match="is gone"):
            call()


def test_a_container_killed_during_a_command_gives_sandbox_error_not_a_result(
    start: StartSandbox, docker_client: docker.DockerClient
) -> None:
    """The command dies with 137 as in an OOM kill; reading it as a failed check would send
    the model a false cause and only fail on the next sync."""
    sandbox = start()
    threading.Timer(0.5, docker_client.api.kill, (sandbox.name,)).start()
    with pytest.raises(SandboxError) as caught:
        sandbox.run("sleep 30", 60)
    assert caught.value.cause.startswith(
        f"the sandbox container {sandbox.name} is not running any more"
    )
    assert caught.value.fix.endswith("start the run again")


def test_close_waits_out_a_removal_someone_else_started(
    start: StartSandbox, docker_client: docker.DockerClient
) -> None:
    """`docker rm -f` under a run: while it is under way the engine refuses our removal and
    the volumes are in use, and giving up then leaks the volumes."""
    sandbox = start()

    def remove() -> None:
        with contextlib.suppress(docker.errors.APIError):
            docker_client.api.remove_container(sandbox.name, force=True)

    remover = threading.Thread(target=remove)
    remover.start()
    time.sleep(0.02)  # its request reaches the engine first
    sandbox.close()
    remover.join()
    assert sandbox_leftovers(docker_client, sandbox.run_id) == []


def test_closed_sandbox_refuses_commands(start: StartSandbox) -> None:
    sandbox = start()
    sandbox.close()
    with pytest.raises(SandboxError, match="closed"):
        sandbox.run("true", 10)


def test_ctrl_c_during_run_still_removes_the_container(
    run_ids: Callable[[], str], sandbox_image: str, docker_client: docker.DockerClient
) -> None:
    run_id = run_ids()
    interrupt = threading.Timer(
        0.5, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)
    )
    started = time.monotonic()
    with (
        pytest.raises(KeyboardInterrupt),
        DockerSandbox.start(SandboxConfig(image=sandbox_image), run_id) as sandbox,
    ):
        interrupt.start()
        sandbox.run("sleep 60", 120)
    assert time.monotonic() - started < 10
    assert sandbox_leftovers(docker_client, run_id) == []


def test_missing_image_gives_setup_hint(
    run_ids: Callable[[], str], docker_client: docker.DockerClient
) -> None:
    run_id = run_ids()
    with pytest.raises(SandboxError) as caught:
        DockerSandbox.start(SandboxConfig(image="codebot-sandbox:no-such-tag"), run_id)
    assert "codebot-sandbox:no-such-tag" in caught.value.cause
    assert "bash sandbox/setup-host.sh" in caught.value.fix
    assert sandbox_leftovers(docker_client, run_id) == []


def test_unreachable_engine_gives_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox_image: str
) -> None:
    closed = socket.socket(socket.AF_UNIX)
    closed.bind(str(tmp_path / "docker.sock"))
    closed.close()  # the path exists but nothing listens on it
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'docker.sock'}")
    for attempt in (ping, lambda: DockerSandbox.start(SandboxConfig(image=sandbox_image), "x")):
        with pytest.raises(SandboxError) as caught:
            attempt()
        assert caught.value.cause == "cannot reach the Docker engine (Connection refused)"
        assert "bash sandbox/setup-host.sh" in caught.value.fix
        assert "DOCKER_HOST" in caught.value.fix


def test_failed_start_leaves_nothing_behind(
    run_ids: Callable[[], str], sandbox_image: str, docker_client: docker.DockerClient
) -> None:
    """The engine refuses the container after the volumes exist: they must go too."""
    run_id = run_ids()
    with pytest.raises(SandboxError, match="refused"):
        DockerSandbox.start(
            SandboxConfig(image=sandbox_image, cpus=float(os.cpu_count() or 1) + 64), run_id
        )
    assert sandbox_leftovers(docker_client, run_id) == []


def test_second_sandbox_for_a_run_id_is_refused_and_the_first_survives(
    start: StartSandbox, sandbox_image: str
) -> None:
    first = start()
    with pytest.raises(SandboxError, match="already exists"):
        DockerSandbox.start(SandboxConfig(image=sandbox_image), first.run_id)
    assert first.run("echo still here", 10).output == "still here\n"


def test_invalid_run_id_is_refused() -> None:
    with pytest.raises(SandboxError, match="invalid run id"):
        DockerSandbox.start(SandboxConfig(), "../bad id")


def test_cleanup_orphans_removes_only_that_runs_resources(
    start: StartSandbox, docker_client: docker.DockerClient
) -> None:
    orphan, other = start(), start()
    assert cleanup_orphans(orphan.run_id) == 3
    assert sandbox_leftovers(docker_client, orphan.run_id) == []
    assert len(sandbox_leftovers(docker_client, other.run_id)) == 3
    assert cleanup_orphans(orphan.run_id) == 0


def test_ping_passes_when_the_engine_answers_and_holds_the_image(sandbox_image: str) -> None:
    ping()
    ping(sandbox_image)


def test_ping_with_a_missing_image_gives_setup_hint(docker_client: docker.DockerClient) -> None:
    with pytest.raises(SandboxError) as caught:
        ping("codebot-sandbox:no-such-tag")
    assert "bash sandbox/setup-host.sh" in caught.value.fix


# -- dependency builders and the images committed from them -------------------------------

ENV_REPOSITORY = "codebot-test-env"


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    id: str
    label: str  # `key=value`, this image's alone
    builder_run_id: str


@pytest.fixture
def built_image(
    run_ids: Callable[[], str], sandbox_image: str, docker_client: docker.DockerClient
) -> Iterator[BuiltImage]:
    """A builder that installed a file under /opt, committed; the image is removed after."""
    builder_id = run_ids()
    token = uuid.uuid4().hex
    ref = f"{ENV_REPOSITORY}:{builder_id}"
    config = SandboxConfig(image=sandbox_image, writable_root=True)
    try:
        with DockerSandbox.start(config, builder_id) as builder:
            builder.make_user_dir("/opt/codebot-env")
            assert builder.run("echo built > /opt/codebot-env/x", 10).exit_code == 0
            image_id = builder.commit(ENV_REPOSITORY, builder_id, {"codebot.test-env": token})
        yield BuiltImage(ref, image_id, f"codebot.test-env={token}", builder_id)
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(ref, force=True)


def test_builder_keeps_every_capability_dropped_with_only_its_root_writable(
    start: StartSandbox, docker_client: docker.DockerClient
) -> None:
    builder = start(writable_root=True)
    host = docker_client.containers.get(builder.name).attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is False
    assert (host["CapDrop"], host["CapAdd"]) == (["ALL"], None)
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"] == "none"


def test_committed_image_runs_as_a_read_only_sandbox_with_the_builders_files(
    built_image: BuiltImage, run_ids: Callable[[], str]
) -> None:
    with DockerSandbox.start(SandboxConfig(image=built_image.ref), run_ids()) as sandbox:
        result = sandbox.run("cat /opt/codebot-env/x; id -u; touch /opt/codebot-env/y", 10)
    assert result.exit_code != 0
    assert result.output.startswith("built\n65534\n")
    assert "Read-only file system" in result.output


def test_committed_image_keeps_the_source_images_config_and_carries_the_labels(
    built_image: BuiltImage, sandbox_image: str, docker_client: docker.DockerClient
) -> None:
    source = docker_client.images.get(sandbox_image).attrs["Config"]
    image = docker_client.images.get(built_image.ref)
    assert image.id == built_image.id
    committed = image.attrs["Config"]
    for key in ("Cmd", "Entrypoint", "User", "WorkingDir"):
        assert committed[key] == source[key], key
    # The engine keeps the variables the sandbox sets for every command (BASE_ENV) too.
    extra = set(committed["Env"]) - set(source["Env"])
    assert set(source["Env"]) <= set(committed["Env"])
    assert extra <= {f"{k}={v}" for k, v in BASE_ENV.items()}, extra
    key, _, value = built_image.label.partition("=")
    assert committed["Labels"][key] == value
    assert committed["Labels"][LABEL] == built_image.builder_run_id
    assert committed["Labels"][OWNER_LABEL] == owner()


def test_commit_refuses_a_sandbox_with_a_read_only_root(
    shared_sandbox: DockerSandbox, docker_client: docker.DockerClient
) -> None:
    with pytest.raises(SandboxError, match="read-only root filesystem"):
        shared_sandbox.commit(ENV_REPOSITORY, shared_sandbox.run_id, {})
    assert not image_exists(f"{ENV_REPOSITORY}:{shared_sandbox.run_id}")


def test_make_user_dir_gives_the_sandbox_user_a_directory_outside_the_volumes(
    start: StartSandbox,
) -> None:
    builder = start(writable_root=True)
    builder.make_user_dir("/opt/codebot-env")
    result = builder.run("stat -c '%u:%g %a' /opt/codebot-env; touch /opt/codebot-env/f", 10)
    assert (result.exit_code, result.output) == (0, "65534:65534 755\n")


def test_make_user_dir_without_its_parent_is_refused(start: StartSandbox) -> None:
    builder = start(writable_root=True)
    with pytest.raises(SandboxError, match="no /opt/missing in the sandbox"):
        builder.make_user_dir("/opt/missing/env")


def test_run_as_root_is_root_without_any_capability(start: StartSandbox) -> None:
    """What a fixed root command can do: write what root owns; not chown (measured: even
    `cap_add` gives a root exec nothing under no-new-privileges in a non-root container)."""
    builder = start(writable_root=True)
    made = builder.run_as_root(["mkdir", "/opt/root-made"])
    who = builder.run_as_root(["sh", "-c", "id -u; grep CapEff /proc/self/status; echo $PATH"])
    chown = builder.run_as_root(["chown", "65534", "/opt/root-made"])
    assert made.exit_code == 0, made.output
    assert who.output == "0\nCapEff:\t0000000000000000\n" + ROOT_PATH + "\n"
    assert chown.exit_code != 0 and "Operation not permitted" in chown.output


def test_run_as_root_passes_arguments_without_a_shell(start: StartSandbox) -> None:
    builder = start(writable_root=True)
    result = builder.run_as_root(["touch", "/opt/it's $HOME; x"])
    assert result.exit_code == 0, result.output
    assert builder.run("ls /opt", 10).output == "it's $HOME; x\n"


def test_ca_bundle_is_visible_read_only_at_the_fixed_path(
    start: StartSandbox, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    bundle = tmp_path / "proxy-ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nproxy\n-----END CERTIFICATE-----\n")
    sandbox = start(ca_bundle=str(bundle))
    assert sandbox.read_file(HOST_CA_PATH, 10_000) == bundle.read_bytes()
    # root owns the file, so only the read-only mount stops root writing to it
    write = sandbox.run_as_root(["sh", "-c", f"echo more >> {HOST_CA_PATH}"])
    assert write.exit_code != 0 and "Read-only file system" in write.output
    mounts = docker_client.containers.get(sandbox.name).attrs["Mounts"]
    assert [m["RW"] for m in mounts if m["Destination"] == HOST_CA_PATH] == [False]


def test_ca_bundle_that_is_not_a_regular_file_is_refused_before_anything_starts(
    run_ids: Callable[[], str],
    sandbox_image: str,
    tmp_path: Path,
    docker_client: docker.DockerClient,
) -> None:
    for path in (tmp_path / "missing.crt", tmp_path):
        run_id = run_ids()
        config = SandboxConfig(image=sandbox_image, ca_bundle=str(path))
        with pytest.raises(SandboxError) as caught:
            DockerSandbox.start(config, run_id)
        assert f"ca_bundle={str(path)!r}" in caught.value.cause
        assert sandbox_leftovers(docker_client, run_id) == []


def test_images_labelled_finds_the_committed_image_and_remove_image_removes_it(
    built_image: BuiltImage,
) -> None:
    found = images_labelled(built_image.label)
    assert [(i.ref, i.id) for i in found] == [(built_image.ref, built_image.id)]
    created = datetime.fromisoformat(found[0].created)
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 120
    remove_image(built_image.ref)
    assert not image_exists(built_image.ref)
    assert images_labelled(built_image.label) == []
    remove_image(built_image.ref)  # gone already: no error


def test_remove_image_refuses_an_image_a_sandbox_uses(
    built_image: BuiltImage, run_ids: Callable[[], str]
) -> None:
    with DockerSandbox.start(SandboxConfig(image=built_image.ref), run_ids()) as sandbox:
        with pytest.raises(SandboxError) as caught:
            remove_image(built_image.ref)
        assert "is using its referenced image" in caught.value.cause
        assert sandbox.run("cat /opt/codebot-env/x", 10).output == "built\n"
    assert image_exists(built_image.ref)


def test_image_exists_tells_present_from_absent(sandbox_image: str) -> None:
    assert image_exists(sandbox_image)
    assert not image_exists(f"{ENV_REPOSITORY}:no-such-tag")
