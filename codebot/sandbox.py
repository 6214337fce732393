"""DockerSandbox: one locked-down container per run; every check is an exec inside it.

The only module that imports the docker SDK; its exceptions become SandboxError here.
Both writable places (the workspace and /tmp) are tmpfs-backed *volumes*, not container
tmpfs mounts: the daemon mounts volumes itself, so put_archive/get_archive see their files
(they do not see a container `tmpfs=` mount), and the tmpfs size is a disk quota.

Longer than the ~400-line guide because it is the whole Docker boundary: lifecycle, and exec
with its kill machinery. What goes into the workspace (which files, as a tar) is `tree.py`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import posixpath
import re
import secrets
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import Mount

from codebot import tree
from codebot.config import SandboxConfig
from codebot.errors import SandboxError
from codebot.owner import owner, owner_gone
from codebot.records import ExecResult

LABEL = "codebot.run"
# Which process made a sandbox: "host/pid/start-time". A sandbox whose maker is gone (killed
# with SIGKILL, or cut off by an engine that died) is removed by the next run on that host.
OWNER_LABEL = "codebot.owner"
SANDBOX_UID = 65534
BASE_ENV: Mapping[str, str] = {
    # ~/.local/bin last: what a `pip install --user` adds never shadows a system command.
    "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin:/tmp/.local/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}
ENGINE_FIX = "start it (e.g. `sudo dockerd &` or `bash sandbox/setup-host.sh`) or set DOCKER_HOST"
IMAGE_FIX = "build it with `bash sandbox/setup-host.sh`"
GONE_FIX = "something stopped or removed it during the run; start the run again"
WATCHDOG_GRACE_S = 5.0
REMOVE_WAIT_S = 10.0

# PID 1 must reap: killed leftovers are reparented to it and would otherwise stay zombies
# that count against pids_limit. `kill -9 -1` never reaches PID 1, so the keeper survives.
# It runs as the sandbox user, so checked code can signal it: it ignores the two signals sh
# would die of (the kernel drops the rest for a namespace's init); removal uses SIGKILL.
_KEEPER = ["sh", "-c", "trap '' TERM INT; while :; do sleep 3600 & wait; done"]
_KILL_ALL = ["kill", "-9", "-1"]
# Kill what a command left running, then read the cgroup's counters (v2, then v1): OOM kills,
# and forks refused at the pids limit.
_COUNTERS = (
    "cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null; "
    "echo pids; cat /sys/fs/cgroup/pids.events /sys/fs/cgroup/pids/pids.events 2>/dev/null"
)
_AFTER_RUN = f"kill -9 -1 2>/dev/null; {_COUNTERS}; true"
# A command runs inside this wrapper, which does the same after it, in the same exec (one
# exec per check, not two): $1 the time limit, $2 the command, $3 a mark that starts the
# counters at the end of the output. `kill -1` spares the caller, so the wrapper lives on;
# after it nothing of the command's is left to write, so the last mark is the wrapper's.
# The command's stderr joins its stdout: one pipe keeps the order in which things were
# written (the engine relays two pipes in any order), so the mark really comes last.
_WRAPPER = (
    'timeout --kill-after=2 "$1" sh -c "$2" 2>&1; rc=$?; kill -9 -1 2>/dev/null; '
    f'printf "\\n%s\\n" "$3"; {_COUNTERS}; exit $rc'
)
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,120}")


class DockerSandbox:
    """The `Sandbox` protocol on one container. Not thread-safe: one command at a time."""

    def __init__(self, client: Any, config: SandboxConfig, run_id: str) -> None:
        self._client = client
        self._config = config
        self.run_id = run_id
        self.workdir = config.workdir
        self.name = f"codebot-{run_id}"
        self.volumes = (f"codebot-{run_id}-ws", f"codebot-{run_id}-tmp")
        self._oom_kills = 0
        self._forks_refused = 0
        self._closed = False
        self.swept: list[str] = []  # run ids of abandoned sandboxes removed at start

    @classmethod
    def start(cls, config: SandboxConfig, run_id: str) -> DockerSandbox:
        """Create and start the run's container; on any failure (even Ctrl-C) remove it all."""
        if not _RUN_ID.fullmatch(run_id):
            raise SandboxError(
                f"invalid run id {run_id!r} for a sandbox name", "use letters, digits, `_.-`"
            )
        sandbox = cls(_connect(), config, run_id)
        created = False
        try:
            with _translated(config.image):
                sandbox.swept = sweep_abandoned(sandbox._client)
                sandbox._preflight()
                created = True
                sandbox._create()
        except BaseException:
            if created:
                sandbox._remove_all()
            sandbox._client.close()
            raise
        return sandbox

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def sync(self, root: Path, paths: Sequence[str] | None = None) -> None:
        """Copy files under `root` into the workspace (never `.git`); delete missing `paths`."""
        root = root.resolve()
        wanted = None if paths is None else [tree.safe_relpath(p) for p in paths]
        members, missing = tree.collect(root, wanted)
        with self._live():
            if missing:
                targets = [posixpath.join(self.workdir, p) for p in missing]
                self._exec(["rm", "-rf", "--", *targets])
            if members and not self._client.api.put_archive(
                self.name, self.workdir, tree.tar(root, members, SANDBOX_UID)
            ):
                raise SandboxError(f"copying files into {self.name} failed", "see the daemon log")

    def run(
        self, command: str, timeout_s: float, env: Mapping[str, str] | None = None
    ) -> ExecResult:
        """Run `sh -c command` under coreutils `timeout`, with a host-side watchdog behind it."""
        limit = f"{max(timeout_s, 0.01):.2f}"  # `timeout 0` would mean no limit at all
        mark = f"codebot-counters-{secrets.token_hex(8)}"
        argv = ["sh", "-c", _WRAPPER, "sh", limit, command, mark]
        api = self._client.api
        started = time.monotonic()
        with self._live():
            exec_id = api.exec_create(
                self.name,
                argv,
                user=self._config.user,
                workdir=self.workdir,
                environment={**BASE_ENV, **(env or {})},
            )["Id"]
            output = _CappedOutput(self._config.max_output_bytes)
            stream = api.exec_start(exec_id, stream=True)
            kill_all = functools.partial(self._exec, _KILL_ALL)
            with _Watchdog(timeout_s + WATCHDOG_GRACE_S, kill_all, stream) as dog:
                try:
                    for chunk in stream:
                        output.add(chunk)
                except Exception:
                    if not dog.fired.is_set():
                        raise
            exit_code = self._exit_code(exec_id)
            duration = time.monotonic() - started
            text, truncated = output.text()
            text, sep, counters = text.rpartition(f"\n{mark}\n")
            if sep:
                oom_kills, forks_refused = _read_counters(counters.encode())
            else:  # the wrapper did not finish (the watchdog, or the container went away)
                text = counters
                oom_kills, forks_refused = self._after_run()
        timed_out = dog.fired.is_set() or (exit_code in (124, 137) and duration >= timeout_s)
        if exit_code is None:
            exit_code = 124 if timed_out else -1
        return ExecResult(
            command=command,
            exit_code=exit_code,
            output=text,
            duration_s=round(duration, 3),
            timed_out=timed_out,
            truncated=truncated,
            oom_killed=self._oom_seen(oom_kills, exit_code, timed_out),
            pids_limited=self._pids_limit_hit(forks_refused),
        )

    def read_file(self, path: str) -> bytes | None:
        """A regular file's bytes (relative paths are under the workspace), None if absent."""
        full = path if path.startswith("/") else posixpath.join(self.workdir, path)
        with self._live():
            try:
                chunks, _stat = self._client.api.get_archive(self.name, full)
            except docker.errors.NotFound as exc:
                if "No such container" in str(exc.explanation):
                    raise
                return None
            data = b"".join(chunks)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            first = archive.next()
            if first is None or not first.isfile():
                return None
            member = archive.extractfile(first)
            return member.read() if member else None

    def seal(self) -> None:
        """Disconnect the container from every network and check that it took, so only the
        loopback interface is left. Created with `network_mode=none`, it is sealed already."""
        api = self._client.api
        with self._live():
            for network in self._networks():
                api.disconnect_container_from_network(self.name, network, force=True)
            left = self._networks()
        if left:
            raise SandboxError(
                f"{self.name} is still on network(s) {', '.join(left)} after disconnecting",
                "check the Docker daemon log; no generated code ran",
            )

    def close(self) -> None:
        """Remove the container and its volumes. Idempotent; gone things are not an error."""
        if self._closed:
            return
        self._closed = True
        failures = self._remove_all()
        self._client.close()
        if failures:
            raise SandboxError(
                f"could not remove sandbox resources: {', '.join(failures)}",
                f"remove them with `docker rm -f {self.name}` and "
                f"`docker volume rm {' '.join(self.volumes)}`",
            )

    # -- internals ------------------------------------------------------------------------

    def _preflight(self) -> None:
        """Fail before creating anything: a missing image, or a run id already in use
        (whose resources `_remove_all` must then not touch)."""
        self._client.images.get(self._config.image)
        label = {"label": f"{LABEL}={self.run_id}"}
        api = self._client.api
        if api.containers(all=True, filters=label) or (api.volumes(filters=label) or {}).get(
            "Volumes"
        ):
            raise SandboxError(
                f"a sandbox for run {self.run_id} already exists",
                f"run ids must be unique; remove it with `docker rm -f {self.name}`",
            )

    def _create(self) -> None:
        cfg = self._config
        labels = {LABEL: self.run_id, OWNER_LABEL: owner()}
        options = (
            f"size={cfg.disk},uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0755,nosuid,nodev",
            f"size={cfg.tmp_size},mode=1777,nosuid,nodev",
        )
        for name, option in zip(self.volumes, options, strict=True):
            self._client.volumes.create(
                name=name,
                driver="local",
                driver_opts={"type": "tmpfs", "device": "tmpfs", "o": option},
                labels=labels,
            )
        container = self._client.containers.create(
            cfg.image,
            _KEEPER,
            name=self.name,
            labels=labels,
            user=cfg.user,
            working_dir=cfg.workdir,
            environment=dict(BASE_ENV),
            network_mode=None if cfg.network else "none",
            mem_limit=cgroup_memory(cfg),
            memswap_limit=cgroup_memory(cfg),
            nano_cpus=int(cfg.cpus * 1e9),
            pids_limit=cfg.pids,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            mounts=[
                Mount(cfg.workdir, self.volumes[0], type="volume"),
                Mount("/tmp", self.volumes[1], type="volume"),
            ],
        )
        container.start()

    def _networks(self) -> list[str]:
        attached = self._client.api.inspect_container(self.name)["NetworkSettings"]["Networks"]
        return sorted(name for name in attached or {} if name != "none")

    def _remove_all(self) -> list[str]:
        """Remove by name, so a Ctrl-C in the middle of a create call leaks nothing."""
        api = self._client.api
        failures = []
        for kind, remove, name in (
            ("container", api.remove_container, self.name),
            *(("volume", api.remove_volume, v) for v in self.volumes),
        ):
            try:
                _remove_patiently(remove, name)
            except docker.errors.NotFound:
                pass
            except (docker.errors.DockerException, OSError) as exc:
                failures.append(f"{kind} {name} ({_os_reason(exc)})")
        return failures

    def _exec(self, argv: list[str]) -> bytes:
        exec_id = self._client.api.exec_create(self.name, argv, user=self._config.user)["Id"]
        output: bytes = self._client.api.exec_start(exec_id)
        return output

    def _exit_code(self, exec_id: str) -> int | None:
        """The exec's exit code; polled briefly, as the daemon records it just after EOF."""
        for _ in range(20):
            code = self._client.api.exec_inspect(exec_id)["ExitCode"]
            if code is not None:
                return int(code)
            time.sleep(0.05)
        return None

    def _after_run(self) -> tuple[int | None, int | None]:
        """Clean up after a command; return the cgroup's OOM-kill count and its count of forks
        refused at the pids limit (None where not readable). The script always exits 0
        in a live container: anything else means the container is being killed or removed,
        and the command's death must not pass for a failed check."""
        api = self._client.api
        exec_id = api.exec_create(self.name, ["sh", "-c", _AFTER_RUN], user=self._config.user)["Id"]
        output: bytes = api.exec_start(exec_id)
        code = self._exit_code(exec_id)
        if code is None:  # not recorded in time: ask the container itself
            code = 0 if api.inspect_container(self.name)["State"]["Running"] else -1
        if code != 0:
            said = output.decode("utf-8", "replace").strip().splitlines()
            raise SandboxError(
                f"the sandbox container {self.name} is not running any more"
                + (f" ({said[0][:200]})" if said else ""),
                GONE_FIX,
            )
        return _read_counters(output)

    def _pids_limit_hit(self, forks_refused: int | None) -> bool:
        """The cgroup refused a fork at the pids limit since the last command."""
        if forks_refused is None:
            return False
        hit = forks_refused > self._forks_refused
        self._forks_refused = forks_refused
        return hit

    def _oom_seen(self, oom_kills: int | None, exit_code: int, timed_out: bool) -> bool:
        """The cgroup's OOM-kill counter went up; without a counter, 137 that was no timeout."""
        if oom_kills is None:
            return exit_code == 137 and not timed_out
        seen = oom_kills > self._oom_kills
        self._oom_kills = oom_kills
        return seen

    def _live(self) -> contextlib.AbstractContextManager[None]:
        if self._closed:
            raise SandboxError(f"sandbox {self.name} is closed", "start a new sandbox")
        return _translated(self._config.image, self.name)


