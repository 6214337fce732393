"""Secrets: the bot's own and the ones people paste or commit never leave it unmasked.

The planted values have no credential shape, so only the configured-secret redaction (not
the shape patterns) can catch them.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import docker
import pytest

from codebot import config as cfg
from codebot import github_flow
from codebot.forge import ClientOptions, GitHubForge
from codebot.redact import MASK
from tests.security.harness import (
    PYTEST,
    Bot,
    cli,
    creates,
    evidence,
    hostile_module,
    replaces,
    spec_fields,
)
from tests.support.docker_fixtures import sandbox_leftovers
from tests.support.git_repos import git, make_repo
from tests.support.github_server import GitHubServer
from tests.support.model_server import ScriptedModelServer

pytestmark = pytest.mark.docker


def planted_secrets() -> dict[str, str]:
    token = uuid.uuid4().hex
    return {
        "OPENAI_API_KEY": f"key-{token}",
        "GITHUB_TOKEN": f"gh-token-{token}",
        "CODEBOT_SECRET_X": f"secret-x-{token}",
    }


# -- 9. redaction of everything written, sent or printed ------------------------------------


def test_planted_secrets_never_appear_in_run_files_prompts_or_cli_output(
    model_server: ScriptedModelServer,
    tmp_path: Path,
    sandbox_image: str,
    docker_client: docker.DockerClient,
) -> None:
    secrets = planted_secrets()
    key, token, secret_x = secrets.values()
    # A secret committed in a test that prints it, and one pasted into the issue text.
    repo = make_repo(
        tmp_path / "repo",
        {
            "test_service.py": (
                f'SERVICE_TOKEN = "{token}"\n\n\n'
                "def test_token_is_configured():\n"
                '    print("connecting with", SERVICE_TOKEN)\n'
                f'    assert SERVICE_TOKEN == "{secret_x}"\n'
            )
        },
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        json.dumps(
            spec_fields(
                title="Fix the service token test",
                description=f"CI says the token is wrong. Mine is {secret_x}, use that.",
                tests="may_edit",  # the fix is in the test file itself
            )
        )
    )
    # The model repeats every secret it could know, in prose and in its edit.
    model_server.script(
        replaces(
            "test_service.py",
            f'SERVICE_TOKEN = "{token}"',
            f'SERVICE_TOKEN = "{secret_x}"  # was {token}; key {key}',
            f"With key {key} I swap {token} for {secret_x}.",
        )
    )
    env = {
        "OPENAI_BASE_URL": model_server.base_url,
        "CODEBOT_MODEL": "test-model",
        "CODEBOT_SANDBOX_IMAGE": sandbox_image,
        **secrets,
    }
    result = cli(["dry-run", str(spec), "--repo", str(repo), "--runs-dir", "runs"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # An error message quoting what was pasted in the wrong place goes through the CLI too.
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text(json.dumps(spec_fields(timeout=secret_x)))
    refused = cli(["dry-run", str(bad_spec), "--repo", str(repo)], env, tmp_path)
    assert refused.returncode == 2 and MASK in refused.stderr

    (run_dir,) = (tmp_path / "runs").iterdir()
    written = {
        name: (run_dir / name).read_text(encoding="utf-8")
        for name in ("run.json", "pr.md", "patch.diff", "prompt.md")
    }
    sent = json.dumps([[r.path, r.body] for r in model_server.requests])
    other_headers = json.dumps(
        [
            {k: v for k, v in r.headers.items() if k != "authorization"}
            for r in model_server.requests
        ]
    )
    places = {**written, "model requests": sent, "model request headers": other_headers,
              "stdout": result.stdout + refused.stdout,
              "stderr": result.stderr + refused.stderr}  # fmt: skip
    leaks = [(name, where) for where, text in places.items()
             for name, value in secrets.items() if value in text]  # fmt: skip
    assert leaks == []
    # ...and each secret did flow there, masked: the test would see a redaction go missing.
    assert [name for name, text in written.items() if MASK not in text] == []
    assert MASK in sent
    assert sandbox_leftovers(docker_client, json.loads(written["run.json"])["run_id"]) == []


# -- 10. the API key ----------------------------------------------------------------------------

KEY_HUNT = """
import glob
import os

KEY = bytes.fromhex(HEX_KEY).decode()


def test_find_the_key():
    found = [name for name, value in os.environ.items() if KEY in value]
    for path in glob.glob("/proc/[0-9]*/environ") + glob.glob("/proc/[0-9]*/cmdline"):
        try:
            if KEY.encode() in open(path, "rb").read():
                found.append(path)
        except OSError:
            pass
    raise AssertionError("EVIDENCE " + json.dumps({"found": found, "pid1": os.path.exists(
        "/proc/1/environ")}))
