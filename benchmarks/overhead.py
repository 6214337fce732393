"""How much time codebot itself adds to a run, measured on the bundled example.

The model is a zero-latency scripted server (the one the tests use), so the figures are the
bot's: clone, sandbox start, sync, edits and bookkeeping. Reported as medians over --runs
runs, with per-check cost as a ratio to a plain `docker run --rm IMAGE <test command>` on the
same files, measured in the same process.

    python benchmarks/overhead.py --runs 5 [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codebot import config as cfg  # noqa: E402
from codebot.bench import save_figures  # noqa: E402
from codebot.local import RunRequest, execute  # noqa: E402
from tests.support.git_repos import make_repo  # noqa: E402
from tests.support.model_server import ScriptedModelServer  # noqa: E402
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT  # noqa: E402

EXAMPLE = ROOT / "specs" / "examples" / "parse-duration"
SPEC = ROOT / "specs" / "examples" / "parse-duration.yaml"


def one_run(work: Path, server: ScriptedModelServer) -> dict[str, float]:
    repo = make_repo(work / "repo", {p.name: p.read_text() for p in EXAMPLE.iterdir()})
    server.script(MINUTES_DIFF, VALIDATION_EDIT)
    settings = cfg.with_flags(
        cfg.from_env({"OPENAI_BASE_URL": server.base_url, "CODEBOT_MODEL": "bench"}),
        runs_dir=work / "runs",
    )
    t0 = time.perf_counter()
    outcome = execute(RunRequest(SPEC, repo, settings), env={})
    wall = time.perf_counter() - t0
    record = outcome.record
    assert record.passed, record.stop_detail
    checks = [c.duration_s for it in record.iterations for c in it.checks]
    overheads = [
        it.duration_s - it.model_s - sum(c.duration_s for c in it.checks)
        for it in record.iterations
    ]
    return {
        "wall_s": wall,
        "sandbox_ready_s": record.timings["sandbox_ready_s"],
        "per_iteration_overhead_s": statistics.median(overheads),
        "per_check_s": statistics.median(checks),
        "iterations": len(record.iterations),
    }


def docker_run_baseline(work: Path, image: str) -> float:
    """A plain one-shot container running the example's tests on the same files."""
    src = work / "plain"
    shutil.copytree(EXAMPLE, src)
    t0 = time.perf_counter()
    subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-v", f"{src}:/w:ro", "-w", "/w",
         "-e", "PYTHONDONTWRITEBYTECODE=1", image, "python3", "-m", "pytest", "-q",
         "-p", "no:cacheprovider"],
        capture_output=True, check=False,
    )  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    image = cfg.SandboxConfig().image
    runs, baselines = [], []
    with ScriptedModelServer() as server:
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="codebot-bench-") as tmp:
                runs.append(one_run(Path(tmp), server))
                baselines.append(docker_run_baseline(Path(tmp), image))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    base = statistics.median(baselines)
    result = {
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, cores={len(__import__('os').sched_getaffinity(0))}",
        "runs": args.runs,
        "medians": med,
        "docker_run_baseline_s": base,
        "check_cost_ratio_vs_docker_run": med["per_check_s"] / base,
    }
    rows = [
        ("whole run, zero-latency model (s)", med["wall_s"]),
        ("sandbox ready: clone + container + sync (s)", med["sandbox_ready_s"]),
        ("per-iteration overhead: iteration − model − checks (s)", med["per_iteration_overhead_s"]),
        ("one check in a running sandbox (s)", med["per_check_s"]),
        ("plain `docker run --rm` of the same tests (s)", base),
        ("check cost / docker run cost", result["check_cost_ratio_vs_docker_run"]),
    ]
    table = "| measure | median |\n| --- | --- |\n" + "\n".join(
        f"| {name} | {value:.3f} |" for name, value in rows
    )
    save_figures(args.out, "overhead", f"{result['machine']}, {args.runs} runs\n\n{table}", result)
    print(table)


if __name__ == "__main__":
    main()