class _CappedOutput:
    """Keeps the first and the last half of `limit` bytes of a stream."""

    def __init__(self, limit: int) -> None:
        self._head_max = max(limit, 2) // 2
        self._tail_max = max(limit, 2) - self._head_max
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def add(self, chunk: bytes) -> None:
        self._total += len(chunk)
        room = self._head_max - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        self._tail += chunk
        if len(self._tail) > 2 * self._tail_max:
            del self._tail[: len(self._tail) - self._tail_max]

    def text(self) -> tuple[str, bool]:
        tail = self._tail[max(0, len(self._tail) - self._tail_max) :]
        cut = self._total - len(self._head) - len(tail)
        marker = f"\n[... {cut} bytes cut ...]\n".encode() if cut > 0 else b""
        return (self._head + marker + tail).decode("utf-8", "replace"), cut > 0


class _Watchdog:
    """Last resort if `timeout` itself cannot end the command: kill every sandbox process,
    and if the stream still does not end, drop the connection so `run` returns."""

    def __init__(self, after_s: float, kill: Any, stream: Any) -> None:
        self.fired = threading.Event()
        self._done = threading.Event()
        self._after_s = after_s
        self._kill = kill
        self._stream = stream
        self._thread = threading.Thread(target=self._watch, daemon=True, name="codebot-watchdog")

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
        self._stream.close()

    def _watch(self) -> None:
        if self._done.wait(self._after_s):
            return
        self.fired.set()
        with contextlib.suppress(Exception):  # the stream close below still ends the run
            self._kill()
        if not self._done.wait(WATCHDOG_GRACE_S):
            self._stream.close()