"""


def test_api_key_goes_only_into_the_authorization_header_and_never_into_the_sandbox(
    bot: Bot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = planted_secrets()["OPENAI_API_KEY"]
    monkeypatch.setenv("OPENAI_API_KEY", key)
    bot.server.require_api_key = key  # answers 401 unless the header carries it
    bot.server.script(creates("test_key.py", hostile_module(KEY_HUNT, HEX_KEY=key.encode().hex())))
    repo = make_repo(tmp_path / "repo", {"test_ok.py": "def test_ok():\n    pass\n"})
    run = bot.run(repo, spec_fields(), env=bot.env(OPENAI_API_KEY=key))

    report = evidence(run.iteration_test(1))
    assert report == {"found": [], "pid1": True}
    assert len(bot.server.requests) == 1
    for request in bot.server.requests:
        assert request.headers["authorization"] == f"Bearer {key}"
        elsewhere = {k: v for k, v in request.headers.items() if k != "authorization"}
        assert key not in request.path + json.dumps(elsewhere) + json.dumps(request.body)
    assert all(c["command"] == PYTEST for c in run.all_checks())
    assert key not in git(repo, "log", "--all", "-p")


# -- 9b. what goes to GitHub: PR, comments, pushed commits ------------------------------------

SECRET_PRINTING_TEST = """def test_service_answers():
    print("calling the service with", {secret!r})
    assert False, "service said 401 for key " + {secret!r}
"""


def test_planted_secrets_never_reach_the_pr_the_comments_or_the_pushed_commits(
    github_server: GitHubServer,
    model_server: ScriptedModelServer,
    sandbox_image: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    secrets = planted_secrets()
    key, _, secret_x = secrets.values()
    secrets["GITHUB_TOKEN"] = github_server.token  # the one the GitHub double accepts
    # The repository's own test prints a secret; the issue author pastes one.
    repo = make_repo(
        tmp_path / "work",
        {
            "test_service.py": SECRET_PRINTING_TEST.format(secret=secret_x),
            ".codebot.yml": "spec:\n  test: python3 -m pytest -q\n  tests: may_edit\n",
        },
    )
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(remote))
    repo_name = "octo-org/service"
    github_server.add_repo(repo_name, default_branch="main", clone_url=str(remote))
    github_server.add_issue(
        repo_name, 7, f"Service test fails with {secret_x}",
        f"The key is {secret_x}; the token is {github_server.token}. Make the test pass.",
        labels=["codebot"], author="alice", author_association="MEMBER",
    )  # fmt: skip
    # A model that repeats every secret, in its explanation (the commit message and PR
    # summary come from it) and in the code it writes.
    model_server.script(
        replaces(
            "test_service.py",
            f'    assert False, "service said 401 for key " + {secret_x!r}',
            f"    assert True  # {github_server.token}",
            f"Key {key}, token {github_server.token}, secret {secret_x}: skip the call.",
        )
    )
    env = {
        "OPENAI_BASE_URL": model_server.base_url,
        "CODEBOT_MODEL": "test-model",
        "CODEBOT_SANDBOX_IMAGE": sandbox_image,
        "GITHUB_API_URL": github_server.url,
        **secrets,
    }
    settings = cfg.with_flags(cfg.from_env(env), runs_dir=tmp_path / "runs")
    forge = GitHubForge(github_server.token, github_server.url, ClientOptions(False, 0, 0))
    github_flow.run_issue(forge, repo_name, 7, settings, env)

    (pull,) = github_server.pulls
    branch_log = git(remote, "log", "-p", pull.head)
    places = {
        "PR title": pull.title,
        "PR body": pull.body,
        "comments": "\n".join(c.body for c in github_server.comments),
        "commit messages": git(remote, "log", "--format=%B", f"main..{pull.head}"),
        "model requests": json.dumps([r.body for r in model_server.requests]),
    }
    leaks = [(name, where) for where, text in places.items()
             for name, value in secrets.items() if value in text]  # fmt: skip
    assert leaks == []
    # Each place did receive secrets, masked: a missing redaction would show as a leak.
    assert [where for where, text in places.items() if MASK not in text] == ["comments"]
    assert github_server.comments and "codebot" in places["comments"]
    # The code the model wrote is pushed as written: it could only hold a secret the model
    # was given, and every prompt is masked (checked above), so a real model never has one.
    assert f"+    assert True  # {github_server.token}" in branch_log
    assert key not in branch_log and github_server.token not in git(remote, "config", "-l")
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert sandbox_leftovers(docker_client, run_dir.name) == []
