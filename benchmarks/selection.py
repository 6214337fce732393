"""What test selection saves per iteration, on a repo whose suite takes a few seconds.

One sandbox, one baseline (a bug: one test fails), then rounds of two iterations each, with
and without selection interleaved: a wrong fix (the failing test still fails: selection
stops after the first pass) and the right fix (selection runs the first pass, then the full
suite). Reports the medians of each check's wall time and their ratio.

    python benchmarks/selection.py --rounds 5 [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codebot.bench import save_figures  # noqa: E402
from codebot.checks import Expectation, baseline_checks, run_checks  # noqa: E402
from codebot.config import SandboxConfig  # noqa: E402
from codebot.sandbox import DockerSandbox  # noqa: E402
from codebot.spec import TaskSpec  # noqa: E402

SLOW_FILES = 6  # each a test module of 0.5 s: the suite takes ~3 s
BUGGY = "def area(w, h):\n    return w + h\n"
WRONG = "def area(w, h):\n    return w * h + 1\n"
RIGHT = "def area(w, h):\n    return w * h\n"
TEST_AREA = "from calc import area\n\n\ndef test_area():\n    assert area(2, 3) == 6\n"
SLOW_TEST = "import time\n\n\ndef test_slow_{n}():\n    time.sleep(0.5)\n"
SPEC = TaskSpec(title="t", description="d", test="python3 -m pytest -q", lint=False)


def make_repo(root: Path) -> None:
    (root / "tests").mkdir()
    (root / "calc.py").write_text(BUGGY)
    (root / "tests" / "test_area.py").write_text(TEST_AREA)
    for n in range(SLOW_FILES):
        (root / "tests" / f"test_slow_{n}.py").write_text(SLOW_TEST.format(n=n))


def one_check(
    sandbox: DockerSandbox, root: Path, source: str, expect: Expectation, select: bool
) -> tuple[float, bool]:
    """Write `source` as the fix, sync it, run the checks; wall time and whether they passed."""
    (root / "calc.py").write_text(source)
    sandbox.sync(root, ["calc.py"])
    t0 = time.perf_counter()
    checks = run_checks(sandbox, SPEC, ["calc.py"], python_repo=True, expect=expect, select=select)
    return time.perf_counter() - t0, all(c.passed for c in checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    times: dict[str, list[float]] = {
        f"{fix}_{mode}": [] for fix in ("wrong", "right") for mode in ("selected", "full")
    }
    run_id = f"bench-selection-{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="codebot-selection-") as tmp,
        DockerSandbox.start(SandboxConfig(), run_id) as sandbox,
    ):
        root = Path(tmp)
        make_repo(root)
        sandbox.sync(root)
        (base,), expect = baseline_checks(sandbox, SPEC, python_repo=True)
        assert expect.first is not None and expect.first.failing, "no selection was learned"
        for k in range(args.rounds):
            for fix, source in (("wrong", WRONG), ("right", RIGHT)):
                modes = (True, False) if k % 2 == 0 else (False, True)  # interleaved
                for select in modes:
                    took, passed = one_check(sandbox, root, source, expect, select)
                    assert passed == (fix == "right"), (fix, select)
                    times[f"{fix}_{'selected' if select else 'full'}"].append(took)
    med = {key: statistics.median(values) for key, values in times.items()}
    pair_sel = med["wrong_selected"] + med["right_selected"]
    pair_full = med["wrong_full"] + med["right_full"]
    result = {
        "machine": f"{platform.machine()}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, cores={len(os.sched_getaffinity(0))}",
        "rounds": args.rounds,
        "suite": f"{SLOW_FILES + 1} test files, ~{SLOW_FILES * 0.5:.1f} s of tests; baseline "
        f"test check {base.duration_s:.2f} s",
        "medians_s": med,
        "ratio_wrong_fix": med["wrong_selected"] / med["wrong_full"],
        "ratio_right_fix": med["right_selected"] / med["right_full"],
        "ratio_wrong_then_right": pair_sel / pair_full,
        "raw_s": times,
    }
    rows = [
        ("wrong fix (test still fails)", med["wrong_full"], med["wrong_selected"]),
        ("right fix (all pass)", med["right_full"], med["right_selected"]),
        ("a run of both iterations", pair_full, pair_sel),
    ]
    table = "| iteration | full suite only (s) | with selection (s) | ratio |\n"
    table += "| --- | --- | --- | --- |\n"
    table += "\n".join(f"| {name} | {f:.2f} | {s:.2f} | {s / f:.2f} |" for name, f, s in rows)
    head = f"{result['machine']}; {result['suite']}; {args.rounds} rounds, median check wall time"
    save_figures(args.out, "selection", f"{head}\n\n{table}", result)
    print(f"{head}\n\n{table}")


if __name__ == "__main__":
    main()
