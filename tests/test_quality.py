"""The project's own quality gates run with the tests, so CI cannot go green without them."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize(
    "args",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",)],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_code_passes_quality_gate(args):
    result = _run(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = (
        "bash sandbox/setup-host.sh && python -m pip install -q -e '.[dev]' && python -m pytest"
    )
    assert command in readme
    assert (ROOT / ".ci/run").read_text().strip().splitlines()[-1] == command
