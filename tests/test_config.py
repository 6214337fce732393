import os
from pathlib import Path

import pytest

from codebot import config as cfg
from codebot.configure import with_overrides
from codebot.errors import ConfigError
from codebot.spec import Budget, TaskSpec


def test_env_provides_endpoint_model_and_key():
    s = cfg.from_env(
        {"OPENAI_BASE_URL": "http://x/v1", "OPENAI_API_KEY": "k" * 10, "CODEBOT_MODEL": "m"}
    )
    assert (s.model.base_url, s.model.name) == ("http://x/v1", "m")
    assert "k" * 10 not in repr(s)


def test_flags_override_env():
    s = cfg.with_flags(cfg.from_env({"CODEBOT_MODEL": "a"}), model="b", base_url=None)
    assert s.model.name == "b"


def test_candidates_are_checked_one_per_core_unless_told():
    assert cfg.from_env({}).candidate_workers == min(8, os.cpu_count() or 1)
    told = cfg.from_env({"CODEBOT_CANDIDATES": "3", "CODEBOT_CANDIDATE_WORKERS": "2"})
    assert (told.candidates, told.candidate_workers) == (3, 2)
    assert cfg.with_flags(told, candidate_workers=1).candidate_workers == 1
    with pytest.raises(ConfigError) as err:
        cfg.from_env({"CODEBOT_CANDIDATE_WORKERS": "0"})
    assert "CODEBOT_CANDIDATE_WORKERS=0 is not a number of candidates checked at once" in str(
        err.value
    )
    assert "1 to 8" in err.value.fix


def test_missing_endpoint_says_how_to_set_one():
    with pytest.raises(ConfigError) as err:
        cfg.require_model(cfg.from_env({}))
    assert "OPENAI_BASE_URL" in err.value.fix


def test_workflow_edits_are_protected_by_default_and_opt_out_is_env_only():
    assert ".github/workflows/**" in cfg.from_env({}).git.protected_paths
    allowed = cfg.from_env({"CODEBOT_ALLOW_WORKFLOW_EDITS": "1"})
    assert ".github/workflows/**" not in allowed.git.protected_paths


def test_repo_file_sets_sandbox_limits_and_spec_defaults():
    text = "sandbox:\n  memory: 2g\n  cpus: 2\nspec:\n  test: make test\n"
    s = cfg.with_repo_file(cfg.from_env({}), text)
    assert (s.sandbox.memory, s.sandbox.cpus) == ("2g", 2.0)
    assert s.spec_defaults == {"test": "make test"}


@pytest.mark.parametrize(
    "text",
    [
        "model:\n  base_url: http://evil/v1\n",
        "sandbox:\n  network: true\n",
        "git:\n  protected_paths: []\n",
        "spec:\n  repo: someone/else\n",
    ],
)
def test_repo_file_cannot_redirect_endpoint_open_network_or_lift_protection(text):
    with pytest.raises(ConfigError):
        cfg.with_repo_file(cfg.from_env({}), text)


def test_repo_file_can_only_add_protected_paths():
    s = cfg.with_repo_file(cfg.from_env({}), "protected_paths: ['migrations/**']\n")
    assert s.git.protected_paths[-1] == "migrations/**"
    assert ".github/workflows/**" in s.git.protected_paths


def test_repo_file_with_wrong_type_names_key():
    with pytest.raises(ConfigError, match=r"sandbox\.pids"):
        cfg.with_repo_file(cfg.from_env({}), "sandbox:\n  pids: many\n")


def test_the_readme_codebot_yml_example_is_accepted_as_written():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("may set only what cannot hurt the operator:", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    settings = cfg.with_repo_file(cfg.from_env({}), example)
    assert settings.spec_defaults["setup"].startswith("python3 -m pip install")
    assert settings.sandbox.pids == 512 and "migrations/**" in settings.git.protected_paths


def test_operator_time_limit_from_env_wins_over_the_specs():
    settings = cfg.from_env({"CODEBOT_MAX_MINUTES": "2.5"})
    spec = TaskSpec(title="t", description="d", test="pytest", budget=Budget(max_minutes=30))

    assert with_overrides(spec, settings).budget.max_minutes == 2.5
