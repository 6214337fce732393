"""Cached dependency environments: a spec's `setup` step runs once, and its result is an image.

The install runs in a *builder* sandbox on the base commit's files only (never on code the
model wrote), with the network only when the operator allows it (and the operator's CA
bundle for an intercepting proxy). What it leaves is committed as `codebot-env:<key>`, where
the key hashes the toolchain image, the setup command and the dependency files it reads;
every later run with the same key starts from that image with no install and no network.
What setup left in the workspace (node_modules, egg-info, ...) is kept inside the image at
`/opt/codebot-env/workspace` and copied into each new sandbox's workspace before the
repository's files.

Pruning rule: after a build, only the newest `keep` environment images are kept (by creation
time; CODEBOT_ENV_KEEP, default 10); the one a run is using is never removed.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath

from codebot.checks import run_setup
from codebot.config import SandboxConfig, Settings, run_sandbox
from codebot.diagnose import program_of
from codebot.errors import SandboxError
from codebot.protocols import Sandbox
from codebot.records import CheckResult
from codebot.sandbox import (
    HOST_CA_ENV,
    HOST_CA_PATH,
    DockerSandbox,
    image_exists,
    image_id,
    images_labelled,
    remove_image,
)
from codebot.spec import TaskSpec

ENV_REPOSITORY = "codebot-env"
ENV_LABEL = "codebot.env"  # the full key; images carrying it are environments
ENV_ROOT = "/opt/codebot-env"
OFFLINE = "the sandbox has no network for it (CODEBOT_SANDBOX_NETWORK=1 allows it)"
KEY_VERSION = "1"  # bump when what goes into an environment changes
# Files whose content decides what an install produces (matched on the file name).
DEPENDENCY_FILES = (
    "requirements*.txt", "constraints*.txt", "pyproject.toml", "setup.cfg", "setup.py",
    "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", "package.json", "package-lock.json",
    "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "go.mod", "go.sum", "Cargo.toml",
    "Cargo.lock",
)  # fmt: skip
# Where Python and Go find what setup installed, in the builder and in every later sandbox.
RUN_ENV = {"PIP_USER": "1", "PYTHONUSERBASE": ENV_ROOT, "GOMODCACHE": f"{ENV_ROOT}/go/pkg/mod"}


@dataclass(frozen=True)
class Environment:
    """What a run's sandboxes start from. `key` is empty when the spec has no setup;
    `cached` says the image was already there; `setup` is the install run of a build."""

    image: str
    key: str = ""
    cached: bool = False
    setup: CheckResult | None = None
    built_s: float = 0.0
    pruned: tuple[str, ...] = ()
    note: str = ""

    @property
    def ready(self) -> bool:
        """Whether the run can go on (no setup, a cache hit, or a build whose setup passed)."""
        return self.setup is None or self.setup.passed

    @property
    def restores_workspace(self) -> bool:
        return bool(self.key) and self.ready

    def summary(self) -> str:
        if self.note:
            return f"{self.image} ({self.note})"
        if not self.key:
            return f"{self.image} (no setup step)"
        if self.cached:
            return f"{self.image} (cached: no install, no network)"
        if self.ready:
            return f"{self.image} (built in {self.built_s:.1f}s)"
        return "not built: the setup step failed"


def setup_env(settings: Settings) -> dict[str, str]:
    """The environment of the install: where Python, npm and Go put what they fetch (inside
    the image-to-be, not the volumes, which a commit leaves out), and the operator's CA
    bundle for every client that needs telling."""
    env = {"PIP_BREAK_SYSTEM_PACKAGES": "1", **RUN_ENV, "npm_config_cache": "/tmp/.npm"}
    if settings.sandbox.ca_bundle:
        env.update(HOST_CA_ENV)
        env.update(GIT_SSL_CAINFO=HOST_CA_PATH, npm_config_cafile=HOST_CA_PATH)
    return env


def key_of(image_id: str, setup: str, inputs: Mapping[str, str]) -> str:
    """The cache key: the toolchain image, the install command and the files it reads."""
    digest = hashlib.sha256(f"v{KEY_VERSION}\0{image_id}\0{setup}\0".encode())
    for path in sorted(inputs):
        digest.update(f"{path}\0{len(inputs[path])}\0{inputs[path]}\0".encode())
    return digest.hexdigest()


def input_paths(tracked: Iterable[str], setup: str) -> list[str]:
    """The tracked files an install depends on: dependency files anywhere in the tree, and
    any file (or the files under any directory) the setup command names."""
    files = sorted(tracked)
    named = {t.removeprefix("./").rstrip("/") for t in _words(setup)}
    chosen = [
        p
        for p in files
        if any(fnmatchcase(PurePosixPath(p).name, g) for g in DEPENDENCY_FILES)
        or p in named
        or any(p.startswith(f"{n}/") for n in named if n and n != ".")
    ]
    return chosen


def prepare(
    settings: Settings,
    spec: TaskSpec,
    run_id: str,
    read_base: Callable[[str], str | None],
    tracked: Sequence[str],
    base_tree: Callable[[], AbstractContextManager[Path]],
    on_event: Callable[[str], None],
) -> Environment:
    """The environment for this run: none without a setup step; the cached image when its
    key exists; else a build (whose failure is reported in `setup`, with no image)."""
    image = settings.sandbox.image
    if not spec.setup:
        return Environment(image)
    inputs = {p: read_base(p) or "" for p in input_paths(tracked, spec.setup)}
    key = key_of(_image_id(image), spec.setup, inputs)
    tag = f"{ENV_REPOSITORY}:{key[:16]}"
    if image_exists(tag):
        on_event(f"environment: {tag} from the cache")
        return Environment(tag, key, cached=True)
    if spec.setup == settings.detected_setup and not settings.sandbox.network:
        # A guess of codebot's that cannot install anything offline: go on without it.
        return Environment(image, note=f"setup `{spec.setup}` was detected but not run: {OFFLINE}")
    on_event(f"environment: building {tag} (setup: `{spec.setup}`)")
    return _build(settings, spec, run_id, key, tag, base_tree)


def fill(
    sandbox: Sandbox,
    env: Environment,
    tree: Path,
    deleted: Sequence[str] = (),
    *,
    restored: bool = False,
) -> None:
    """A fresh sandbox made ready for checks: what setup left in the workspace (unless it
    is `restored` already), then the files of `tree` over it (and the base files it
    `deleted` removed); then sealed."""
    if env.restores_workspace:
        if not restored:
            restore(sandbox)
        sandbox.sync(tree)
        if deleted:
            sandbox.sync(tree, deleted)
    else:
        sandbox.sync(tree)
    sandbox.seal()


def sandbox_config(settings: Settings, env: Environment) -> SandboxConfig:
    """How a run's (or its verification's) sandbox is made: from the environment's image,
    with no network and no CA bundle, whatever the builder had."""
    return run_sandbox(settings, env.image)


def restore(sandbox: Sandbox, timeout_s: float = 300) -> None:
    """Copy what setup left in the workspace into this (fresh) sandbox's workspace."""
    result = sandbox.run(f"cp -a {ENV_ROOT}/workspace/. .", timeout_s)
    if result.exit_code != 0:
        raise SandboxError(
            f"could not restore the environment's workspace ({result.output.strip()[:200]})",
            "remove the environment image (`docker image rm codebot-env:...`) and run again",
        )