def ping(image: str | None = None) -> None:
    """Raise SandboxError unless a Docker engine answers (and holds `image`, if given)."""
    client = _connect()
    try:
        with _translated(image or ""):
            if image:
                client.images.get(image)
    finally:
        client.close()


def _read_counters(output: bytes) -> tuple[int | None, int | None]:
    """The OOM-kill and refused-fork counts from `_COUNTERS` output (None if unreadable)."""
    memory, _, pids = (b"\n" + output).partition(b"\npids\n")
    oom = re.search(rb"^oom_kill (\d+)$", memory, re.MULTILINE)
    refused = re.search(rb"^max (\d+)$", pids, re.MULTILINE)
    return (int(oom.group(1)) if oom else None, int(refused.group(1)) if refused else None)


def cleanup_orphans(run_id: str | None = None) -> int:
    """Remove codebot containers and volumes (of one run, or all); return how many."""
    client = _connect()
    label = {"label": LABEL if run_id is None else f"{LABEL}={run_id}"}
    removed = 0
    with _translated(""):
        try:
            for container in client.api.containers(all=True, filters=label):
                removed += _remove_quietly(client.api.remove_container, container["Id"])
            for volume in client.api.volumes(filters=label).get("Volumes") or []:
                removed += _remove_quietly(client.api.remove_volume, volume["Name"])
        finally:
            client.close()
    return removed


