"""The run record as files: run.json, pr.md, patch.diff, prompt.md.

The PR body is rendered from the same record as run.json, and everything written passes
through the Redactor, so no file can say something the record does not, or leak a secret.
Text in the body that the model or an issue wrote is redacted first, then made safe to show
(codebot.prose): escaped text would no longer match the redactor.

Over 400 lines: every section of the PR body goes through the one redact-then-escape path
(`_Untrusted`) defined here; a section elsewhere could skip it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codebot import pr_history, prose, stops
from codebot.edits import is_test_path
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


@dataclass(frozen=True)
class _Untrusted:
    """Shows text the model or an issue wrote: redacted first, then neutralised."""

    redact: Callable[[str], str]

    def line(self, text: object) -> str:
        return prose.inline(self.redact(str(text)))

    def cell(self, text: object) -> str:
        return prose.cell(self.redact(str(text)))

    def code(self, text: object) -> str:
        return prose.code_cell(self.redact(str(text)))


def _unchanged(text: str) -> str:
    return text


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
    body = render_pr_body(record, patch, issue, earlier, redact=redact)
    files.pr_md.write_text(redact(body), encoding="utf-8")
    files.patch.write_text(redact(patch), encoding="utf-8")
    transcript = "\n\n".join(f"## {m.role}\n\n{m.content}" for m in prompt)
    files.prompt.write_text(prose.well_formed(redact(transcript)) + "\n", encoding="utf-8")
    return files


def read_run(directory: Path) -> dict[str, Any]:
    """A run's run.json as data (`codebot resume`, `show`, `runs`), or a ConfigError naming
    the file and what is wrong with it."""
    path = directory / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", "pass a run directory or run id") from None
    if not isinstance(data, dict) or "run_id" not in data:
        raise ConfigError(f"{path} is not a codebot run record", "pass a run directory")
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
    *,
    redact: Callable[[str], str] = _unchanged,
) -> str:
    """The PR body; `earlier` are the runs the PR's current body lists (see pr_history).
    Only codebot's own lines carry markup that acts: its `Closes #N` and its run history."""
    spec, safe = record.spec, _Untrusted(redact)
    status = "✅" if record.passed else "⚠️"
    lines = [
        f"## {safe.line(spec['title'])}",
        "",
        f"{status} **{stops.text(record.stop_reason)}** — {safe.line(record.stop_detail)}",
        "",
    ]
    current = pr_history.summary_of(record, " ".join(_explanations(record, safe)))
    summary = _whole_summary(record, earlier, safe)
    if summary:
        lines += ["### What changed and why", "", *summary, ""]
    lines += _changes_table(patch, safe)
    lines += _final_checks(record, safe)
    lines += _base_section(record, [*earlier, current], safe)
    if spec.get("acceptance"):
        lines += ["### Acceptance criteria (for the reviewer)", ""]
        lines += [f"- [ ] {safe.line(a)}" for a in spec["acceptance"]] + [""]
    lines += _grounded_in(record, safe)
    lines += _test_integrity(record, patch, safe)
    lines += _run_table(record, safe)
    if record.notes:
        lines += ["### Notes", "", *(f"- {safe.line(n)}" for n in record.notes), ""]
    lines += _iteration_log(record, safe)
    if issue is not None:
        lines += [f"Closes #{issue}", ""]
    history = pr_history.render(earlier, current)
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


def _explanations(record: RunRecord, safe: _Untrusted) -> list[str]:
    """The model's own explanation of each iteration whose edits were applied, in order;
    redacted before it is cut, so the cut cannot leave half a secret the redactor misses."""
    said = [
        explanation(safe.redact(it.reply))
        for it in record.iterations
        if any(e.status == "applied" for e in it.edits)
    ]
    return [s for s in dict.fromkeys(said) if s]


def _whole_summary(
    record: RunRecord, earlier: Sequence[pr_history.RunSummary], safe: _Untrusted
) -> list[str]:
    """What every run on the PR changed and why: the earlier runs' explanations (kept in the
    body's run history) and this run's, so a follow-up does not erase the fix's."""
    before = [(r.run_id, r.kind, r.explanation) for r in earlier if r.explanation]
    said = _explanations(record, safe)
    if not before:
        if len(said) <= 1:
            return prose.quoted(said[0]) if said else []
        return [f"- {prose.inline(s)}" for s in said]
    lines = [f"- run `{run_id}` ({kind}): {safe.line(text)}" for run_id, kind, text in before]
    if said:
        lines.append(f"- run `{record.run_id}` (this run): {prose.inline(' '.join(said))}")
    return lines


