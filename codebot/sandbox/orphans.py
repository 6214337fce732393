"""Finding sandboxes again by their labels, and removing those no run will close."""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any

import docker.errors

from codebot.owner import owner_gone
from codebot.sandbox.engine import connect, translated

LABEL = "codebot.run"
# Which process made a sandbox: "host/pid/start-time". A sandbox whose maker is gone (killed
# with SIGKILL, or cut off by an engine that died) is removed by the next run on that host.
OWNER_LABEL = "codebot.owner"
REMOVE_WAIT_S = 10.0


def cleanup_orphans(run_id: str | None = None) -> int:
    """Remove codebot containers and volumes (of one run, or all); return how many. The
    volumes include those made for the paths an image declares as VOLUME: all carry the
    run's label."""
    client = connect()
    label = {"label": LABEL if run_id is None else f"{LABEL}={run_id}"}
    removed = 0
    with translated(""):
        try:
            for container in client.api.containers(all=True, filters=label):
                removed += _remove_quietly(_remove_container(client.api), container["Id"])
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
            _remove_quietly(_remove_container(api), container["Id"])
        for volume in api.volumes(filters=run).get("Volumes") or []:
            with contextlib.suppress(docker.errors.APIError):
                _remove_quietly(api.remove_volume, volume["Name"])
    return gone


def remove_patiently(remove: Any, name: str) -> None:
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


def _remove_container(api: Any) -> Any:
    """Container removal that takes any anonymous volume of the container along: unlabelled,
    no sweep could find it later."""
    return functools.partial(api.remove_container, v=True)


def _remove_quietly(remove: Any, name: str) -> int:
    """1 if `name` was removed, 0 if it was gone already (a sweep races other runs' closes)."""
    try:
        remove(name, force=True)
    except docker.errors.NotFound:
        return 0
    return 1
