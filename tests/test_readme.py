"""Every command of the README's quick start, run as written (with `codebot` as this
interpreter's `python -m codebot`) in a fresh repository, against the scripted model server
and the real Docker engine. A command the README shows must work as the README says."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.support.git_repos import git
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT, cli_env, codebot

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> list[list[str]]:
    """The commands of the bash block under "### Quick start", comments removed."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Quick start") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README: the quick start has no bash block"
    commands = []
    for line in block[1].splitlines():
        words = shlex.split(line, comments=True)
        if words:
            commands.append(words)
    return commands


def test_the_quick_start_shows_the_commands_a_new_user_needs() -> None:
    shown = [" ".join(c[1:3]) for c in quick_start() if c[0] == "codebot"]
    for needed in ("doctor", "init", "dry-run specs/fix-parser.yaml", "runs", "show latest"):
        assert any(s.startswith(needed) for s in shown), f"README quick start lacks {needed}"


@pytest.mark.docker
def test_every_quick_start_command_works_as_written(
    model_server, example_repo, tmp_path, sandbox_image, no_leftover_containers
) -> None:
    spec = (Path(__file__).resolve().parents[1] / "specs/examples/parse-duration.yaml").read_text()
    (example_repo / "specs").mkdir()
    (example_repo / "specs/fix-parser.yaml").write_text(spec)
    git(example_repo, "add", "-A")
    git(example_repo, "commit", "-q", "-m", "a task")
    # doctor's probe of the key, then the run's two replies.
    model_server.script("OK", MINUTES_DIFF, VALIDATION_EDIT)
    env = cli_env(model_server)
    commands = quick_start()
    assert commands[0] == ["cd", "your-repo"]

    said = {}
    for words in commands[1:]:
        assert words[0] == "codebot", f"README quick start: `{shlex.join(words)}` is not codebot"
        result = codebot(words[1:], env, example_repo)
        shown = shlex.join(words)
        assert result.returncode == 0, f"`{shown}` exited {result.returncode}:\n" + (
            result.stdout + result.stderr
        )
        said[" ".join(words[1:2])] = result.stdout

    assert "FAIL" not in said["doctor"] and "endpoint" in said["doctor"]
    assert (example_repo / ".codebot.yml").is_file()
    assert (example_repo / ".github/workflows/codebot.yml").is_file()
    assert "all checks passed" in said["dry-run"]
    assert "passed" in said["runs"] and "parse_duration" in said["runs"]
    assert "duration.py" in said["show"]
    assert "doctor" in said["--help"]
