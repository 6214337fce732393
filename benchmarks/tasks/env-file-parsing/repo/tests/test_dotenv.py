import pytest

from appconfig.dotenv import DotenvError, parse
from appconfig.settings import Settings


def test_plain_values_comments_and_export():
    text = "# settings\nexport DEBUG=false\n\nWORKERS=4   # per CPU\n"
    assert parse(text) == {"DEBUG": "false", "WORKERS": "4"}


def test_quoted_values_keep_spaces():
    assert parse("GREETING='hello world'\n") == {"GREETING": "hello world"}


def test_values_may_contain_equals_signs():
    text = "DATABASE_URL=postgres://app@db/app?sslmode=require\n"
    assert parse(text) == {"DATABASE_URL": "postgres://app@db/app?sslmode=require"}


def test_a_hash_inside_quotes_is_part_of_the_value():
    assert parse('PASSWORD="s3cr#t" # rotated monthly\n') == {"PASSWORD": "s3cr#t"}


def test_bad_line_names_its_number():
    with pytest.raises(DotenvError, match="line 2"):
        parse("A=1\njust some words\n")


def test_environment_wins_over_the_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("WORKERS=4\nDEBUG=yes\n")
    settings = Settings.load(env_file, {"WORKERS": "8"})
    assert settings.int("WORKERS") == 8
    assert settings.bool("DEBUG") is True
