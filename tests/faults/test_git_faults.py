"""Faults of git, seen from a whole run: the branch moving under the bot, a branch of the same
name already there, and a remote that cannot be reached.

Real PyGithub against the local GitHub double, a real bare repository as the remote (moved
about, raced and made unreachable by the test with the git CLI), the real Docker sandbox and
the scripted model server. Each fault ends in a one-line cause and fix, no pull request, no
sandbox left, and neither the remote nor the user's repository holding anything half-done.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest

from codebot import config as cfg
from codebot import github_flow
from codebot.errors import WorkspaceError
from codebot.forge import ClientOptions, GitHubForge
from tests.faults.conftest import codebot_branches, write_spec
from tests.support.docker_fixtures import remove_leftovers, sandbox_leftovers
from tests.support.git_repos import git, snapshot
from tests.support.github_server import GitHubServer
from tests.support.model_server import ScriptedModelServer, Turn
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT, cli_env, codebot

pytestmark = pytest.mark.docker

REPO = "octo-org/hello-app"
BRANCH = "codebot/issue-42-support-minutes-in-parse-duration"
ISSUE_BODY = 'parse_duration("1h30m") raises KeyError.\n\n- [ ] minutes are supported\n'
# Long enough for the test to act between the model being asked and the bot's push.
THINKING_S = 1.0


@pytest.fixture
def hub(github_server: GitHubServer, remote: Path) -> GitHubServer:
    github_server.add_repo(REPO, default_branch="main", clone_url=str(remote))
    github_server.add_issue(
        REPO, 42, "Support minutes in parse_duration", ISSUE_BODY, labels=["codebot"]
    )
    return github_server


@pytest.fixture
def env(hub: GitHubServer, model_server: ScriptedModelServer, sandbox_image: str) -> dict[str, str]:
    return {
        **cli_env(model_server, CODEBOT_SANDBOX_IMAGE=sandbox_image, CODEBOT_MAX_ITERATIONS="1"),
        "GITHUB_TOKEN": hub.token,
        "GITHUB_API_URL": hub.url,
    }


@pytest.fixture
def forge(hub: GitHubServer) -> GitHubForge:
    return GitHubForge(hub.token, hub.url, ClientOptions(False, 0, 0))


def settings(env: dict[str, str], tmp_path: Path) -> cfg.Settings:
    return cfg.with_flags(cfg.from_env(env), runs_dir=tmp_path / "runs")


def heads(remote: Path) -> list[str]:
    return git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


def push_as_a_person(remote: Path, branch: str, workdir: Path) -> str:
    """Someone else's commit on `branch` (from main), pushed the ordinary way; its sha."""
    git(workdir.parent, "clone", "-q", str(remote), str(workdir))
    git(workdir, "checkout", "-q", "-b", branch, "origin/main")
    with (workdir / "README.md").open("a") as readme:
        readme.write("\nNotes from a person working on this too.\n")
    git(workdir, "commit", "-qam", "A person's commit")
    git(workdir, "push", "-q", "origin", branch)
    return git(workdir, "rev-parse", "HEAD")


def once_the_model_is_asked(server: ScriptedModelServer, act: Callable[[], Any]) -> Any:
    """Wait (in a helper thread) for the run's first model request, then `act`."""
    deadline = time.monotonic() + 60
    while not server.requests:
        if time.monotonic() > deadline:
            pytest.fail("the run never reached the model", pytrace=False)
        time.sleep(0.02)
    return act()


def issue_comments(hub: GitHubServer) -> list[str]:
    return [c.body for c in hub.comments if c.issue_number == 42]


