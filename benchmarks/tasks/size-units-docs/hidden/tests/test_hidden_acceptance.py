import re
from pathlib import Path

import pytest

from sizes import format_size, parse_size

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10KB", 10_000),
        ("20 MB", 20_000_000),
        ("3GB", 3_000_000_000),
        ("1TB", 10**12),
        ("10KiB", 10_240),
        ("1.5 MiB", 1_572_864),
        ("2GiB", 2 * 1024**3),
        ("1 tib", 1024**4),
        ("7", 7),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


def test_format_size_labels_binary_units():
    assert format_size(10_240) == "10.0 KiB"
    assert format_size(5 * 1024**3) == "5.0 GiB"
    assert format_size(999) == "999 B"


def test_unknown_unit_is_rejected():
    with pytest.raises(ValueError):
        parse_size("3 XB")


def test_every_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) >= 2
    namespace: dict[str, object] = {}  # the blocks read as one session, like the README
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)


def test_readme_documents_both_unit_families():
    text = README.read_text()
    assert "KiB" in text and "MiB" in text
    assert "1000" in text
