"""The bundled example through the whole loop: CLI → clone → sandbox → model → edits → branch.

Real components only: the CLI in a subprocess, the real openai client talking to a scripted
server over a socket, the real Docker engine, real git repositories.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.support.git_repos import git, snapshot
from tests.support.model_server import Turn

pytestmark = pytest.mark.docker

STALE_EDIT = """I'll add the unit.

duration.py
<<<<<<< SEARCH
def parse(text):
    return int(text)
=======
def parse(text):
    return 0
>>>>>>> REPLACE
"""

# Right change, wrong line numbers in the hunk header: must still apply.
MINUTES_DIFF = """Add the minutes unit.

```diff
--- a/duration.py
+++ b/duration.py
@@ -9,1 +9,1 @@
-_UNITS = {"h": 3600, "s": 1}
+_UNITS = {"h": 3600, "m": 60, "s": 1}
```
"""

VALIDATION_EDIT = """Reject anything that is not a sequence of <number><unit> parts.

duration.py
<<<<<<< SEARCH
    total = 0
    for amount, unit in re.findall(r"(\\d+)([a-z])", text.strip().lower()):
        total += int(amount) * _UNITS[unit]
    return total
=======
    cleaned = text.strip().lower()
    if not re.fullmatch(r"(\\d+[hms])+", cleaned):
        raise ValueError(f"not a duration: {text!r}")
    total = 0
    for amount, unit in re.findall(r"(\\d+)([hms])", cleaned):
        total += int(amount) * _UNITS[unit]
    return total
>>>>>>> REPLACE
"""


def cli_env(server_or_url, **extra):
    base_url = getattr(server_or_url, "base_url", server_or_url)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "test-key-0123456789",
        "CODEBOT_MODEL": "test-model",
        "CODEBOT_MODEL_RETRIES": "3",
        "CODEBOT_PRICE_INPUT": "1.0",
        "CODEBOT_PRICE_OUTPUT": "2.0",
    }
    if "DOCKER_HOST" in os.environ:
        env["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
    env.update(extra)
    return env


def codebot(args, env, cwd, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "codebot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dir(runs):
    (only,) = list(runs.iterdir())
    return only


def test_example_goes_from_failing_tests_to_a_passing_branch(
    model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
):
    model_server.script(
        Turn.error(429, "slow down", headers={"retry-after-ms": "10"}),
        STALE_EDIT,
        Turn.raw('{"id": "cmpl-1", "choices": [{"message": {"content": "trunc'),
        MINUTES_DIFF,
        VALIDATION_EDIT,
    )
    before = snapshot(example_repo)
    runs = tmp_path / "runs"
    spec = os.path.abspath("specs/examples/parse-duration.yaml")
    result = codebot(
        ["dry-run", spec, "--repo", str(example_repo), "--runs-dir", str(runs)],
        cli_env(model_server),
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all checks passed after 3 iteration(s)" in result.stdout

    # The user's repository: same work tree, plus one new branch holding one commit.
    assert snapshot(example_repo) == before
    branch = "codebot/parse-duration-minutes"
    assert git(example_repo, "rev-list", "--count", f"main..{branch}") == "1"
    assert git(example_repo, "show", "--format=%an", "-s", branch) == "codebot"
    checkout = tmp_path / "check"
    git(tmp_path, "clone", "-q", "-b", branch, str(example_repo), str(checkout))
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=checkout, capture_output=True, text=True,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout

    # The run record matches what happened, turn by turn.
    record = json.loads((run_dir(runs) / "run.json").read_text())
    its = record["iterations"]
    assert record["stop_reason"] == "passed" and record["branch"] == branch
    assert [i["decision"] for i in its] == ["retry", "retry", "green"]
    assert [e["status"] for e in its[0]["edits"]] == ["refused"]
    assert its[0]["checks"] == []
    assert [c["passed"] for c in its[1]["checks"]] == [True, False]  # lint ok, tests fail
    assert its[1]["checks"][1]["tests_failed"] == 5
    assert all(c["passed"] for c in its[2]["checks"])
    assert record["baseline"][-1]["tests_failed"] >= 6
    total = sum(i["usage"]["total_tokens"] for i in its)
    assert record["usage"]["total_tokens"] == total > 0
    assert record["cost_usd"] > 0
    assert record["files_changed"] == ["duration.py"]

    # What the model was told: the refusal with closest lines, then the failing tests.
    sent = [r.messages for r in model_server.requests if r.path.endswith("/chat/completions")]
    assert len(sent) == 5  # 429 + iteration 1, malformed + iteration 2, iteration 3
    assert "block 1 (duration.py): refused" in sent[3][-1]["content"]
    assert "def parse_duration" in sent[3][-1]["content"]  # closest lines shown
    assert "test_invalid_input_raises_value_error" in sent[4][-1]["content"]
    assert "test-key-0123456789" not in json.dumps(sent)

    pr = (run_dir(runs) / "pr.md").read_text()
    patch = (run_dir(runs) / "patch.diff").read_text()
    assert "✅ **all checks passed**" in pr
    assert "| `duration.py` |" in pr and "Reject anything" in pr
    assert "| 3 / 4 |" in pr
    assert '+_UNITS = {"h": 3600, "m": 60, "s": 1}' in patch


def test_example_command_creates_the_repo_and_runs(model_server, tmp_path, sandbox_image):
    model_server.script(MINUTES_DIFF, VALIDATION_EDIT)
    result = codebot(
        ["example", "--dir", str(tmp_path / "ex"), "--runs-dir", str(tmp_path / "runs")],
        cli_env(model_server),
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "branch:     codebot/parse-duration-minutes" in result.stdout
    assert "PR draft:" in result.stdout and "run record:" in result.stdout
