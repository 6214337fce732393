"""DockerSandbox: the run's one container and its volumes, from creation to removal.

What goes into the workspace (which files, as a tar) is `tree.py`; running commands is
`steps.py` (its parts in `commands.py`); reading a file back is `archive.py`; committing a
dependency builder as an image, and the images themselves, are `images.py`. Over 400 lines:
one class, the container's whole life (start, sync, run, read, seal, commit, remove), whose
parts live in those modules; what is left here is the state they share.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import posixpath
import re
import shlex
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import docker.errors
from docker.types import LogConfig, Mount

from codebot import tree
from codebot.config import SandboxConfig
from codebot.errors import SandboxError
from codebot.owner import owner
from codebot.protocols import ReadBack, Step
from codebot.records import ExecResult
from codebot.sandbox import archive, commands, images
from codebot.sandbox.commands import BASE_ENV
from codebot.sandbox.engine import connect, os_reason, translated
from codebot.sandbox.orphans import LABEL, OWNER_LABEL, remove_patiently, sweep_abandoned
from codebot.sandbox.steps import SYNC_LIMIT, SyncRefused
from codebot.sandbox.steps import run_steps as steps_run

SANDBOX_UID = 65534

# PID 1 must reap: killed leftovers are reparented to it and would otherwise stay zombies
# that count against pids_limit. `kill -9 -1` never reaches PID 1, so the keeper survives.
# It runs as the sandbox user, so checked code can signal it: it ignores the two signals sh
# would die of (the kernel drops the rest for a namespace's init); removal uses SIGKILL.
# Checked code can also write to its stdout (/proc/1/fd/1): that goes to /dev/null, and the
# container has no log driver besides, so nothing written there is stored on the host.
_KEEPER = [
    "sh",
    "-c",
    "exec >/dev/null 2>&1; trap '' TERM INT; while :; do sleep 3600 & wait; done",
]
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,120}")
# Where `SandboxConfig.ca_bundle` appears, and what points the usual clients at it (a
# command that needs a registry adds it to its env; pip, requests, OpenSSL, Node/npm).
HOST_CA_PATH = "/etc/ssl/certs/codebot-host-ca.crt"
HOST_CA_ENV: Mapping[str, str] = {
    "PIP_CERT": HOST_CA_PATH,
    "REQUESTS_CA_BUNDLE": HOST_CA_PATH,
    "SSL_CERT_FILE": HOST_CA_PATH,
    "NODE_EXTRA_CA_CERTS": HOST_CA_PATH,
}
# A root command's PATH: only root-owned system directories, none the sandbox user can write.
_ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class DockerSandbox:
    """The `Sandbox` protocol on one container. Not thread-safe: one command at a time."""

    def __init__(self, client: Any, config: SandboxConfig, run_id: str) -> None:
        self._client = client
        self._config = config
        self.run_id = run_id
        self.workdir = config.workdir
        self.name = f"codebot-{run_id}"
        self.volumes: tuple[str, ...] = (f"codebot-{run_id}-ws", f"codebot-{run_id}-tmp")
        self._image_id = ""  # the image as inspected: what the container runs
        self._image_volumes: tuple[str, ...] = ()  # paths it declares as VOLUME
        self._image_config: Mapping[str, Any] = {}  # its config, for `commit`
        self._ca_source = ""  # the host CA bundle to mount, resolved
        self._counters = commands.CgroupCounters()
        self._closed = False
        # Files synced, to go with the next command: as a script, as an archive, deletions.
        # Syncs waiting for the next command, in order: (script, archive, deleted paths).
        self._pending: list[tuple[str, bytes, tuple[str, ...]]] = []
        self.swept: list[str] = []  # run ids of abandoned sandboxes removed at start

    @classmethod
    def start(cls, config: SandboxConfig, run_id: str) -> DockerSandbox:
        """Create and start the run's container; on any failure (even Ctrl-C) remove it all."""
        if not _RUN_ID.fullmatch(run_id):
            raise SandboxError(
                f"invalid run id {run_id!r} for a sandbox name", "use letters, digits, `_.-`"
            )
        sandbox = cls(connect(), config, run_id)
        created = False
        try:
            with translated(config.image):
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
        """Copy files under `root` into the workspace (never `.git`); delete missing `paths`.
        Up to `SYNC_LIMIT` of them (with those of earlier syncs still waiting) go with the
        next command, in its exec (codebot.tree.script); more, or before a read or a root
        command, as an archive."""
        root = root.resolve()
        wanted = None if paths is None else [tree.safe_relpath(p) for p in paths]
        members, missing = tree.collect(root, wanted)
        room = SYNC_LIMIT - sum(len(script) for script, _, _ in self._pending)
        script = tree.script(root, members, missing, room)
        if script is not None:  # the archive too: the files may change before it is sent
            self._pending.append((script, tree.tar(root, members, SANDBOX_UID), tuple(missing)))
            return
        self._flush()
        self._copy(tree.tar(root, members, SANDBOX_UID) if members else b"", missing)

    def _flush(self) -> None:
        """Copy what is waiting for the next command now, as archives, in order."""
        pending, self._pending = self._pending, []
        for _, archived, missing in pending:
            self._copy(archived, missing)

    def _copy(self, archived: bytes, missing: Sequence[str]) -> None:
        api = self._client.api
        with self._live():
            if missing:
                targets = [posixpath.join(self.workdir, p) for p in missing]
                commands.exec_argv(api, self.name, self._config.user, ["rm", "-rf", "--", *targets])
            if archived and not api.put_archive(self.name, self.workdir, archived):
                raise SandboxError(f"copying files into {self.name} failed", "see the daemon log")

    def run(
        self, command: str, timeout_s: float, env: Mapping[str, str] | None = None
    ) -> ExecResult:
        """Run `sh -c command` under coreutils `timeout`, with a host-side watchdog behind it."""
        return self.run_steps([Step(command, timeout_s, env)], {})[0][0]

    def run_steps(
        self, steps: Sequence[Step], paths: Mapping[str, int]
    ) -> tuple[tuple[ExecResult, ...], ReadBack]:
        """The steps in one exec, the cleanup after them and the regular files at `paths`
        (relative ones under the workspace) read back, as `read_file` gives them, in the exec
        that kills what the steps left (codebot.sandbox.steps)."""
        full = self._full_paths(paths)
        pending, self._pending = self._pending, []
        args = (self._client.api, self.name, self._config, self._counters, steps, full)
        with self._live():
            try:
                ran, got = steps_run(*args, "".join(script for script, _, _ in pending))
            except SyncRefused:  # nothing ran: copy the files as archives, and run
                for _, archived, missing in pending:
                    self._copy(archived, missing)
                ran, got = steps_run(*args)
        return ran, {p: got[f] for p, f in zip(paths, full, strict=True)}

    def _full_paths(self, paths: Mapping[str, int]) -> dict[str, int]:
        return {
            p if p.startswith("/") else posixpath.join(self.workdir, p): n for p, n in paths.items()
        }

    def read_file(self, path: str, max_bytes: int) -> bytes | None:
        """A regular file's bytes (relative paths are under the workspace), None if absent
        or not a regular file; FileTooLarge, unread, if over `max_bytes` (see `archive`)."""
        self._flush()  # what waits for the next command is there first
        full = path if path.startswith("/") else posixpath.join(self.workdir, path)
        with self._live():
            return archive.read_file(self._client.api, self.name, full, max_bytes)

    def run_as_root(self, argv: Sequence[str], timeout_s: float = 60.0) -> ExecResult:
        """Run `argv` as root, for fixed commands codebot itself writes (e.g. `mkdir` of a
        directory under /opt). Never give it repository or model text: it would run as root.

        Root here has no capabilities (cap_drop=ALL; the container's user is not root, and
        no-new-privileges keeps execve from granting root any): it can write what root
        owns, but not `chown` nor bypass permissions; `make_user_dir` makes a directory the
        sandbox user owns. PATH holds only root-owned system directories.
        """
        self._flush()  # what waits for the next command is there first
        root = dataclasses.replace(self._config, user="0:0")
        step = Step(shlex.join(argv), timeout_s, {"PATH": _ROOT_PATH})
        with self._live():
            return steps_run(self._client.api, self.name, root, self._counters, [step], {})[0][0]

    def make_user_dir(self, path: str) -> None:
        """Create the directory `path` (absolute; its parent must exist) owned by the sandbox
        user, mode 0755: e.g. /opt/codebot-env in a builder, before its setup step runs.

        The engine unpacks it from an archive as the daemon, so no process in the
        container needs CAP_CHOWN (which, under no-new-privileges and a non-root
        container, even `cap_add` cannot give a root exec). An existing directory is
        handed to the sandbox user too: pass only codebot's own paths.
        """
        self._flush()  # what waits for the next command is there first
        full = posixpath.normpath(path)
        parent, name = posixpath.split(full)
        if not path.startswith("/") or not name:
            raise SandboxError(f"cannot make directory {path!r}", "give an absolute path")
        with self._live():
            try:
                done = self._client.api.put_archive(self.name, parent, _user_dir_tar(name))
            except docker.errors.NotFound as exc:
                if "No such container" in str(exc.explanation):
                    raise
                raise SandboxError(f"cannot make {full}: no {parent} in the sandbox", "") from None
            if not done:
                raise SandboxError(f"making {full} in {self.name} failed", "see the daemon log")

    def commit(self, repository: str, tag: str, labels: Mapping[str, str]) -> str:
        """Commit a builder's root filesystem as `repository:tag`; the image's id. The
        volumes (workspace, /tmp = HOME) are not part of it: install outside them. The
        image keeps the source image's CMD, ENTRYPOINT, USER, WORKDIR and ENV, and carries
        `labels` plus this run's id and owner (which make it findable for pruning). With a
        `ca_bundle`, the image keeps the mount point: an empty file at HOST_CA_PATH."""
        self._flush()  # what waits for the next command is there first
        if not self._config.writable_root:
            raise SandboxError(
                f"sandbox {self.name} has a read-only root filesystem: nothing to commit",
                "commit only a builder, started with writable_root=True",
            )
        tagged = {**labels, LABEL: self.run_id, OWNER_LABEL: owner()}
        with self._live():
            return images.commit_container(
                self._client.api, self.name, self._image_config, repository, tag, tagged
            )

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
        (whose resources `_remove_all` must then not touch). Names a volume for each path
        the image declares, so `_remove_all` knows them all before any is created; the
        container is made from this image's id, so a tag moved meanwhile changes nothing."""
        self._ca_source = host_ca(self._config)
        image = self._client.images.get(self._config.image)
        self._image_id = image.id
        self._image_config = image.attrs.get("Config") or {}
        self._image_volumes = declared_volumes(image.attrs, (self.workdir, "/tmp"))
        self.volumes = (
            *self.volumes[:2],
            *(f"{self.name}-vol{i}" for i in range(len(self._image_volumes))),
        )
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
        """The volumes, then the locked-down container on them, labelled for the sweeps.

        A path the image declares as VOLUME gets a tmpfs volume like /tmp's: left to the
        engine, it would be an unlabelled anonymous volume on the host's disk, outside every
        quota and every sweep. Files in it count against the container's memory like /tmp's.
        A builder's writable root is the engine's layer on the host's disk, outside the disk
        quota (a size limit on it needs overlay on xfs with pquota).
        """
        cfg = self._config
        labels = {LABEL: self.run_id, OWNER_LABEL: owner()}
        tmp = f"size={cfg.tmp_size},mode=1777,nosuid,nodev"
        options = (
            f"size={cfg.disk},uid={SANDBOX_UID},gid={SANDBOX_UID},mode=0755,nosuid,nodev",
            *(tmp for _ in range(len(self.volumes) - 1)),
        )
        for name, option in zip(self.volumes, options, strict=True):
            self._client.volumes.create(
                name=name,
                driver="local",
                driver_opts={"type": "tmpfs", "device": "tmpfs", "o": option},
                labels=labels,
            )
        container = self._client.containers.create(
            self._image_id,
            _KEEPER,
            name=self.name,
            labels=labels,
            user=cfg.user,
            working_dir=cfg.workdir,
            environment=dict(BASE_ENV),
            network_mode=None if cfg.network else "none",
            mem_limit=cgroup_memory(cfg),
            memswap_limit=cgroup_memory(cfg),
            log_config=LogConfig(type=LogConfig.types.NONE),
            nano_cpus=int(cfg.cpus * 1e9),
            pids_limit=cfg.pids,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=not cfg.writable_root,
            mounts=self._mounts(),
        )
        container.start()

    def _mounts(self) -> list[Mount]:
        """Volumes where the sandbox may write; the CA bundle read-only, so no run alters it."""
        paths = (self._config.workdir, "/tmp", *self._image_volumes)
        mounts = [
            Mount(path, name, type="volume") for path, name in zip(paths, self.volumes, strict=True)
        ]
        if self._ca_source:
            mounts.append(Mount(HOST_CA_PATH, self._ca_source, type="bind", read_only=True))
        return mounts

    def _networks(self) -> list[str]:
        attached = self._client.api.inspect_container(self.name)["NetworkSettings"]["Networks"]
        return sorted(name for name in attached or {} if name != "none")

    def _remove_all(self) -> list[str]:
        """Remove by name, so a Ctrl-C in the middle of a create call leaks nothing."""
        api = self._client.api
        failures = []
        # v=True: an anonymous volume, were the engine to make one, has no label to sweep by.
        for kind, remove, name in (
            ("container", functools.partial(api.remove_container, v=True), self.name),
            *(("volume", api.remove_volume, v) for v in self.volumes),
        ):
            try:
                remove_patiently(remove, name)
            except docker.errors.NotFound:
                pass
            except (docker.errors.DockerException, OSError) as exc:
                failures.append(f"{kind} {name} ({os_reason(exc)})")
        return failures

    def _live(self) -> contextlib.AbstractContextManager[None]:
        if self._closed:
            raise SandboxError(f"sandbox {self.name} is closed", "start a new sandbox")
        return translated(self._config.image, self.name)