def sweep_abandoned(client: Any) -> list[str]:
    """Remove the sandboxes (containers and volumes) whose maker process has ended; their
    run ids. Sandboxes of live runs, and of other hosts sharing the engine, are left alone."""
    api = client.api
    found = {"label": OWNER_LABEL}
    labelled = [c["Labels"] for c in api.containers(all=True, filters=found)]
    labelled += [v.get("Labels") or {} for v in api.volumes(filters=found).get("Volumes") or []]
    gone = sorted({lab[LABEL] for lab in labelled if LABEL in lab and owner_gone(lab[OWNER_LABEL])})
    for run_id in gone:
        run = {"label": f"{LABEL}={run_id}"}
        for container in api.containers(all=True, filters=run):
            _remove_quietly(api.remove_container, container["Id"])
        for volume in api.volumes(filters=run).get("Volumes") or []:
            with contextlib.suppress(docker.errors.APIError):
                _remove_quietly(api.remove_volume, volume["Name"])
    return gone


def _remove_patiently(remove: Any, name: str) -> None:
    """Remove `name`, waiting out a removal someone else started (`docker rm -f` mid-run):
    until it ends the engine answers 409 for the container ("already in progress") and for
    its volumes ("in use"), and giving up then would leak the volumes."""
    deadline = time.monotonic() + REMOVE_WAIT_S
    while True:
        try:
            remove(name, force=True)
            return
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


