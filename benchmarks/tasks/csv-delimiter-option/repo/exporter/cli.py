"""`python3 -m exporter FILE --columns a,b,c`: print FILE's events as CSV."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from exporter.formats import read_jsonl, to_csv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="exporter", description=__doc__)
    parser.add_argument("path", help="a JSON-lines file")
    parser.add_argument(
        "--columns", required=True, help="comma-separated column names, in output order"
    )
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    with open(args.path, encoding="utf-8") as handle:
        rows = read_jsonl(handle)
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    sys.stdout.write(to_csv(rows, columns))
    return 0
