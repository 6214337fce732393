from logtools import parse_ts, render_line, render_log, summarise

RECORDS = [
    {"t": 0.0, "level": "info", "source": "main", "msg": "starting"},
    {"t": 1.25, "level": "warn", "source": "worker-2", "msg": "disk almost full"},
    {"t": 3723.5, "level": "error", "source": "worker-1", "msg": "out of space"},
]


def test_render_line():
    assert render_line(RECORDS[1]) == "00:00:01.250 WARN  worker-2  disk almost full"


def test_render_log_has_one_line_per_record():
    assert render_log(RECORDS).count("\n") == 3


def test_summary_names_duration_counts_and_first_error():
    assert summarise(RECORDS) == (
        "duration 01:02:03.500; 1 error, 1 info, 1 warn\n"
        "first error at 01:02:03.500: out of space"
    )


def test_parse_ts_reads_what_render_writes():
    assert parse_ts("01:02:03.5") == 3723.5
