"""The run record as files: run.json, pr.md, patch.diff, prompt.md.

The PR body is rendered from the same record as run.json, and everything written passes
through the Redactor, so no file can say something the record does not, or leak a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codebot import pr_history, stops
from codebot.errors import ConfigError
from codebot.records import CheckResult, Message, RunRecord, to_jsonable
from codebot.text import clip


@dataclass(frozen=True)
class RunFiles:
    directory: Path
    run_json: Path
    pr_md: Path
    patch: Path
    prompt: Path


def write_run(
    directory: Path,
    record: RunRecord,
    patch: str,
    prompt: Sequence[Message],
    redact: Callable[[str], str],
    issue: int | None = None,
    earlier: Sequence[pr_history.RunSummary] = (),
) -> RunFiles:
    directory.mkdir(parents=True, exist_ok=True)
    files = RunFiles(
        directory,
        directory / "run.json",
        directory / "pr.md",
        directory / "patch.diff",
        directory / "prompt.md",
    )
    data = _redact_tree(to_jsonable(record), redact)
    data["passed"] = record.passed
    files.run_json.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    body = render_pr_body(record, patch, issue, earlier)
    files.pr_md.write_text(redact(body), encoding="utf-8")
    files.patch.write_text(redact(patch), encoding="utf-8")
    transcript = "\n\n".join(f"## {m.role}\n\n{m.content}" for m in prompt)
    files.prompt.write_text(redact(transcript) + "\n", encoding="utf-8")
    return files


def read_run(directory: Path) -> dict[str, Any]:
    """A run's run.json as data (for `codebot resume`), or a ConfigError saying why not."""
    path = directory / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", "pass a run directory") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a run record", "pass a run directory")
    return data


def write_checkpoint(directory: Path, record: RunRecord, redact: Callable[[str], str]) -> None:
    """run.json for a run still in progress; replaced atomically so it is never half-written."""
    directory.mkdir(parents=True, exist_ok=True)
    data = _redact_tree(to_jsonable(record), redact)
    data["passed"] = False
    tmp = directory / "run.json.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(directory / "run.json")


def render_pr_body(
    record: RunRecord,
    patch: str,
    issue: int | None = None,
    earlier: Sequence[pr_history.RunSummary] = (),
) -> str:
    """The PR body; `earlier` are the runs the PR's current body lists (see pr_history)."""
    spec = record.spec
    status = "✅" if record.passed else "⚠️"
    lines = [
        f"## {_inline(spec['title'])}",
        "",
        f"{status} **{stops.text(record.stop_reason)}** — {_inline(record.stop_detail)}",
        "",
    ]
    summary = _summary(record)
    if summary:
        lines += ["### What changed and why", "", summary, ""]
    lines += _changes_table(patch)
    final_checks = record.iterations[-1].checks if record.iterations else ()
    lines += _checks_section("Checks on the final change", final_checks)
    lines += _checks_section("Checks before any change (baseline)", record.baseline)
    if spec.get("acceptance"):
        lines += ["### Acceptance criteria (for the reviewer)", ""]
        lines += [f"- [ ] {_inline(a)}" for a in spec["acceptance"]] + [""]
    lines += _run_table(record)
    lines += _iteration_log(record)
    if issue is not None:
        lines += [f"Closes #{issue}", ""]
    history = pr_history.render(earlier, pr_history.summary_of(record))
    lines += history[:-1]
    lines += [
        "<sub>Opened by codebot. Code was written by an LLM and checked in a sandbox; "
        "review it like any other contribution.</sub>",
        history[-1],
    ]
    return "\n".join(lines) + "\n"


def explanation(reply: str, limit: int = 800) -> str:
    """The prose a reply gives before its first edit block."""
    cut = len(reply)
    for marker in ("<<<<<<<", "```"):
        pos = reply.find(marker)
        if pos >= 0:
            cut = min(cut, pos)
    head = reply[:cut].rstrip().splitlines()
    if head and re.fullmatch(r"[`*]*[\w./-]+\.\w+[`*]*:?", head[-1].strip()):
        head = head[:-1]  # the file path line that introduces the first block
    text = "\n".join(head).strip()
    return clip(text, limit)


