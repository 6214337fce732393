"""Cached dependency environments, against the real engine: the setup step runs once, later
runs start from its image with no install and no network, and a change to what the install
reads makes a new one. Driven through `codebot setup --check` (no model) and whole runs."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from codebot import config as cfg
from codebot.environment import ENV_LABEL
from codebot.setup_check import check_environment
from tests.support.git_repos import git, make_repo

pytestmark = pytest.mark.docker

HELPER = {
    "vendor/helper/pyproject.toml": (
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "helper"\nversion = "1.0"\n'
    ),
    "vendor/helper/helper/__init__.py": "ANSWER = 42\n",
    "test_helper.py": "import helper\n\n\ndef test_answer():\n    assert helper.ANSWER == 42\n",
}
INSTALL = "python3 -m pip install -q --no-build-isolation --no-deps --no-index ./vendor/helper"


@pytest.fixture
def settings(sandbox_image: str, tmp_path: Path) -> cfg.Settings:
    return replace(cfg.from_env({"CODEBOT_SANDBOX_IMAGE": sandbox_image}), runs_dir=tmp_path)


@pytest.fixture
def env_images(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """The environment images a test makes, removed afterwards (the key of each is unique
    to the test through a marker in its setup command)."""
    made: list[str] = []
    yield made
    for ref in made:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(ref, force=True)


def repo_with_setup(tmp_path: Path, setup: str, extra: dict[str, str] | None = None) -> Path:
    files = {**HELPER, ".codebot.yml": f"spec:\n  setup: {setup!r}\n  test: python3 -m pytest -q\n"}
    return make_repo(tmp_path / "repo", {**files, **(extra or {})})


def marked(command: str) -> str:
    return f"{command} # {uuid.uuid4().hex}"  # an environment of this test's own


def test_the_setup_step_runs_once_and_the_next_run_starts_from_its_image(
    settings: cfg.Settings,
    tmp_path: Path,
    env_images: list[str],
    docker_client,
    no_leftover_containers,
):
    repo = repo_with_setup(tmp_path, marked(INSTALL))
    events: list[str] = []

    first = check_environment(repo, settings, run_checks=True, on_event=events.append)
    env_images.append(first.environment.image)
    second = check_environment(repo, settings, run_checks=True, on_event=events.append)

    assert first.works and not first.environment.cached and first.environment.setup is not None
    assert second.works and second.environment.cached and second.environment.setup is None
    assert second.environment.image == first.environment.image
    assert [(c.name, c.passed) for c in second.checks] == [("test", True)]
    labelled = docker_client.images.list(filters={"label": f"{ENV_LABEL}={first.environment.key}"})
    assert len(labelled) == 1  # built once
    assert sum("building" in e for e in events) == 1 and any("from the cache" in e for e in events)


def test_a_change_to_a_file_the_install_reads_makes_a_new_environment(
    settings: cfg.Settings, tmp_path: Path, env_images: list[str]
):
    repo = repo_with_setup(tmp_path, marked(INSTALL))
    first = check_environment(repo, settings, run_checks=False, on_event=lambda _: None)
    env_images.append(first.environment.image)
    (repo / "vendor/helper/helper/__init__.py").write_text("ANSWER = 43\n")
    git(repo, "commit", "-qam", "helper 1.1")

    second = check_environment(repo, settings, run_checks=False, on_event=lambda _: None)
    env_images.append(second.environment.image)

    assert not second.environment.cached and second.environment.key != first.environment.key


def test_a_failing_install_stops_with_its_cause_and_leaves_no_image(
    settings: cfg.Settings, tmp_path: Path, docker_client, no_leftover_containers
):
    repo = repo_with_setup(tmp_path, marked("echo no such package >&2; exit 3"))

    report = check_environment(repo, settings, run_checks=True, on_event=lambda _: None)

    assert not report.works and report.environment.setup is not None
    assert report.environment.setup.reason == "exit code 3"
    assert not docker_client.images.list(filters={"label": f"{ENV_LABEL}={report.environment.key}"})


def test_an_install_that_needs_the_network_says_how_to_allow_it(
    settings: cfg.Settings, tmp_path: Path
):
    setup = marked("python3 -m pip install --index-url https://pypi.org/simple six")
    repo = repo_with_setup(tmp_path, setup)

    report = check_environment(repo, settings, run_checks=False, on_event=lambda _: None)

    assert report.environment.setup is not None and not report.environment.setup.passed
    assert "CODEBOT_SANDBOX_NETWORK=1" in report.environment.setup.reason


def test_a_package_from_the_registry_is_installed_once_then_used_offline(
    settings: cfg.Settings, tmp_path: Path, env_images: list[str]
):
    """A real install from PyPI over the bridge (with the host's CA bundle, as behind a
    TLS-intercepting proxy), then a run with no network that starts from the cache."""
    files = {
        "requirements.txt": f"six==1.16.0\n# {uuid.uuid4().hex}\n",  # this test's own key
        "test_six.py": "import six\n\n\ndef test_six():\n    assert six.PY3\n",
        ".codebot.yml": "spec:\n  test: python3 -m pytest -q\n",
    }
    repo = make_repo(tmp_path / "repo", files)
    online = replace(
        settings,
        sandbox=replace(
            settings.sandbox, network=True, ca_bundle="/etc/ssl/certs/ca-certificates.crt"
        ),
    )

    built = check_environment(repo, online, run_checks=True, on_event=lambda _: None)
    env_images.append(built.environment.image)
    offline = check_environment(repo, settings, run_checks=True, on_event=lambda _: None)

    assert built.works and built.environment.setup is not None, built.checks
    assert built.environment.setup.command == "python3 -m pip install -r requirements.txt"
    assert offline.works and offline.environment.cached, offline.checks


def test_a_declared_dependency_missing_offline_is_named_with_its_fix(
    settings: cfg.Settings, tmp_path: Path
):
    files = {
        "requirements.txt": f"pkg-{uuid.uuid4().hex[:8]}\nsix\n",
        "test_six.py": "import six\n\n\ndef test_six():\n    assert six.PY3\n",
    }
    repo = make_repo(tmp_path / "repo", files)

    report = check_environment(repo, settings, run_checks=True, on_event=lambda _: None)

    assert not report.works and report.problem is not None
    assert report.problem.startswith("tests cannot import `six`")