def _remove_quietly(remove: Any, name: str) -> int:
    try:
        remove(name, force=True)
    except docker.errors.NotFound:
        return 0
    return 1


def _connect() -> Any:
    try:
        # version=None makes the SDK ask the engine for its API version: a cheap ping.
        return docker.from_env()
    except (docker.errors.DockerException, OSError) as exc:
        raise SandboxError(
            f"cannot reach the Docker engine ({_os_reason(exc)})", ENGINE_FIX
        ) from None


@contextlib.contextmanager
def _translated(image: str, container: str = "") -> Iterator[None]:
    """The one place docker SDK exceptions become SandboxErrors."""
    try:
        yield
    except docker.errors.ImageNotFound:
        raise SandboxError(f"sandbox image {image} not found", IMAGE_FIX) from None
    except docker.errors.NotFound as exc:
        if not container:
            raise SandboxError(f"docker: {_short(exc)}", "") from None
        raise SandboxError(
            f"the sandbox container {container} is gone ({_short(exc)})", GONE_FIX
        ) from None
    except docker.errors.APIError as exc:
        if container and "is not running" in _short(exc):
            # Killed, or its removal is under way (409 or 500 by engine version): not a
            # problem with the settings.
            raise SandboxError(
                f"the sandbox container {container} is not running any more ({_short(exc)})",
                GONE_FIX,
            ) from None
        raise SandboxError(
            f"the Docker engine refused: {_short(exc)}",
            "check the sandbox settings and `docker info`",
        ) from None
    except OSError as exc:
        raise SandboxError(
            f"cannot reach the Docker engine ({_os_reason(exc)})", ENGINE_FIX
        ) from None
    except docker.errors.DockerException as exc:
        raise SandboxError(f"docker: {_short(exc)}", "check the sandbox settings") from None


def _os_reason(exc: BaseException) -> str:
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
    return found or _short(exc)


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc)
    return text if len(text) <= 300 else text[:297] + "..."


def cgroup_memory(cfg: SandboxConfig) -> int:
    """The container's memory limit in bytes: processes plus both tmpfs volumes.

    tmpfs pages are charged to the memory cgroup of whoever writes them, so without the sum
    a suite that writes files would be OOM-killed under a limit meant for its processes.
    """
    return sum(_bytes(s) for s in (cfg.memory, cfg.disk, cfg.tmp_size))


def _bytes(size: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*", size.lower())
    if not match:
        raise SandboxError(f"sandbox size {size!r} is not a size", "use e.g. 512m or 2g")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[match.group(2)]
    return int(float(match.group(1)) * scale)
