"""Whole open-source projects, as a new user would try codebot on them.

Each project is downloaded as its sdist from PyPI (the one network access; the sandbox has
none), a known bug is put into one function, and a dry-run is driven by the built-in oracle,
which answers with the right fix (first with drifted line numbers, then exact). A project
passes when the run ends `passed` in one call. This measures the bot, not a model: whether
the right file is in the first prompt, whether a correct reply applies, whether the checks
judge it fairly (pre-existing lint, hundreds of tests), and how long it all takes.

    python benchmarks/real_projects.py            # writes benchmarks/results/real_projects.*
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codebot import config as cfg  # noqa: E402
from codebot import context  # noqa: E402
from codebot.bench import machine, shown_in_prompt  # noqa: E402
from codebot.feedback import feedback_for_model  # noqa: E402
from codebot.local import RunRequest, execute  # noqa: E402
from codebot.oracle import OracleServer  # noqa: E402
from codebot.spec import load_spec  # noqa: E402


@dataclass(frozen=True)
class Project:
    name: str
    version: str
    path: str  # the file the bug goes into
    good: str  # the text as released
    bad: str  # the bug
    title: str
    description: str
    test: str


PROJECTS = (
    Project(
        "click", "8.1.7", "src/click/utils.py",
        "        if total_length > max_length:  # too long, truncate",
        "        if total_length >= max_length:  # too long, truncate",
        "Short help is truncated although it fits",
        "make_default_short_help adds '...' to a help text whose length is exactly the "
        "maximum; it should only truncate when the text is longer than max_length.",
        "PYTHONPATH=src python3 -m pytest -q tests",
    ),
    Project(
        "sqlparse", "0.5.1", "sqlparse/__init__.py",
        "    return [str(stmt).strip() for stmt in stack.run(sql, encoding)]",
        "    return [str(stmt) for stmt in stack.run(sql, encoding)]",
        "split() keeps whitespace around statements",
        "sqlparse.split('select 1; select 2;') returns ' select 2;' with its leading space; "
        "each statement should come back stripped.",
        "python3 -m pytest -q tests",
    ),
    Project(
        "more-itertools", "10.5.0", "more_itertools/more.py",
        "    for item in iterable:\n        return item\n    if default is _marker:",
        "    for item in iterable:\n        pass\n    if default is _marker:",
        "first() does not return the first item",
        "more_itertools.first([0, 1, 2]) raises or returns the default instead of 0.",
        "python3 -m pytest -q tests",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    project: str
    lines: int
    tests_at_baseline: int
    failing_at_baseline: int
    stop_reason: str
    calls: int
    first_prompt_tokens: int
    bug_file_in_first_prompt: bool
    verified: str
    wall_s: float
    prompt_s: float  # the first prompt, built after the baseline with its files parsed ahead
    prompt_unparsed_s: float  # the same gather afterwards, parsing every file then


def prepare(project: Project, work: Path) -> tuple[Path, str]:
    """The released sdist as a git repo with the bug committed; the fixing diff."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         f"{project.name}=={project.version}", "-d", str(work)],
        check=True, capture_output=True,
    )  # fmt: skip
    (archive,) = work.glob(f"{project.name.replace('-', '?')}-{project.version}.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    repo = work / f"{archive.name.removesuffix('.tar.gz')}"
    target = repo / project.path
    text = target.read_text(encoding="utf-8")
    assert text.count(project.good) == 1, f"{project.name}: the release text is not unique"
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    target.write_text(text.replace(project.good, project.bad), encoding="utf-8")
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "release, with a bug"], cwd=repo, check=True)
    target.write_text(text, encoding="utf-8")
    diff = subprocess.run([*git, "diff"], cwd=repo, check=True, capture_output=True, text=True)
    subprocess.run([*git, "checkout", "-q", "--", "."], cwd=repo, check=True)
    return repo, diff.stdout


def run(project: Project, work: Path, image: str) -> Outcome:
    repo, fix = prepare(project, work)
    lines = sum(
        len(p.read_text(encoding="utf-8", errors="replace").splitlines())
        for p in repo.rglob("*.py")
    )
    spec = work / "spec.json"
    fields = {"title": project.title, "description": project.description, "test": project.test}
    spec.write_text(json.dumps({**fields, "max_iterations": 2, "timeout": 600}))
    with OracleServer() as oracle:
        oracle.register(project.title, fix)
        env = {"OPENAI_BASE_URL": oracle.base_url, "CODEBOT_MODEL": "oracle",
               "CODEBOT_SANDBOX_IMAGE": image}  # fmt: skip
        settings = replace(cfg.from_env(env), runs_dir=work / "runs")
        t0 = time.monotonic()
        outcome = execute(RunRequest(spec, repo, settings), env=env)
        wall = time.monotonic() - t0
    record = outcome.record
    test = next(c for c in record.baseline if c.name == "test")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.split()
    failure = feedback_for_model(record.baseline, settings.feedback_tokens)
    began = time.monotonic()
    context.gather(repo, tracked, load_spec(spec), failure, settings.context_tokens)
    unparsed = time.monotonic() - began
    final = ", ".join(f"{c.name} {'passed' if c.passed else 'failed'}" for c in record.final_checks)
    prompt = outcome.files.prompt.read_text(encoding="utf-8")
    return Outcome(
        project=f"{project.name} {project.version}",
        lines=lines,
        tests_at_baseline=sum(
            x or 0 for x in (test.tests_passed, test.tests_failed, test.tests_errors)
        ),
        failing_at_baseline=(test.tests_failed or 0) + (test.tests_errors or 0),
        stop_reason=record.stop_reason,
        calls=len(record.iterations),
        first_prompt_tokens=record.iterations[0].usage.prompt_tokens if record.iterations else 0,
        bug_file_in_first_prompt=shown_in_prompt(prompt, project.path),
        verified=final or "not run",
        wall_s=round(wall, 1),
        prompt_s=round(record.timings.get("prompt_s", 0.0), 2),
        prompt_unparsed_s=round(unparsed, 2),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", default=cfg.DEFAULT_IMAGE)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    results = []
    for project in PROJECTS:
        with tempfile.TemporaryDirectory(prefix=f"codebot-real-{project.name}-") as tmp:
            results.append(run(project, Path(tmp), args.image))
            print(results[-1], file=sys.stderr)
    head = (
        "| project | .py lines | tests | failing at baseline | stop | calls "
        "| first prompt tokens | bug file in first prompt | fresh-sandbox checks | wall (s) "
        "| first prompt built (s) | without parsing ahead (s) |"
    )
    rows = [head, "|" + " --- |" * 12]
    rows += [
        f"| {r.project} | {r.lines:,} | {r.tests_at_baseline} | {r.failing_at_baseline} "
        f"| {r.stop_reason} | {r.calls} | {r.first_prompt_tokens:,} "
        f"| {'yes' if r.bug_file_in_first_prompt else 'no'} | {r.verified} | {r.wall_s} "
        f"| {r.prompt_s} | {r.prompt_unparsed_s} |"
        for r in results
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real_projects.md").write_text(f"{machine()}\n\n" + "\n".join(rows) + "\n")
    (args.out / "real_projects.json").write_text(
        json.dumps({"machine": machine(), "results": [asdict(r) for r in results]}, indent=2) + "\n"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
