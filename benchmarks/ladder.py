"""A single strong model against a two-rung model ladder and best-of-3, on the quality tasks.

Every task of benchmarks/tasks runs as a dry-run (real sandbox, hidden-test judge, as
`codebot bench --oracle`) once per configuration, side by side in one run:

- strong: one model, the built-in oracle, priced like gpt-4.1 ($2 / $8 per million tokens);
- ladder, weak recovers: a weak rung (an oracle whose first answer misquotes the code, priced
  like gpt-4.1-nano, $0.10 / $0.40) with 2 calls, then the strong rung;
- ladder, weak escalates: the weak rung's first two answers are wrong, so every task needs
  the strong rung, which gets the task and the summary of what failed;
- best-of-3, weak: the weak model alone, asked for 3 candidates per iteration; like a model
  right in one sample of three, only the second candidate (seed 1) is right.
- best-of-3, checks one at a time / at once: only the third candidate (seed 2) is right, and
  the wrong ones are edits that apply and fix nothing, so each is checked; with one worker
  (`CODEBOT_CANDIDATE_WORKERS=1`, one after another in the run's sandbox), two and three
  (each in a place of its own, side by side).

Both oracles answer in no time, so the wall time is the bot's own (clone, sandbox, checks).
It reports, per configuration and task: solved, model calls (per rung), cost and wall time,
and writes benchmarks/results/ladder.{md,json}.

    python benchmarks/ladder.py [--only TASK ...] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codebot import bench  # noqa: E402
from codebot import config as cfg  # noqa: E402
from codebot.bench import save_figures  # noqa: E402
from codebot.oracle import OracleServer  # noqa: E402
from codebot.sandbox import ping  # noqa: E402

STRONG_PRICE = (2.00, 8.00)  # gpt-4.1's list price
WEAK_PRICE = (0.10, 0.40)  # gpt-4.1-nano's
WEAK_CALLS = 2


@dataclass(frozen=True)
class Config:
    """One column of the comparison: the environment its runs read their models from."""

    name: str
    env: dict[str, str]


def configs(
    strong: OracleServer,
    recovers: OracleServer,
    escalates: OracleServer,
    sampled: OracleServer,
    futile: OracleServer,
) -> list[Config]:
    def ladder(weak: OracleServer) -> dict[str, str]:
        rungs = [
            {"name": "weak", "model": "oracle-weak", "base_url": weak.base_url, "key_env": "",
             "iterations": WEAK_CALLS, "price_input": WEAK_PRICE[0], "price_output": WEAK_PRICE[1]},
            {"name": "strong", "model": "oracle-strong", "base_url": strong.base_url,
             "key_env": "", "price_input": STRONG_PRICE[0], "price_output": STRONG_PRICE[1]},
        ]  # fmt: skip
        return {**model_env(weak, "oracle-weak", WEAK_PRICE), "CODEBOT_LADDER": json.dumps(rungs)}

    return [
        Config("strong", model_env(strong, "oracle-strong", STRONG_PRICE)),
        Config("ladder, weak recovers", ladder(recovers)),
        Config("ladder, weak escalates", ladder(escalates)),
        Config(
            "best-of-3, weak",
            {**model_env(sampled, "oracle-weak", WEAK_PRICE), "CODEBOT_CANDIDATES": "3"},
        ),
        *(
            Config(
                f"best-of-3, checks {how}",
                {
                    **model_env(futile, "oracle-weak", WEAK_PRICE),
                    "CODEBOT_CANDIDATES": "3",
                    "CODEBOT_CANDIDATE_WORKERS": workers,
                },
            )
            for how, workers in (("one at a time", "1"), ("two at a time", "2"), ("at once", "3"))
        ),
    ]


def model_env(server: OracleServer, model: str, price: tuple[float, float]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "DOCKER_HOST")}
    return {
        **keep,
        "OPENAI_BASE_URL": server.base_url,
        "CODEBOT_MODEL": model,
        "CODEBOT_PRICE_INPUT": str(price[0]),
        "CODEBOT_PRICE_OUTPUT": str(price[1]),
        "CODEBOT_MODEL_RETRIES": "0",
    }


def run_one(task: bench.Task, config: Config, work: Path) -> dict[str, Any]:
    """One task under one configuration: the bench's dry-run and judge, and from the run
    record the calls each rung answered."""
    settings = cfg.from_env(config.env)
    result = bench.run_task(task, settings, work, config.env, lambda _: None)
    records = sorted((work / task.name).glob("*/run.json"))
    record = json.loads(records[-1].read_text()) if records else {}
    rungs = {r["name"]: r["calls"] for r in record.get("rungs", [])}
    return {
        "task": task.name,
        "solved": result.solved,
        "stop_reason": result.stop_reason if not result.error else f"error: {result.error}",
        "calls": sum(rungs.values()),
        "calls_by_rung": rungs,
        "cost_usd": result.cost_usd,
        "wall_s": result.wall_s,
    }


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_rung: dict[str, int] = {}
    for row in rows:
        for name, calls in row["calls_by_rung"].items():
            by_rung[name] = by_rung.get(name, 0) + calls
    return {
        "solved": sum(r["solved"] for r in rows),
        "tasks": len(rows),
        "calls": sum(r["calls"] for r in rows),
        "calls_by_rung": by_rung,
        "cost_usd": round(sum(r["cost_usd"] or 0.0 for r in rows), 6),
        "wall_s": round(sum(r["wall_s"] for r in rows), 1),
    }


def render(result: dict[str, Any]) -> str:
    names = [c["name"] for c in result["configs"]]
    lines = [
        "# Model ladder benchmark: one strong model, a two-rung ladder, best-of-3",
        "",
        f"{result['machine']}; {result['tasks']} tasks of benchmarks/tasks; oracle models "
        f"(weak ${WEAK_PRICE[0]:.2f} / ${WEAK_PRICE[1]:.2f}, strong ${STRONG_PRICE[0]:.2f} / "
        f"${STRONG_PRICE[1]:.2f} per million tokens in / out); weak rung: {WEAK_CALLS} calls; "
        f"{result['total_s']:.0f} s in all",
        "",
        "| configuration | solved | model calls (weak + strong) | cost | wall time (sum) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for config in result["configs"]:
        t = config["totals"]
        split = " + ".join(str(t["calls_by_rung"].get(r, 0)) for r in ("weak", "strong"))
        calls = f"{t['calls']} ({split})" if "weak" in t["calls_by_rung"] else str(t["calls"])
        lines.append(
            f"| {config['name']} | {t['solved']}/{t['tasks']} | {calls} | ${t['cost_usd']:.4f} "
            f"| {t['wall_s']:.1f} s |"
        )
    lines += ["", "Per task (calls, cost, wall time):", ""]
    lines += ["| task | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for n, row in enumerate(result["configs"][0]["rows"]):
        cells = []
        for config in result["configs"]:
            r = config["rows"][n]
            mark = "" if r["solved"] else f" ✗ {r['stop_reason']}"
            cells.append(f"{r['calls']}, ${r['cost_usd'] or 0:.4f}, {r['wall_s']:.1f} s{mark}")
        lines.append(f"| {row['task']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + LEGEND


LEGEND = """\
- solved: the task's hidden tests pass on the branch the run left (codebot bench's judge).
- model calls: replies the run paid for, by rung; cost at the prices above, from the tokens
  the oracle reports (about four characters a token).
