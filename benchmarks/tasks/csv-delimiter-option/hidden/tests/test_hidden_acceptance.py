import json

import pytest

from exporter.cli import main
from exporter.formats import to_csv

ROWS = [{"user": "ana", "amount": "1,50"}, {"user": "bo", "amount": "2"}]


def test_to_csv_default_is_still_a_comma():
    assert to_csv(ROWS, ["user", "amount"]) == 'user,amount\nana,"1,50"\nbo,2\n'


def test_to_csv_with_a_semicolon():
    assert to_csv(ROWS, ["user", "amount"], delimiter=";") == "user;amount\nana;1,50\nbo;2\n"


def test_to_csv_with_a_tab():
    assert to_csv(ROWS[1:], ["user", "amount"], delimiter="\t") == "user\tamount\nbo\t2\n"


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_cli_delimiter_option(log, capsys):
    assert main([str(log), "--columns", "user,amount", "--delimiter", ";"]) == 0
    assert capsys.readouterr().out == "user;amount\nana;1,50\nbo;2\n"


def test_cli_default_delimiter_is_a_comma(log, capsys):
    assert main([str(log), "--columns", "user"]) == 0
    assert capsys.readouterr().out == "user\nana\nbo\n"


@pytest.mark.parametrize("bad", ["", ";;", "ab"])
def test_cli_rejects_a_delimiter_that_is_not_one_character(log, bad):
    with pytest.raises(SystemExit) as exc:
        main([str(log), "--columns", "user", "--delimiter", bad])
    assert exc.value.code == 2
