import pytest

from appconfig.dotenv import DotenvError, parse


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("URL=https://x.test/?a=1&b=2", "https://x.test/?a=1&b=2"),
        ("EXPR=a==b", "a==b"),
        ("TOKEN=abc=", "abc="),
        ("export URL=postgres://u@h/db?sslmode=require", "postgres://u@h/db?sslmode=require"),
        ('QUOTED="k=v" # note', "k=v"),
        ("EMPTY=", ""),
        ("PLAIN=value # comment", "value"),
        ("SINGLE='x'", "x"),
    ],
)
def test_values(line, expected):
    (value,) = parse(line + "\n").values()
    assert value == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('PASSWORD="s3cr#t"', "s3cr#t"),
        ("PASSWORD='s3cr #t' # rotated", "s3cr #t"),
        ('HASHES="#1 # 2"', "#1 # 2"),
    ],
)
def test_hash_inside_quotes(line, expected):
    assert parse(line + "\n")["PASSWORD" if "PASSWORD" in line else "HASHES"] == expected


def test_a_line_without_equals_is_still_an_error():
    with pytest.raises(DotenvError, match="line 1"):
        parse("NOT_A_SETTING\n")


def test_an_invalid_name_is_still_an_error():
    with pytest.raises(DotenvError):
        parse("1BAD=x\n")
