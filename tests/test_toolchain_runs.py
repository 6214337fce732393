"""Zero-config runs on repositories of other toolchains: no test command in the spec and no
.codebot.yml; codebot finds the commands and the image in the repository's own files, and the
run goes from a failing test to a passing branch."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from codebot import config as cfg
from codebot.local import RunRequest, execute
from tests.support.git_repos import git, make_repo
from tests.support.model_server import ScriptedModelServer

pytestmark = pytest.mark.docker

PACKAGE = {"name": "calc", "version": "1.0.0", "scripts": {"test": "node --test"}}
NODE = {
    "package.json": json.dumps(PACKAGE, indent=2) + "\n",
    "calc.js": "exports.add = (a, b) => a - b;\n",
    "calc.test.js": (
        "const test = require('node:test');\nconst assert = require('node:assert');\n"
        "const { add } = require('./calc');\n\n"
        "test('adds', () => assert.strictEqual(add(2, 3), 5));\n"
    ),
}
GO = {
    "go.mod": "module example.com/calc\n\ngo 1.19\n",
    "calc.go": "package calc\n\nfunc Add(a, b int) int {\n\treturn a - b\n}\n",
    "calc_test.go": (
        'package calc\n\nimport "testing"\n\nfunc TestAdd(t *testing.T) {\n'
        '\tif Add(2, 3) != 5 {\n\t\tt.Fatal("2 + 3 is not 5")\n\t}\n}\n'
    ),
}
CI_ONLY = {
    "src/calc.py": "def add(a, b):\n    return a - b\n",
    "checks/test_calc.py": (
        "import sys\n\nsys.path.insert(0, 'src')\n\nfrom calc import add\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n"
    ),
    ".github/workflows/ci.yml": (
        "name: ci\non: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n      - run: python -m pytest -q checks\n"
    ),
}


def fix(path: str, old: str, new: str) -> str:
    return f"Add, not subtract.\n\n{path}\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"


def run(repo: Path, server: ScriptedModelServer, tmp_path: Path) -> dict[str, Any]:
    spec = tmp_path / "spec.yaml"
    spec.write_text("title: Fix add\ndescription: add subtracts instead of adding.\n")
    env = {"OPENAI_BASE_URL": server.base_url, "CODEBOT_MODEL": "test-model"}
    settings = replace(cfg.from_env(env), runs_dir=tmp_path / "runs")
    outcome = execute(RunRequest(spec, repo, settings), env=env)
    record: dict[str, Any] = json.loads(outcome.files.run_json.read_text())
    return record


@pytest.mark.parametrize(
    ("files", "reply", "image", "test"),
    [
        (NODE, fix("calc.js", "exports.add = (a, b) => a - b;", "exports.add = (a, b) => a + b;"),
         "codebot-sandbox:node", "npm test"),
        (GO, fix("calc.go", "\treturn a - b", "\treturn a + b"), "codebot-sandbox:go",
         "go test ./..."),
        (CI_ONLY, fix("src/calc.py", "    return a - b", "    return a + b"),
         "codebot-sandbox:bookworm", "python3 -m pytest -q checks"),
    ],
    ids=["node", "go", "commands-from-ci"],
)  # fmt: skip
def test_a_repository_with_no_codebot_config_runs_green_on_its_own_commands(
    files: dict[str, str],
    reply: str,
    image: str,
    test: str,
    model_server: ScriptedModelServer,
    tmp_path: Path,
    no_leftover_containers: None,
) -> None:
    repo = make_repo(tmp_path / "repo", files)
    model_server.script(reply)

    record = run(repo, model_server, tmp_path)

    assert record["stop_reason"] == "passed", record["stop_detail"]
    assert record["spec"]["test"] == test and record["environment"].startswith(image)
    baseline_test = next(c for c in record["baseline"] if c["name"] == "test")
    assert not baseline_test["passed"]
    assert any(n.startswith(f"test `{test}` detected:") for n in record["notes"])
    assert git(repo, "branch", "--list", "codebot/*").strip() == "codebot/fix-add"


def test_a_toolchain_the_image_lacks_stops_before_the_model_with_the_image_to_use(
    model_server: ScriptedModelServer, tmp_path: Path, sandbox_image: str
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("title: Fix add\ndescription: d\ntest: node --test\n")
    repo = make_repo(tmp_path / "repo", {"calc.js": NODE["calc.js"], "calc.test.js": "x\n"})
    env = {"OPENAI_BASE_URL": model_server.base_url, "CODEBOT_MODEL": "test-model",
           "CODEBOT_SANDBOX_IMAGE": sandbox_image}  # fmt: skip
    settings = replace(cfg.from_env(env), runs_dir=tmp_path / "runs")

    outcome = execute(RunRequest(spec, repo, settings), env=env)

    assert outcome.record.stop_reason == "environment_broken" and not outcome.record.iterations
    assert "needs `node`" in outcome.record.stop_detail
    assert "codebot-sandbox:node" in outcome.record.stop_detail
    assert model_server.requests == []


TOX_STYLE = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    "tox.ini": (
        "[tox]\nenvlist = py3, style\n\n[testenv]\ncommands = pytest -q {posargs}\n\n"
        "[testenv:style]\ndeps = pre-commit\nskip_install = true\n"
        "commands = pre-commit run --all-files\n"
    ),
}


def test_a_detected_lint_whose_program_the_image_lacks_gives_way_to_the_default_lint(
    model_server: ScriptedModelServer, tmp_path: Path, no_leftover_containers: None
) -> None:
    repo = make_repo(tmp_path / "repo", TOX_STYLE)
    model_server.script(fix("calc.py", "    return a - b", "    return a + b"))

    record = run(repo, model_server, tmp_path)

    assert record["stop_reason"] == "passed", record["stop_detail"]
    assert (
        "lint `pre-commit run --all-files` was detected, but `pre-commit` is not in the "
        "sandbox image; the run uses the default lint instead" in " ".join(record["notes"])
    )
    assert record["spec"]["lint"] is None  # the default lint (ruff on the changed files)
    lint = next(c for c in record["iterations"][0]["checks"] if c["name"] == "lint")
    assert lint["command"].startswith("ruff check") and lint["passed"]
