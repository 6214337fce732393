"""Best-of-3 on a repository whose suite takes a while: candidates checked one, two or three
at a time (`CODEBOT_CANDIDATE_WORKERS`), side by side in one run.

The repository's one fast test fails on `a - b`; its other tests take ~1.5 s (half waiting,
half computing, as real suites mix both). The oracle model answers every iteration with three
candidates: the first two add a comment (the edit applies, so each is checked, and fails),
only the third is right. Each configuration runs `codebot dry-run --candidates 3` in a fresh
process, interleaved (1, 2, 3, 1, 2, 3, ...), and the figures are medians of: the iteration
(its slowest reply plus the wall time of all its candidates' checks, from run.json) and the
run end to end.

    python benchmarks/candidates.py --runs 5   # writes benchmarks/results/candidates.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codebot.bench import machine, save_figures  # noqa: E402
from codebot.oracle import OracleServer  # noqa: E402

SLOW = """import time


def _work(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        sum(range(1000))


def test_waits_on_io():
    time.sleep(0.75)


def test_computes():
    _work(0.75)
"""
FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    "test_slow.py": SLOW,
}
FIX = (
    "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n"
    " def add(a, b):\n-    return a - b\n+    return a + b\n"
)
WORKERS = (1, 2, 3)


def repo(path: Path, title: str) -> Path:
    path.mkdir(parents=True)
    for name, text in FILES.items():
        (path / name).write_text(text)
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@localhost"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "i"]):
        subprocess.run([*git, *args], cwd=path, check=True)
    spec = path.parent / f"{path.name}.yaml"
    spec.write_text(
        f"title: {title}\ndescription: add subtracts.\ntest: python3 -m pytest -q\n"
        "max_iterations: 1\n"
    )
    return spec


def one(oracle: OracleServer, env: dict[str, str], work: Path, n: int, workers: int) -> dict:
    title = f"Fix add {n} w{workers}"
    oracle.register(title, FIX)
    spec = repo(work / f"r{n}-w{workers}", title)
    runs = work / f"runs-{n}-{workers}"
    argv = [sys.executable, "-m", "codebot", "dry-run", str(spec), "--repo", str(spec.parent /
            spec.stem), "--runs-dir", str(runs), "--candidates", "3", "--candidate-workers",
            str(workers)]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed: {done.stdout[-800:]} {done.stderr[-1500:]}")
    record = json.loads(next(runs.glob("*/run.json")).read_text())
    (it,) = record["iterations"]
    outcomes = [c["outcome"] for c in it["candidates"]]
    if outcomes != ["retry", "retry", "green"]:
        raise SystemExit(f"unexpected candidates with {workers} workers: {outcomes}")
    return {"wall_s": wall, "iteration_s": it["duration_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    samples: dict[int, list[dict]] = {w: [] for w in WORKERS}
    oracle = OracleServer(right_seeds=frozenset({2}), applicable=True)
    with tempfile.TemporaryDirectory(prefix="codebot-candidates-") as tmp, oracle:
        env = {**os.environ, "OPENAI_BASE_URL": oracle.base_url, "CODEBOT_MODEL": "oracle"}
        for n in range(args.runs):
            for workers in WORKERS:
                samples[workers].append(one(oracle, env, Path(tmp), n, workers))
    rows = []
    for workers in WORKERS:
        iteration = statistics.median(s["iteration_s"] for s in samples[workers])
        wall = statistics.median(s["wall_s"] for s in samples[workers])
        rows.append(
            {"workers": workers, "iteration_s": round(iteration, 2), "wall_s": round(wall, 2)}
        )
    base = rows[0]
    for row in rows:
        row["iteration_ratio"] = round(row["iteration_s"] / base["iteration_s"], 2)
        row["wall_ratio"] = round(row["wall_s"] / base["wall_s"], 2)
    result = {"machine": machine(), "runs": args.runs, "rows": rows}
    lines = [
        "# Best-of-3 with a ~1.5 s suite: candidates checked one, two or three at a time",
        "",
        f"{machine()}; {args.runs} interleaved runs per row, medians; only the third candidate "
        "is right, so every iteration checks all three",
        "",
        "| checked at once | iteration (s) | × one at a time | run end to end (s) "
        "| × one at a time |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {r['workers']} | {r['iteration_s']} | {r['iteration_ratio']} | {r['wall_s']} "
            f"| {r['wall_ratio']} |"
            for r in rows
        ),
        "",
        "- iteration: its slowest reply (the oracle answers at once) plus the wall time of all",
        "  three candidates' checks (apply, sync, lint, tests), from run.json.",
        "- run end to end: the `codebot dry-run` process, including the lanes' start (while the",
        "  baseline runs) and removal, and the verification of the winner in a fresh sandbox.",
        "- test selection is on, as by default: each check first runs the test that failed at",
        "  the baseline, so a wrong candidate is rejected in well under the suite's time and the",
        "  right one runs the whole suite; side by side, the right one need not wait for them.",
    ]
    save_figures(args.out, "candidates", "\n".join(lines), result)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
