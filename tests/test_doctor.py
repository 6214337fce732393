"""`codebot doctor` against real broken things: an engine socket with nothing behind it, a
missing image, an endpoint that refuses the key or the model, a repository another user
owns, GitHub tokens; each failure on one line with its fix, and a non-zero exit."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess

import pytest

from codebot import doctor
from codebot.doctor import Engine, Finding, GitHub
from tests.support.git_repos import git
from tests.support.model_server import Turn
from tests.test_end_to_end import cli_env, codebot


def lines_of(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """`check -> "STATUS detail"` from doctor's output."""
    found = {}
    for line in result.stdout.splitlines():
        status, check, detail = line.split(maxsplit=2)
        found[check] = f"{status} {detail}"
    return found


def no_model_env(**extra: str) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), **extra}
    if "DOCKER_HOST" in os.environ and "DOCKER_HOST" not in extra:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    return env


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the block ends


def test_a_dead_engine_socket_fails_with_the_fix_and_skips_what_needs_it(
    example_repo, tmp_path
) -> None:
    env = no_model_env(DOCKER_HOST=f"unix://{tmp_path}/nothing-listens.sock")
    result = codebot(["doctor", "--repo", str(example_repo)], env, tmp_path)
    assert result.returncode == 1
    found = lines_of(result)
    assert found["docker"].startswith("FAIL cannot reach the Docker engine")
    assert "setup-host.sh" in found["docker"] and "DOCKER_HOST" in found["docker"]
    assert found["images"] == "skip not checked: the Docker engine is not reachable"
    assert found["repo"].startswith("ok ")  # one broken part hides no other


@pytest.mark.docker
def test_a_missing_sandbox_image_fails_with_how_to_build_it(
    example_repo, tmp_path, sandbox_image
) -> None:
    env = no_model_env(CODEBOT_SANDBOX_IMAGE="nope:1")
    found = lines_of(codebot(["doctor", "--repo", str(example_repo)], env, tmp_path))
    assert found["docker"].startswith("ok Docker engine ")
    assert found["images"] == (
        "FAIL sandbox image nope:1 is missing — build it offline with `bash sandbox/setup-host.sh`"
    )
    assert re.search(r"ok \d+ cached environment image\(s\) \(codebot-env\), ", found["cache"])


def test_no_endpoint_as_json_exits_non_zero_and_names_the_variable(example_repo, tmp_path) -> None:
    result = codebot(["doctor", "--json", "--repo", str(example_repo)], no_model_env(), tmp_path)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["endpoint"]["status"] == "fail"
    assert checks["endpoint"]["detail"] == "no LLM endpoint configured"
    assert "set OPENAI_BASE_URL" in checks["endpoint"]["fix"]
    assert checks["request"]["status"] == "skip"


@pytest.mark.docker
def test_a_healthy_setup_passes_and_shows_what_the_small_request_cost(
    model_server, example_repo, tmp_path, sandbox_image
) -> None:
    model_server.script("OK")
    result = codebot(["doctor", "--repo", str(example_repo)], cli_env(model_server), tmp_path)
    assert result.returncode == 0, result.stdout
    found = lines_of(result)
    assert found["endpoint"] == f"ok {model_server.base_url} answers"
    assert found["model"] == "ok test-model is listed"
    assert re.fullmatch(
        r"ok the key is accepted: a \d+-token request cost \$0\.\d{6}", found["request"]
    )
    assert found["repo"] == f"ok {example_repo}: 3 committed file(s)"
    assert found["github"].startswith("skip GITHUB_TOKEN is not set")
    sent = model_server.requests[-1].body
    assert sent["max_tokens"] == 16 and sent["messages"][0]["content"].startswith("Reply with")


@pytest.mark.docker
def test_a_model_with_no_price_says_cost_unknown(model_server, example_repo, tmp_path) -> None:
    model_server.script("OK")
    env = cli_env(model_server)
    del env["CODEBOT_PRICE_INPUT"], env["CODEBOT_PRICE_OUTPUT"]
    found = lines_of(codebot(["doctor", "--repo", str(example_repo)], env, tmp_path))
    assert "cost unknown (no price for test-model: set CODEBOT_PRICE_INPUT" in found["request"]


def test_an_endpoint_that_refuses_the_key_fails_without_printing_it(
    model_server, example_repo, tmp_path
) -> None:
    model_server.require_api_key = "the-right-key-123"
    env = cli_env(model_server, OPENAI_API_KEY="wrong-key-456789")
    result = codebot(["doctor", "--repo", str(example_repo)], env, tmp_path)
    assert result.returncode == 1
    found = lines_of(result)
    assert (
        found["endpoint"] == "FAIL the endpoint rejected the API key (401) — check OPENAI_API_KEY"
    )
    assert found["request"] == "skip not tried: the endpoint failed above"
    assert "wrong-key-456789" not in result.stdout + result.stderr
    assert [r.path for r in model_server.requests] == ["/v1/models"]  # nothing was spent


def test_a_wrong_model_name_fails_and_lists_what_the_endpoint_has(
    model_server, example_repo, tmp_path
) -> None:
    model_server.script(
        Turn.error(404, "The model `gpt-nope` does not exist", code="model_not_found")
    )
    env = cli_env(model_server, CODEBOT_MODEL="gpt-nope")
    result = codebot(["doctor", "--repo", str(example_repo)], env, tmp_path)
    assert result.returncode == 1
    found = lines_of(result)
    assert found["model"].startswith("warn gpt-nope is not listed (the endpoint lists: test-model)")
    assert found["request"] == (
        f"FAIL model 'gpt-nope' not found at {model_server.base_url} — "
        "check CODEBOT_MODEL / --model"
    )