def cgroup_memory(cfg: SandboxConfig) -> int:
    """The container's memory limit in bytes: processes plus both tmpfs volumes.

    tmpfs pages are charged to the memory cgroup of whoever writes them, so without the sum
    a suite that writes files would be OOM-killed under a limit meant for its processes.
    """
    return sum(_bytes(s) for s in (cfg.memory, cfg.disk, cfg.tmp_size))


def declared_volumes(image_attrs: Mapping[str, Any], mounted: Sequence[str]) -> tuple[str, ...]:
    """The paths an image declares as VOLUME, sorted, less those the sandbox mounts anyway
    (a second mount at one path is an error; the sandbox's own covers it)."""
    declared = (image_attrs.get("Config") or {}).get("Volumes") or {}
    taken = {posixpath.normpath(p) for p in mounted}
    return tuple(sorted({posixpath.normpath(p) for p in declared} - taken))


def host_ca(cfg: SandboxConfig) -> str:
    """The CA bundle to mount, resolved ("" for none); a path that is not a regular file
    is refused before anything is created. The path is the engine's host's: a remote
    engine would mount its own file, so this check only holds for a local engine."""
    if not cfg.ca_bundle:
        return ""
    path = Path(cfg.ca_bundle).expanduser()
    if not path.is_file():
        raise SandboxError(
            f"the sandbox setting ca_bundle={cfg.ca_bundle!r} is not a regular file",
            "point it at the host's CA bundle (e.g. /etc/ssl/certs/ca-certificates.crt) "
            "or leave it empty",
        )
    return str(path.resolve())


def _user_dir_tar(name: str) -> bytes:
    """An archive of one empty directory owned by the sandbox user."""
    member = tarfile.TarInfo(name)
    member.type = tarfile.DIRTYPE
    member.mode = 0o755
    member.uid = member.gid = SANDBOX_UID
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(member)
    return data.getvalue()


def _bytes(size: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*", size.lower())
    if not match:
        raise SandboxError(f"sandbox size {size!r} is not a size", "use e.g. 512m or 2g")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[match.group(2)]
    return int(float(match.group(1)) * scale)
