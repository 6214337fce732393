"""A repository's .codebot.yml cannot lift the sandbox's protections: its values are held
to the operator's maxima, values that would switch a limit off are refused, and its image
must be one the operator allows."""

from __future__ import annotations

import pytest

from codebot import config as cfg
from codebot.errors import ConfigError


def repo_file(text: str, **env: str) -> cfg.Settings:
    return cfg.with_repo_file(cfg.from_env(env), text)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("sandbox: {pids: -1}", "`sandbox.pids` must be at least 16 (got -1)"),
        ("sandbox: {pids: 0}", "`sandbox.pids` must be at least 16 (got 0)"),
        ("sandbox: {cpus: 0.0}", "`sandbox.cpus` must be more than 0 (got 0.0)"),
        ("sandbox: {memory: lots}", "`sandbox.memory` 'lots' is not a size"),
        ("sandbox: {disk: 0g}", "`sandbox.disk` '0g' is not a size"),
    ],
    ids=["no-pids-limit", "zero-pids", "no-cpu-limit", "memory-not-a-size", "zero-disk"],
)
def test_a_value_that_would_switch_a_limit_off_is_refused(text: str, said: str):
    with pytest.raises(ConfigError) as err:
        repo_file(text)
    assert err.value.cause == f".codebot.yml: {said}"


def test_values_above_the_operators_maxima_are_lowered_and_said():
    settings = repo_file("sandbox: {memory: 64g, cpus: 16, pids: 100000, disk: 2g}")

    box = settings.sandbox
    assert (box.memory, box.cpus, box.pids, box.disk) == ("4g", 2.0, 1024, "2g")
    assert settings.notes == (
        ".codebot.yml asked for sandbox.memory 64g; lowered to the operator's maximum 4g",
        ".codebot.yml asked for sandbox.cpus 16.0; lowered to the operator's maximum 2.0",
        ".codebot.yml asked for sandbox.pids 100000; lowered to the operator's maximum 1024",
    )


def test_the_operator_sets_the_maxima_in_the_environment():
    settings = repo_file("sandbox: {memory: 8g, cpus: 4}", CODEBOT_MAX_SANDBOX_MEMORY="16g",
                         CODEBOT_MAX_SANDBOX_CPUS="8")  # fmt: skip

    assert (settings.sandbox.memory, settings.sandbox.cpus, settings.notes) == ("8g", 4.0, ())


def test_an_image_the_operator_did_not_allow_is_refused():
    with pytest.raises(ConfigError) as err:
        repo_file("sandbox: {image: 'attacker/image:latest'}")
    assert "`sandbox.image` 'attacker/image:latest' is not an image the operator allows" in (
        err.value.cause
    )
    assert "CODEBOT_ALLOWED_IMAGES" in err.value.fix


def test_an_image_the_operator_allowed_is_used():
    settings = repo_file(
        "sandbox: {image: 'team/py312:1'}", CODEBOT_ALLOWED_IMAGES="team/py312:1, team/node:20"
    )
    assert settings.sandbox.image == "team/py312:1"
