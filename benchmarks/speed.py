"""Speed and scale: the trivial task end to end, `codebot --help`, and parallel throughput.

- trivial task: a repository whose one test fails on `a - b`; the scripted zero-latency model
  (codebot's oracle server) answers with the fix; `codebot dry-run` in a fresh process, as a
  user runs it, timed end to end (interpreter start to exit), median of --runs; with the
  medians of the timings each run recorded (environment, sandbox ready, baseline...);
- `codebot --help`: the same, for the command a user types first;
- throughput: 8 such tasks through `codebot batch` with 1, 2, 4 and 8 workers, tasks per
  minute and the largest peak RSS of one worker process.

    python benchmarks/speed.py --runs 7      # writes benchmarks/results/speed.{md,json}
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

FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}
FIX = (
    "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n"
    " def add(a, b):\n-    return a - b\n+    return a + b\n"
)


def repo(path: Path, title: str) -> tuple[Path, Path]:
    path.mkdir(parents=True)
    for name, text in FILES.items():
        (path / name).write_text(text)
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@localhost"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "i"]):
        subprocess.run([*git, *args], cwd=path, check=True)
    spec = path.parent / f"{path.name}.yaml"
    spec.write_text(f"title: {title}\ndescription: add subtracts.\ntest: python3 -m pytest -q\n")
    return path, spec


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed: {done.stdout[-500:]} {done.stderr[-1500:]}")
    return elapsed


def trivial(
    oracle: OracleServer, env: dict[str, str], runs: int, work: Path
) -> tuple[list[float], dict[str, float]]:
    """The end-to-end times, and the median of each timing the runs recorded (run.json)."""
    times, phases = [], []
    for n in range(runs):
        title = f"Fix add {n}"
        oracle.register(title, FIX)
        path, spec = repo(work / f"trivial-{n}", title)
        argv = [sys.executable, "-m", "codebot", "dry-run", str(spec), "--repo", str(path),
                "--runs-dir", str(work / f"runs-{n}")]  # fmt: skip
        times.append(timed(argv, env, work))
        (record,) = (work / f"runs-{n}").glob("*/run.json")
        phases.append(json.loads(record.read_text())["timings"])
    keys = [k for k in phases[0] if all(k in p for p in phases)]
    return times, {k: round(statistics.median(p[k] for p in phases), 3) for k in keys}


def throughput(
    oracle: OracleServer, env: dict[str, str], work: Path, workers: int
) -> dict[str, float]:
    base = work / f"batch-{workers}"
    specs = base / "specs"
    specs.mkdir(parents=True)
    path, _ = repo(base / "repo", "unused")
    for n in range(8):
        title = f"Fix add w{workers} t{n}"
        oracle.register(title, FIX)
        (specs / f"t{n}.yaml").write_text(
            f"title: {title}\nid: t{n}\ndescription: add subtracts.\ntest: python3 -m pytest -q\n"
        )
    argv = [sys.executable, "-m", "codebot", "batch", str(specs), "--repo", str(path),
            "--workers", str(workers), "--runs-dir", str(base / "runs")]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    peaks = [float(line.split("|")[7]) for line in done.stdout.splitlines() if ".yaml |" in line]
    passed = sum("| passed |" in line for line in done.stdout.splitlines())
    return {
        "workers": workers,
        "wall_s": round(wall, 2),
        "passed": passed,
        "tasks_per_min": round(8 / wall * 60, 1),
        "peak_rss_mb": max(peaks, default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="codebot-speed-") as tmp, OracleServer() as oracle:
        work = Path(tmp)
        env = {**os.environ, "OPENAI_BASE_URL": oracle.base_url, "CODEBOT_MODEL": "oracle"}
        helps = [
            timed([sys.executable, "-m", "codebot", "--help"], env, work) for _ in range(args.runs)
        ]
        runs, phases = trivial(oracle, env, args.runs, work)
        scale = [throughput(oracle, env, work, w) for w in (1, 2, 4, 8)]
    result = {
        "machine": machine(),
        "runs": args.runs,
        "trivial_task_s": round(statistics.median(runs), 3),
        "trivial_task_timings_s": phases,
        "help_s": round(statistics.median(helps), 3),
        "throughput": scale,
    }
    lines = [
        f"{machine()}, {args.runs} runs, medians",
        "",
        f"- trivial task end to end (`codebot dry-run`, sandboxed lint + tests: the baseline, "
        f"then the fix checked in a fresh sandbox, the verification): {result['trivial_task_s']} s",
        "  - run.json `timings`, medians (environment and sandbox_ready: since the run's start, "
        "after imports, configuration and clone; the others: durations): "
        + ", ".join(f"{k.removesuffix('_s')} {v} s" for k, v in phases.items()),
        f"- `codebot --help`: {result['help_s']} s",
        "",
        "| workers | 8 tasks (s) | passed | tasks/min | peak RSS of one worker (MB) |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {s['workers']} | {s['wall_s']} | {s['passed']} | {s['tasks_per_min']} "
            f"| {s['peak_rss_mb']} |"
            for s in scale
        ),
    ]
    save_figures(args.out, "speed", "\n".join(lines), result)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