def _summary(record: RunRecord) -> str:
    """The model's own explanation of each iteration whose edits were applied, in order."""
    said = [
        explanation(it.reply)
        for it in record.iterations
        if any(e.status == "applied" for e in it.edits)
    ]
    said = [s for s in dict.fromkeys(said) if s]
    if len(said) <= 1:
        return said[0] if said else ""
    return "\n".join(f"- {_inline(s)}" for s in said)


def _changes_table(patch: str) -> list[str]:
    stats = diff_stats(patch)
    if not stats:
        return ["### Changes", "", "No file was changed.", ""]
    rows = [f"| `{path}` | +{a} | −{d} |" for path, (a, d) in stats.items()]
    return ["### Changes", "", "| file | added | removed |", "| --- | --- | --- |", *rows, ""]


def diff_stats(patch: str) -> dict[str, tuple[int, int]]:
    stats: dict[str, tuple[int, int]] = {}
    current = None
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            current = line.split(" b/", 1)[-1]
            stats[current] = (0, 0)
        elif current and line.startswith("+") and not line.startswith("+++"):
            a, d = stats[current]
            stats[current] = (a + 1, d)
        elif current and line.startswith("-") and not line.startswith("---"):
            a, d = stats[current]
            stats[current] = (a, d + 1)
    return stats


def _checks_section(title: str, checks: Sequence[CheckResult]) -> list[str]:
    if not checks:
        return []
    rows = [
        "| check | command | result | tests passed | tests failed | time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in checks:
        result = "✅ passed" if c.passed else f"❌ {_inline(c.reason or 'failed')}"
        failed = None if c.tests_failed is None else c.tests_failed + (c.tests_errors or 0)
        rows.append(
            f"| {c.name} | `{_inline(c.command)}` | {result} | {_num(c.tests_passed)} "
            f"| {_num(failed)} | {c.duration_s:.1f}s |"
        )
    return [f"### {title}", "", *rows, ""]


def _run_table(record: RunRecord) -> list[str]:
    u = record.usage
    cost = (
        "unknown (no price for this model)"
        if record.cost_usd is None
        else f"${record.cost_usd:.4f}"
    )
    total = record.timings.get("total_s")
    iterations = f"{len(record.iterations)} / {record.spec.get('max_iterations')}"
    return [
        "### Run",
        "",
        "| iterations | model | tokens (prompt / completion) | cost | wall time | run id |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| {iterations} | `{_inline(record.model)}` "
        f"| {u.prompt_tokens:,} / {u.completion_tokens:,} | {cost} "
        f"| {'' if total is None else f'{total:.1f}s'} | `{record.run_id}` |",
        "",
        *(f"The endpoint refused a request option: {note}." for note in record.model_adjustments),
        *([""] if record.model_adjustments else []),
    ]


def _iteration_log(record: RunRecord) -> list[str]:
    if not record.iterations:
        return []
    out = ["<details><summary>Iteration log</summary>", ""]
    for it in record.iterations:
        applied = sum(e.status != "refused" for e in it.edits)
        refused = [e for e in it.edits if e.status == "refused"]
        checks = (
            ", ".join(f"{c.name} {'passed' if c.passed else 'failed'}" for c in it.checks)
            or "not run"
        )
        out.append(
            f"{it.number}. {applied} edit(s) applied, {len(refused)} refused; checks: {checks}; "
            f"{it.usage.total_tokens:,} tokens; {it.duration_s:.1f}s"
        )
        out += [
            f"   - refused {e.path} (block {e.block}): {_inline(e.detail)[:200]}" for e in refused
        ]
    return [*out, "", "</details>", ""]


def _inline(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _num(value: int | None) -> str:
    return "–" if value is None else str(value)


def _redact_tree(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redact_tree(v, redact) for v in value]
    if isinstance(value, dict):
        return {k: _redact_tree(v, redact) for k, v in value.items()}
    return value