def _base_section(
    record: RunRecord, runs: Sequence[pr_history.RunSummary], safe: _Untrusted
) -> list[str]:
    """The base branch's checks; on a rerun or follow-up (which began on the PR branch), as
    the first run that began on the base saw them, then this run's start."""
    if not record.continued:
        return _checks_section("Checks before any change (baseline)", record.baseline, safe)
    run_id, base = pr_history.base_checks(runs)
    lines: list[str] = []
    if base:
        rows = [
            f"| {c.name} | {'✅ passed' if c.passed else '❌ ' + safe.cell(c.reason or 'failed')} "
            f"| {_num(c.tests_passed)} | {_num(c.tests_failed)} |"
            for c in base
        ]
        head = ["| check | result | tests passed | tests failed |", "| --- | --- | --- | --- |"]
        lines += [f"### Checks on the base branch (run `{run_id}`)", "", *head, *rows, ""]
    title = "Checks at the start of this run (the pull request's branch)"
    return lines + _checks_section(title, record.baseline, safe)


def _changes_table(patch: str, safe: _Untrusted) -> list[str]:
    stats = diff_stats(patch)
    if not stats:
        return ["### Changes", "", "No file was changed.", ""]
    rows = [f"| {safe.code(path)} | +{a} | −{d} |" for path, (a, d) in stats.items()]
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


def _final_checks(record: RunRecord, safe: _Untrusted) -> list[str]:
    """The committed tree's checks in a fresh sandbox; without a commit, the last checks the
    loop ran, said as such."""
    if record.final_checks:
        title = "Checks on the committed change (fresh sandbox)"
        return _checks_section(title, record.final_checks, safe)
    last = next((it.checks for it in reversed(record.iterations) if it.checks), ())
    return _checks_section("Checks on the last change tried (nothing was committed)", last, safe)


_POLICY = {
    "may_add": "new test files only; existing tests, `conftest.py` and test configuration "
    "could not be changed",
    "may_edit": "the model could change tests: review every test file below",
    "frozen": "no test file could be added, changed or deleted",
}


def _grounded_in(record: RunRecord, safe: _Untrusted) -> list[str]:
    """The team knowledge the model was shown (codebot.knowledge), each source once, in the
    order first shown: a reviewer can check the change against the rules it was given."""
    prompts: dict[tuple[str, str], list[int]] = {}
    for g in record.grounding:
        shown = prompts.setdefault((g.source, g.heading), [])
        if g.iteration not in shown:
            shown.append(g.iteration)
    lines = []
    for (source, heading), when in prompts.items():
        url = source.startswith(("https://", "http://"))
        where = safe.line(source) if url else safe.code(source)
        said = f" — {safe.line(heading)}" if heading.strip() else ""
        turns = ", ".join("first prompt" if n == 0 else f"feedback on iteration {n}" for n in when)
        lines.append(f"- {where}{said} ({turns})")
    return ["### Grounded in", "", *lines, ""] if lines else []


def _test_integrity(record: RunRecord, patch: str, safe: _Untrusted) -> list[str]:
    """What the run did to tests, and under which rule (README "Security model")."""
    policy = str(record.spec.get("tests") or "may_add")
    tests = [f for f in diff_stats(patch) if is_test_path(f)]
    added = [f for f in tests if f in _new_files(patch)]
    changed = [f for f in tests if f not in added]
    lines = ["### Test integrity", "", f"- Policy `{policy}`: {_POLICY.get(policy, policy)}."]
    if added:
        lines.append(f"- Test files added: {', '.join(safe.code(f) for f in added)}.")
    if changed:
        lines.append(
            f"- Test files changed or deleted: {', '.join(safe.code(f) for f in changed)}."
        )
    if not tests:
        lines.append("- No test file was added or changed.")
    return [*lines, ""]


def _new_files(patch: str) -> set[str]:
    found, current = set(), None
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            current = line.split(" b/", 1)[-1]
        elif current and line.startswith("new file mode"):
            found.add(current)
    return found


