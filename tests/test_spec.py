from pathlib import Path

import pytest

from codebot.errors import SpecError
from codebot.spec import load_spec, parse_spec

VALID = """\
title: Fix the parser
description: It crashes on empty input.
test: pytest -q
"""


def test_example_spec_loads_with_defaults():
    spec = load_spec(Path("specs/examples/parse-duration.yaml"))
    assert spec.slug == "parse-duration-minutes"
    assert spec.test == "python3 -m pytest -q"
    assert spec.budget.max_tokens == 60000
    assert spec.lint is None


def test_slug_is_derived_from_title_when_no_id():
    assert parse_spec(VALID, "s.yaml").slug == "fix-the-parser"


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(SpecError, match=r"nope\.yaml does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_yaml_syntax_error_names_file_and_line():
    with pytest.raises(SpecError) as err:
        parse_spec("title: x\ndescription: [unclosed\n", "bad.yaml")
    assert err.value.cause.startswith("bad.yaml:")
    assert "not valid YAML" in err.value.cause


def test_missing_required_field_names_the_field_and_fix():
    with pytest.raises(SpecError) as err:
        parse_spec("title: x\ntest: pytest\n", "s.yaml")
    assert "`description` is missing" in err.value.cause
    assert "add `description:`" in err.value.fix


def test_missing_test_command_points_at_spec_or_codebot_yml():
    with pytest.raises(SpecError) as err:
        parse_spec("title: x\ndescription: y\n", "s.yaml")
    assert "`test` is missing" in err.value.cause
    assert ".codebot.yml" in err.value.fix


def test_unknown_field_suggests_the_closest_name_with_its_line():
    with pytest.raises(SpecError) as err:
        parse_spec(VALID + "max_iteration: 3\n", "s.yaml")
    assert err.value.cause == "s.yaml:4: unknown field `max_iteration`"
    assert "did you mean `max_iterations`" in err.value.fix


def test_wrong_type_in_nested_field_names_path_and_line():
    with pytest.raises(SpecError) as err:
        parse_spec(VALID + "budget:\n  max_tokens: lots\n", "s.yaml")
    assert err.value.cause.startswith("s.yaml:5: field `budget.max_tokens` must be of type integer")


def test_out_of_range_iterations_is_refused():
    with pytest.raises(SpecError, match="max_iterations"):
        parse_spec(VALID + "max_iterations: 0\n", "s.yaml")


def test_lint_false_turns_lint_off_and_true_is_refused():
    assert parse_spec(VALID + "lint: false\n", "s.yaml").lint is False
    with pytest.raises(SpecError) as err:
        parse_spec(VALID + "lint: true\n", "s.yaml")
    assert "lint: false" in err.value.fix


def test_defaults_fill_absent_fields_and_spec_wins():
    spec = parse_spec(
        "title: x\ndescription: y\nmax_iterations: 7\n",
        "s.yaml",
        defaults={"test": "make test", "max_iterations": 2},
    )
    assert (spec.test, spec.max_iterations) == ("make test", 7)


def test_top_level_must_be_a_mapping():
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        parse_spec("- a\n- b\n", "s.yaml")


def test_setup_command_and_its_timeout_are_read_and_default_to_none_and_600():
    assert (parse_spec(VALID, "s.yaml").setup, parse_spec(VALID, "s.yaml").setup_timeout) == (
        None,
        600,
    )
    spec = parse_spec(VALID + "setup: pip install -e .\nsetup_timeout: 900\n", "s.yaml")
    assert (spec.setup, spec.setup_timeout) == ("pip install -e .", 900)
    with pytest.raises(SpecError) as err:
        parse_spec(VALID + "setup_timeout: 0\n", "s.yaml")
    assert "setup_timeout" in err.value.cause and ":4" in err.value.cause


def test_a_time_budget_is_read_in_minutes():
    spec = parse_spec(VALID + "budget:\n  max_minutes: 12.5\n", "s.yaml")
    assert spec.budget.max_minutes == 12.5


def test_a_time_budget_of_zero_is_refused_with_its_line():
    with pytest.raises(SpecError) as err:
        parse_spec(VALID + "budget:\n  max_minutes: 0\n", "s.yaml")
    assert err.value.cause.startswith("s.yaml:5: field `budget.max_minutes` is out of range")