def assert_no_sandbox_left(client: docker.DockerClient, runs: Path) -> None:
    """Every run under `runs` (found by its own id) left neither container nor volume."""
    ids = [json.loads(p.read_text())["run_id"] for p in runs.glob("*/run.json")]
    assert ids, f"no run record under {runs}"
    left = [name for run_id in ids for name in sandbox_leftovers(client, run_id)]
    for run_id in ids:
        remove_leftovers(client, run_id)  # so one leak does not spill into other tests
    assert not left


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("codebot: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


# --- the branch moves under the bot ---------------------------------------------------------


def race_the_bots_push(
    forge: GitHubForge, env: dict[str, str], server: ScriptedModelServer, remote: Path, tmp: Path
) -> tuple[WorkspaceError, str]:
    """An issue run during which a person pushes a commit onto the bot's branch (while the
    model thinks); the error the run ended in, and the person's commit."""
    server.script(Turn.reply(MINUTES_DIFF, delay_s=THINKING_S))

    def someone_pushes() -> str:
        return push_as_a_person(remote, BRANCH, tmp / "someone")

    with ThreadPoolExecutor(1) as pool:
        pushed = pool.submit(once_the_model_is_asked, server, someone_pushes)
        with pytest.raises(WorkspaceError) as raised:
            github_flow.run_issue(forge, REPO, 42, settings(env, tmp), env)
        return raised.value, pushed.result()


def test_a_branch_that_moved_during_the_run_keeps_the_other_commit_and_gets_no_pr(
    hub: GitHubServer,
    forge: GitHubForge,
    env: dict[str, str],
    model_server: ScriptedModelServer,
    remote: Path,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    error, theirs = race_the_bots_push(forge, env, model_server, remote, tmp_path)

    assert git(remote, "rev-parse", BRANCH) == theirs  # no force push, nothing on top
    assert heads(remote) == [BRANCH, "main"]
    assert not hub.pulls
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    record = json.loads(run_json.read_text())
    assert record["head_commit"]  # there was a commit to publish; it was not
    assert record["published"] == f"not published: {error.one_line()}"
    assert "\n" not in error.one_line() and error.fix
    assert issue_comments(hub)[-1] == f"⚠️ codebot stopped: {error.one_line()}"
    assert [i.labels for i in hub.issues] == [["codebot"]]  # the run's lock is released
    assert_no_sandbox_left(docker_client, tmp_path / "runs")


def test_a_branch_that_moved_during_the_run_is_named_as_the_cause(
    hub: GitHubServer,
    forge: GitHubForge,
    env: dict[str, str],
    model_server: ScriptedModelServer,
    remote: Path,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    error, _ = race_the_bots_push(forge, env, model_server, remote, tmp_path)
    assert_no_sandbox_left(docker_client, tmp_path / "runs")

    assert (error.cause, error.fix) == (
        f"the branch {BRANCH} moved on the remote while codebot worked "
        "(another run or a person pushed); nothing was pushed",
        "run again to continue from the new tip",
    )


# --- a branch of the same name is already there ---------------------------------------------


def test_an_issue_branch_a_person_started_is_continued_on_top_and_never_replaced(
    hub: GitHubServer,
    forge: GitHubForge,
    env: dict[str, str],
    model_server: ScriptedModelServer,
    remote: Path,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    """github_flow reuses the issue's existing `codebot/issue-42-*` branch whoever made it
    (titles change, so any slug counts) and adds its commit on top, without force."""
    theirs = push_as_a_person(remote, "codebot/issue-42-wip", tmp_path / "person")
    model_server.script(MINUTES_DIFF)

    out = github_flow.run_issue(forge, REPO, 42, settings(env, tmp_path), env)

    assert out.stop_reason == "max_iterations"
    assert heads(remote) == ["codebot/issue-42-wip", "main"]  # no second branch
    assert git(remote, "rev-parse", "codebot/issue-42-wip^") == theirs
    assert git(remote, "log", "-1", "--format=%an", "codebot/issue-42-wip") == "codebot"
    (pull,) = hub.pulls
    assert (pull.head, pull.base) == ("codebot/issue-42-wip", "main")
    assert issue_comments(hub)[0].endswith("in branch `codebot/issue-42-wip`.")
    assert_no_sandbox_left(docker_client, tmp_path / "runs")


def test_dry_run_leaves_a_persons_branch_of_the_same_name_alone_and_takes_a_suffix(
    model_server: ScriptedModelServer,
    example_repo: Path,
    sandbox_image: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    git(example_repo, "checkout", "-q", "-b", "codebot/parse-duration-minutes")
    (example_repo / "NOTES.md").write_text("A person's own work on this task.\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "A person's commit")
    git(example_repo, "checkout", "-q", "main")
    theirs = git(example_repo, "rev-parse", "codebot/parse-duration-minutes")
    before = snapshot(example_repo)
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)

    result = codebot(
        ["dry-run", str(write_spec(tmp_path)), "--repo", str(example_repo), "--runs-dir", "runs"],
        cli_env(model_server, CODEBOT_SANDBOX_IMAGE=sandbox_image),
        tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"branch:     codebot/parse-duration-minutes-2 (in {example_repo})" in result.stdout
    assert codebot_branches(example_repo).split() == [
        "codebot/parse-duration-minutes",
        "codebot/parse-duration-minutes-2",
    ]
    assert git(example_repo, "rev-parse", "codebot/parse-duration-minutes") == theirs
    assert git(example_repo, "rev-parse", "codebot/parse-duration-minutes-2^") == before["head"]
    assert snapshot(example_repo) == before
    assert_no_sandbox_left(docker_client, tmp_path / "runs")


# --- the remote cannot be reached ---------------------------------------------------------


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port held by a socket that never listens: connections are refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def github_cli_env(env: dict[str, str], tmp: Path) -> dict[str, str]:
    """The CLI's environment, with temp dirs (where clones go) inside the test's own."""
    (tmp / "tmp").mkdir()
    return {**env, "TMPDIR": str(tmp / "tmp")}


def test_remote_unreachable_at_clone_time_exits_5_with_cause_and_fix(
    hub: GitHubServer,
    env: dict[str, str],
    model_server: ScriptedModelServer,
    dead_port: int,
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{dead_port}/{REPO}.git"
    hub.repos[REPO].clone_url = url
    spec = write_spec(tmp_path, repo=REPO)

    result = codebot(["run", str(spec), "--runs-dir", "runs"],
                     github_cli_env(env, tmp_path), tmp_path)  # fmt: skip

    assert result.returncode == 5, result.stdout + result.stderr
    line = one_line_error(result.stderr)
    assert line.startswith(f"codebot: error: cannot clone {url}: ")
    assert f"Failed to connect to 127.0.0.1 port {dead_port}" in line
    assert line.endswith(" — check the repository URL, the network and the token's access")
    assert "Traceback" not in result.stderr and hub.token not in result.stdout + result.stderr
    assert "sandbox:" not in result.stderr and not (tmp_path / "runs").exists()
    assert not list((tmp_path / "tmp").iterdir())  # the half-made clone is gone
    assert not hub.pulls and not hub.writes()


def test_issue_on_a_remote_that_does_not_exist_exits_5_before_touching_the_issue(
    hub: GitHubServer,
    env: dict[str, str],
    model_server: ScriptedModelServer,
    tmp_path: Path,
) -> None:
    gone = tmp_path / "no-such-remote.git"
    hub.repos[REPO].clone_url = str(gone)

    result = codebot(["issue", f"{REPO}#42", "--runs-dir", "runs"],
                     github_cli_env(env, tmp_path), tmp_path)  # fmt: skip

    assert result.returncode == 5, result.stdout + result.stderr
    line = one_line_error(result.stderr)
    assert line.startswith(f"codebot: error: cannot list branches of {gone}: ")
    assert "does not appear to be a git repository" in line
    assert line.endswith(" — check the repository URL, the network and the token's access")
    assert "sandbox:" not in result.stderr and not (tmp_path / "runs").exists()
    assert not list((tmp_path / "tmp").iterdir())
    assert not hub.pulls and not hub.writes()  # no comment, no lock label


def move_the_remote_away_during_the_run(
    forge: GitHubForge, env: dict[str, str], server: ScriptedModelServer, remote: Path, tmp: Path
) -> tuple[WorkspaceError, Path]:
    """An issue run whose remote is moved away after the clone (while the model thinks);
    the error it ended in, and where the remote went."""
    server.script(Turn.reply(MINUTES_DIFF, delay_s=THINKING_S))
    moved = tmp / "moved.git"
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(once_the_model_is_asked, server, lambda: remote.rename(moved))
        with pytest.raises(WorkspaceError) as raised:
            github_flow.run_issue(forge, REPO, 42, settings(env, tmp), env)
        done.result()
    return raised.value, moved


def test_remote_gone_at_push_time_stops_with_one_line_and_pushes_nothing(
    hub: GitHubServer,
    forge: GitHubForge,
    env: dict[str, str],
    model_server: ScriptedModelServer,
    remote: Path,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    error, moved = move_the_remote_away_during_the_run(forge, env, model_server, remote, tmp_path)

    assert error.cause.startswith(f"cannot push {BRANCH} to {remote}: ")
    assert "does not appear to be a git repository" in error.cause
    assert "\n" not in error.one_line() and error.fix
    assert heads(moved) == ["main"]  # nothing half-pushed
    assert not hub.pulls
    assert issue_comments(hub)[-1] == f"⚠️ codebot stopped: {error.one_line()}"
    assert [i.labels for i in hub.issues] == [["codebot"]]
    assert_no_sandbox_left(docker_client, tmp_path / "runs")


def test_remote_gone_at_push_time_gets_a_fix_about_the_remote_not_the_token(
    hub: GitHubServer,
    forge: GitHubForge,
    env: dict[str, str],
    model_server: ScriptedModelServer,
    remote: Path,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    error, _ = move_the_remote_away_during_the_run(forge, env, model_server, remote, tmp_path)
    assert_no_sandbox_left(docker_client, tmp_path / "runs")

    assert "URL" in error.fix and "network" in error.fix  # as for a clone that cannot reach it
