"""The fault suite's one fixture: a whole `codebot dry-run`, in-process, against real components.

Every fault test ends the same way: with a recorded stop reason, nothing left in Docker, and
the user's repository as it was. `Run.assert_nothing_lost` checks exactly that.

Leftovers are looked up by the run's own id (from run.json), not by "any codebot container":
other runs may share the engine, and a test must neither blame nor touch their resources.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from codebot import config as cfg
from codebot.local import RunOutcome, RunRequest, execute
from tests.support.docker_fixtures import remove_leftovers, sandbox_leftovers
from tests.support.git_repos import git, snapshot
from tests.support.model_server import ScriptedModelServer

EXAMPLE_SPEC = Path(__file__).resolve().parents[2] / "specs" / "examples" / "parse-duration.yaml"
API_KEY = "sk-faults-0123456789"
# Ends which produce nothing to review: they must leave no branch behind.
ERROR_STOPS = ("model_error", "sandbox_error", "interrupted")


def write_spec(directory: Path, **fields: Any) -> Path:
    """The bundled example's spec with `fields` changed, as a file in `directory`."""
    data = yaml.safe_load(EXAMPLE_SPEC.read_text())
    data.update(fields)
    path = directory / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def codebot_branches(repo: Path) -> str:
    return git(repo, "branch", "--list", "codebot/*")


def run_env(server: ScriptedModelServer, image: str, **extra: str) -> dict[str, str]:
    """The environment a run reads its settings from: fast retries, no secrets of the host."""
    return {
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": API_KEY,
        "CODEBOT_MODEL": "test-model",
        "CODEBOT_MODEL_RETRIES": "1",
        "CODEBOT_MODEL_TIMEOUT": "30",
        "CODEBOT_SANDBOX_IMAGE": image,
        **extra,
    }


@dataclass(frozen=True)
class Run:
    outcome: RunOutcome
    repo: Path
    before: dict[str, str]
    events: list[str]

    @property
    def record(self) -> dict[str, Any]:
        """run.json as written: what the user and the PR body get to see."""
        data: dict[str, Any] = json.loads(self.outcome.files.run_json.read_text())
        return data

    def assert_nothing_lost(self, client: docker.DockerClient, stop_reason: str) -> dict[str, Any]:
        """The run stopped for `stop_reason` with a one-line detail, the sandbox is gone, the
        user's repository is untouched, and an error or interrupt left no branch."""
        record = self.record
        assert (record["stop_reason"], self.outcome.record.stop_reason) == (stop_reason,) * 2
        detail = record["stop_detail"]
        assert detail and "\n" not in detail and "Traceback" not in detail, detail
        assert API_KEY not in json.dumps(record)
        left = sandbox_leftovers(client, record["run_id"])
        remove_leftovers(client, record["run_id"])  # so one leak does not spill into others
        assert not left
        assert snapshot(self.repo) == self.before
        if stop_reason in ERROR_STOPS:
            assert self.outcome.branch is None and record["head_commit"] is None
            assert not codebot_branches(self.repo)
        return record


DryRun = Callable[..., Run]


@pytest.fixture
def dry_run(
    model_server: ScriptedModelServer,
    sandbox_image: str,
    example_repo: Path,
    tmp_path: Path,
) -> Iterator[DryRun]:
    """`dry_run(spec=None, repo=None, **env)` runs the whole pipeline once and returns a `Run`;
    `env` adds to or overrides `run_env` (e.g. CODEBOT_MODEL_RETRIES="2")."""

    def run(spec: Path | None = None, repo: Path | None = None, **env: str) -> Run:
        repo = repo or example_repo
        environ = run_env(model_server, sandbox_image, **env)
        settings = cfg.with_flags(cfg.from_env(environ), runs_dir=tmp_path / "runs")
        request = RunRequest(spec or write_spec(tmp_path), repo, settings)
        before, events = snapshot(repo), list[str]()
        outcome = execute(request, env=environ, on_event=events.append)
        return Run(outcome, repo, before, events)

    yield run