def test_a_repository_owned_by_another_user_says_how_to_trust_it(example_repo, tmp_path) -> None:
    home = tmp_path / "home"  # no global git config: no safe.directory entry in it
    home.mkdir()
    shutil.chown(example_repo, 65534, 65534)
    for path in example_repo.rglob("*"):
        os.chown(path, 65534, 65534, follow_symlinks=False)
    result = codebot(
        ["doctor", "--repo", str(example_repo)], no_model_env(HOME=str(home)), tmp_path
    )
    assert result.returncode == 1
    assert lines_of(result)["repo"] == (
        f'FAIL git refuses to read {example_repo}: it is owned by another user ("dubious '
        f'ownership") — if you trust it, run `git config --global --add safe.directory '
        f"{example_repo}`"
    )


def test_outside_a_repository_the_repo_check_is_skipped(tmp_path) -> None:
    found = lines_of(codebot(["doctor"], no_model_env(), tmp_path))
    assert found["repo"] == "skip not in a git repository (pass --repo PATH)"


def with_github_remote(repo, server) -> None:
    git(repo, "remote", "add", "origin", f"{server.base}/octo/app.git")


def test_a_github_token_is_checked_against_the_repository(
    github_server, example_repo, tmp_path
) -> None:
    github_server.add_repo("octo/app")
    with_github_remote(example_repo, github_server)
    env = no_model_env(GITHUB_TOKEN=github_server.token, GITHUB_API_URL=github_server.url)
    found = lines_of(codebot(["doctor", "--repo", str(example_repo)], env, tmp_path))
    assert found["github"] == (
        "ok token of codebot-bot reaches octo/app; scopes not listed (a fine-grained or app "
        "token: it needs contents, pull requests and issues: write)"
    )
    assert [r.path for r in github_server.requests] == ["/user", "/repos/octo/app"]


def test_a_refused_github_token_fails(github_server, example_repo, tmp_path) -> None:
    with_github_remote(example_repo, github_server)
    env = no_model_env(GITHUB_TOKEN="ghs_wrong", GITHUB_API_URL=github_server.url)
    result = codebot(["doctor", "--repo", str(example_repo)], env, tmp_path)
    assert result.returncode == 1
    assert lines_of(result)["github"].startswith("FAIL GITHUB_TOKEN refused: 401 ")
    assert "ghs_wrong" not in result.stdout


def test_a_token_that_cannot_push_fails(github_server, example_repo, tmp_path) -> None:
    github_server.add_repo("octo/app")
    github_server.respond_once(
        "GET", r"/repos/octo/app$", 200, {"full_name": "octo/app", "permissions": {"push": False}}
    )
    with_github_remote(example_repo, github_server)
    env = no_model_env(GITHUB_TOKEN=github_server.token, GITHUB_API_URL=github_server.url)
    found = lines_of(codebot(["doctor", "--repo", str(example_repo)], env, tmp_path))
    assert found["github"] == (
        "FAIL codebot-bot cannot push to octo/app — give codebot-bot write access to octo/app, "
        "or use another token"
    )


def test_github_out_of_reach_is_skipped_with_a_note(example_repo, tmp_path) -> None:
    port = closed_port()
    git(example_repo, "remote", "add", "origin", f"http://127.0.0.1:{port}/octo/app.git")
    env = no_model_env(GITHUB_TOKEN="ghs_x", GITHUB_API_URL=f"http://127.0.0.1:{port}")
    result = codebot(["doctor", "--repo", str(example_repo)], env, tmp_path)
    assert lines_of(result)["github"] == (
        f"skip cannot reach http://127.0.0.1:{port} (Connection refused): the token was not checked"
    )


def test_remotes_on_github_are_recognised_in_every_url_form() -> None:
    env = {"GITHUB_SERVER_URL": "https://ghe.example.com"}
    assert doctor.github_repo("https://github.com/octo/app.git", {}) == "octo/app"
    assert doctor.github_repo("git@github.com:octo/app.git", {}) == "octo/app"
    assert doctor.github_repo("ssh://git@github.com/octo/app", {}) == "octo/app"
    assert doctor.github_repo("https://ghe.example.com/octo/app", env) == "octo/app"
    assert doctor.github_repo("https://gitlab.com/octo/app.git", env) is None


def test_a_missing_toolchain_image_fails_only_when_the_repository_needs_it() -> None:
    present = {"codebot-sandbox:bookworm": True, "codebot-sandbox:node": False}
    engine = Engine("24.0", present)
    needed = doctor.engine_findings(engine, "codebot-sandbox:bookworm", "codebot-sandbox:node")
    spare = doctor.engine_findings(engine, "codebot-sandbox:bookworm", None)
    assert [f.status for f in needed if f.check == "toolchains"] == ["fail"]
    assert [f.status for f in spare if f.check == "toolchains"] == ["warn"]


def test_a_classic_token_without_repo_scope_fails() -> None:
    facts = GitHub("https://api.github.com", "octo/app", login="mona", scopes=("read:org",))
    assert doctor.github_findings(facts, "") == [
        Finding(
            "github", "fail", "token of mona: scopes: read:org",
            "add the `repo` scope (or `public_repo` for a public repository)",
        )
    ]  # fmt: skip
