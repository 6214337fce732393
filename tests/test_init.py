"""`codebot init`: a commented .codebot.yml from what detection found, the example workflow
pointing at the published action, nothing overwritten without --force, and `--check` that
names the line of each problem. Real repositories on disk, the real CLI."""

from __future__ import annotations

import yaml

from codebot import config as cfg
from tests.support.git_repos import make_repo
from tests.test_learn import run_codebot

PACKAGE = '{"name": "shop", "scripts": {"test": "node --test", "lint": "eslint ."}}\n'


def test_init_writes_the_detected_commands_and_the_workflow(tmp_path) -> None:
    repo = make_repo(tmp_path / "shop", {"package.json": PACKAGE, "index.js": "1;\n"})

    done = run_codebot(["init", "--repo", str(repo), "--action", "acme/codebot@v1"], tmp_path)

    assert done.returncode == 0, done.stderr
    assert f"codebot: wrote {repo / '.codebot.yml'}" in done.stdout
    text = (repo / ".codebot.yml").read_text()
    assert "package.json" in text  # each command says where it was found
    settings = cfg.with_repo_file(cfg.Settings(), text)  # what it wrote is a valid config
    assert settings.spec_defaults.get("test") == "npm test"
    workflow = (repo / ".github/workflows/codebot.yml").read_text()
    assert "uses: acme/codebot@v1" in workflow and "uses: ./" not in workflow
    yaml.safe_load(workflow)


def test_init_keeps_files_that_exist_unless_forced(tmp_path) -> None:
    repo = make_repo(tmp_path / "shop", {".codebot.yml": "context: {tokens: 6000}\n"})

    kept = run_codebot(["init", "--repo", str(repo)], tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert "it exists; --force overwrites it" in kept.stdout
    assert (repo / ".codebot.yml").read_text() == "context: {tokens: 6000}\n"

    forced = run_codebot(["init", "--repo", str(repo), "--force"], tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (repo / ".codebot.yml").read_text() != "context: {tokens: 6000}\n"


def test_init_check_names_the_line_of_each_problem(tmp_path) -> None:
    bad = "sandbox:\n  memory: 512m\n  cpus: lots\ncontext:\n  tokens: 6000\nmodel: gpt-4\n"
    repo = make_repo(tmp_path / "shop", {".codebot.yml": bad})

    done = run_codebot(["init", "--check", "--repo", str(repo)], tmp_path)

    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{repo}/.codebot.yml:3: `sandbox.cpus` must be float (got 'lots') — see float in "
        "README 'Configuration'",
        f"{repo}/.codebot.yml:6: unknown or not allowed key `model` — allowed: context, git, "
        "github, knowledge, protected_paths, sandbox, spec; endpoint and secrets come from "
        "env/flags",
    ]


def test_init_check_passes_a_good_file(tmp_path) -> None:
    repo = make_repo(tmp_path / "shop", {".codebot.yml": "context:\n  tokens: 6000\n"})

    done = run_codebot(["init", "--check", "--repo", str(repo)], tmp_path)

    assert done.returncode == 0, done.stderr