def _checks_section(title: str, checks: Sequence[CheckResult], safe: _Untrusted) -> list[str]:
    if not checks:
        return []
    rows = [
        "| check | command | result | tests passed | tests failed | time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in checks:
        result = "✅ passed" if c.passed else f"❌ {safe.cell(c.reason or 'failed')}"
        failed = None if c.tests_failed is None else c.tests_failed + (c.tests_errors or 0)
        rows.append(
            f"| {c.name} | {safe.code(c.command)} | {result} | {_num(c.tests_passed)} "
            f"| {_num(failed)} | {c.duration_s:.1f}s |"
        )
    return [f"### {title}", "", *rows, ""]


def _run_table(record: RunRecord, safe: _Untrusted) -> list[str]:
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
        f"| {iterations} | {safe.code(record.model)} "
        f"| {u.prompt_tokens:,} / {u.completion_tokens:,} | {cost} "
        f"| {'' if total is None else f'{total:.1f}s'} | `{record.run_id}` |",
        "",
        *(f"The endpoint refused a request option: {note}." for note in record.model_adjustments),
        *([""] if record.model_adjustments else []),
        *_cost_cap(record),
        *_rungs(record, safe),
        *_candidates(record, safe),
    ]


def _candidates(record: RunRecord, safe: _Untrusted) -> list[str]:
    """Best-of-N (codebot.candidates): per iteration, which candidate went on and how the
    others did. Their edits were undone; only the chosen one's are in this PR."""
    rows = []
    for it in record.iterations:
        if not it.candidates:
            continue
        several = len({c.rung for c in it.candidates if c.rung}) > 1  # across rungs
        said = "; ".join(
            f"{'**' if c.chosen else ''}{c.index}"
            f"{f' ({safe.code(c.rung)})' if several and c.rung else ''}: {c.outcome}"
            f"{'' if c.failing_tests is None else f', {c.failing_tests} failing'}"
            f"{'' if c.cost_usd is None else f', ${c.cost_usd:.4f}'}{'**' if c.chosen else ''}"
            for c in it.candidates
        )
        rows.append(f"- iteration {it.number}: {said}")
    if not rows:
        return []
    n = max(len(it.candidates) for it in record.iterations)
    head = f"Best of {n}: each iteration asked for {n} replies and kept the one in bold"
    return [f"{head} (the others' edits were undone and are not in this change):", *rows, ""]


def _cost_cap(record: RunRecord) -> list[str]:
    """The run's dollar cap, which no model call could pass (codebot.decisions.StopRules)."""
    cap = (record.spec.get("budget") or {}).get("max_cost_usd")
    if cap is None:
        return []
    return [
        f"Cost cap: ${cap:.4f} for the run; no call was made whose worst case (its prompt and "
        "a reply of `max_tokens`, at the model's price) would have passed it.",
        "",
    ]


def _rungs(record: RunRecord, safe: _Untrusted) -> list[str]:
    """On a model ladder (codebot.ladder): which rung wrote the final change, and what each
    rung spent against its own cap."""
    if len(record.rungs) < 2:
        return []
    changed = [it for it in record.iterations if any(e.status == "applied" for e in it.edits)]
    final = changed[-1].rung if changed else ""
    model = next((r.model for r in record.rungs if r.name == final), "")
    said = (
        f"the final change came from rung {safe.code(final)} ({safe.code(model)})."
        if final
        else "no rung produced a change."
    )
    rows = [
        f"| {safe.code(r.name)} | {safe.code(r.model)} | {r.calls} "
        f"| {r.usage.prompt_tokens:,} / {r.usage.completion_tokens:,} "
        f"| {'unknown' if r.cost_usd is None else f'${r.cost_usd:.4f}'} "
        f"| {'–' if r.max_cost_usd is None else f'${r.max_cost_usd:.4f}'} |"
        for r in record.rungs
    ]
    head = "| rung | model | calls | tokens (prompt / completion) | cost | rung cap |"
    return [f"Model ladder: {said}", "", head, "| --- | --- | --- | --- | --- | --- |", *rows, ""]


def _iteration_log(record: RunRecord, safe: _Untrusted) -> list[str]:
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
            f"   - refused {safe.line(e.path)} (block {e.block}): "
            f"{prose.inline(clip(safe.redact(e.detail), 200))}"
            for e in refused
        ]
    return [*out, "", "</details>", ""]


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
