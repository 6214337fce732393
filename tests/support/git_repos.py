"""Real git repositories in temporary directories (driven with the git CLI, not our code)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "dev",
    "GIT_AUTHOR_EMAIL": "dev@localhost",
    "GIT_COMMITTER_NAME": "dev",
    "GIT_COMMITTER_EMAIL": "dev@localhost",
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "PATH": "/usr/local/bin:/usr/bin:/bin",
}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def make_repo(path: Path, files: dict[str, str], branch: str = "main") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def snapshot(repo: Path) -> dict[str, str]:
    """What a user would notice changing: HEAD, branch, status and the work tree files."""
    files = sorted(p for p in repo.rglob("*") if ".git" not in p.parts and p.is_file())
    return {
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "rev-parse", "--abbrev-ref", "HEAD"),
        "status": git(repo, "status", "--porcelain"),
        "files": "\n".join(f"{p.relative_to(repo)}:{p.read_text()}" for p in files),
    }


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    src = Path(__file__).resolve().parents[2] / "specs" / "examples" / "parse-duration"
    return make_repo(tmp_path / "example", {p.name: p.read_text() for p in src.iterdir()})


@pytest.fixture
def remote(example_repo: Path, tmp_path: Path) -> Path:
    """A bare repository holding the example plus a .codebot.yml, as GitHub would: the push
    remote of the GitHub tests."""
    (example_repo / ".codebot.yml").write_text("spec:\n  test: python3 -m pytest -q\n")
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-qm", "configure codebot")
    bare = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(example_repo), str(bare))
    return bare
