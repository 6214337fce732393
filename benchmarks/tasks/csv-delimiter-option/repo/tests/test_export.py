import json

from exporter.cli import main
from exporter.formats import read_jsonl, to_csv


def test_to_csv_orders_columns_and_blanks_missing_values():
    rows = [{"user": "ana", "action": "login"}, {"action": "logout", "user": None}]
    assert to_csv(rows, ["user", "action"]) == "user,action\nana,login\n,logout\n"


def test_values_with_commas_are_quoted():
    assert to_csv([{"note": "a, b"}], ["note"]) == 'note\n"a, b"\n'


def test_read_jsonl_skips_blank_lines():
    assert read_jsonl(['{"a": 1}', "", '{"a": 2}']) == [{"a": 1}, {"a": 2}]


def test_cli_prints_csv(tmp_path, capsys):
    log = tmp_path / "events.jsonl"
    log.write_text(json.dumps({"time": "10:00", "user": "ana"}) + "\n")
    assert main([str(log), "--columns", "time,user"]) == 0
    assert capsys.readouterr().out == "time,user\n10:00,ana\n"