def _build(
    settings: Settings,
    spec: TaskSpec,
    run_id: str,
    key: str,
    tag: str,
    base_tree: Callable[[], AbstractContextManager[Path]],
) -> Environment:
    began = time.monotonic()
    config = replace(settings.sandbox, writable_root=True)
    builder = DockerSandbox.start(config, f"{run_id}-env")
    try:
        builder.make_user_dir(ENV_ROOT)
        with base_tree() as base:
            builder.sync(base)
        setup = run_setup(builder, spec, setup_env(settings))
        if setup is None or not setup.passed:
            return Environment(settings.sandbox.image, key, setup=setup)
        assert spec.setup is not None  # run_setup ran it
        keep = builder.run(f"mkdir -p {ENV_ROOT}/workspace && cp -a . {ENV_ROOT}/workspace/", 300)
        if keep.exit_code != 0:
            raise SandboxError(f"could not keep the setup's workspace: {keep.output[:200]}", "")
        labels = {ENV_LABEL: key, "codebot.env.setup": spec.setup[:200]}
        builder.commit(ENV_REPOSITORY, key[:16], labels)
    finally:
        builder.close()
    pruned = prune(settings.env_keep, keep=tag)
    return Environment(tag, key, setup=setup, built_s=time.monotonic() - began, pruned=pruned)


def prune(limit: int, keep: str) -> tuple[str, ...]:
    """Remove all but the newest `limit` environment images (never `keep`)."""
    found = sorted(images_labelled(ENV_LABEL), key=lambda i: i.created, reverse=True)
    removed = []
    for info in found[limit:]:
        if info.ref != keep:
            try:
                remove_image(info.ref)
            except SandboxError:
                continue  # in use by another run: the next prune will try again
            removed.append(info.ref)
    return tuple(removed)


def _image_id(image: str) -> str:
    return image_id(image) or image


def _words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def unrunnable_lint(lint: str | bool | None, detected: str, sandbox: Sandbox) -> str:
    """Why `lint`, when it is the command detection found (not one a person wrote), cannot
    run in this sandbox: its program is not in the image (say pre-commit, from tox.ini).
    The run then goes on with the default lint instead of stopping as a broken
    environment; "" when it can run, or was written by a person."""
    if not isinstance(lint, str) or lint != detected:
        return ""
    program = program_of(lint)
    if program is None:
        return ""
    if sandbox.run(f"command -v {shlex.quote(program)}", 30).exit_code == 0:
        return ""
    return (
        f"lint `{lint}` was detected, but `{program}` is not in the sandbox image; "
        "the run uses the default lint instead (set `lint:` in .codebot.yml to choose)"
    )