- weak recovers: the weak oracle misquotes the code once (the edit is refused), then answers
  right on its second call, so the strong rung is never asked.
- weak escalates: the weak oracle is wrong on both of its calls; the ladder then sends the
  strong rung the task and one summary of the failures (not the weak replies' edits).
- best-of-3, weak: three weak candidates per iteration, asked at once; the first (seed 0) is
  wrong and is undone, the second passes, the third is paid for but never checked (with
  the default one worker per core, the third may be checked beside the second).
- best-of-3, checks one / two at a time / at once: the first two candidates add a comment
  line (the edit applies, the checks run and fail as before the change), the third is right.
  One at a time, each iteration checks three candidates in turn; two or three at a time, in
  places side by side (the run's own sandbox and one or two lanes, started while the baseline
  runs). Where a task's visible checks already pass before the change (a feature task judged
  by hidden tests), the comment-only candidate passes them and wins: marked ✗ here, alike in
  each of these columns.
- wall time: the runs alone (clone, sandbox, checks, verification), not the judge; the
  oracles answer at once, so a real model's latency comes on top.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=())
    parser.add_argument(
        "--columns", nargs="*", default=(), help="only the configurations whose name has one"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    tasks = bench.load_tasks(ROOT / "benchmarks" / "tasks", args.only)
    ping(cfg.SandboxConfig().image)
    t0 = time.monotonic()
    servers = [
        OracleServer(),
        OracleServer(wrong_first=1),
        OracleServer(wrong_first=WEAK_CALLS),
        OracleServer(right_seeds=frozenset({1})),
        OracleServer(right_seeds=frozenset({2}), applicable=True),
    ]
    for server in servers:
        server.start()
        for task in tasks:
            server.register(task.title, task.reference)
    try:
        columns = []
        for config in configs(*servers):
            if args.columns and not any(c in config.name for c in args.columns):
                continue
            with tempfile.TemporaryDirectory(prefix="codebot-ladder-") as tmp:
                rows = [run_one(task, config, Path(tmp)) for task in tasks]
            columns.append({"name": config.name, "rows": rows, "totals": totals(rows)})
            print(f"{config.name}: {columns[-1]['totals']}", flush=True)
    finally:
        for server in servers:
            server.stop()
    result = {
        "machine": bench.machine(),
        "tasks": len(tasks),
        "total_s": round(time.monotonic() - t0, 1),
        "prices_per_mtok": {"weak": WEAK_PRICE, "strong": STRONG_PRICE},
        "configs": columns,
    }
    save_figures(args.out, "ladder", render(result), result)
    print(render(result))


if __name__ == "__main__":
    main()
