"""`codebot show` and `codebot runs`: a past run, or the list of them, read back from run.json.

Only the record is read (never the repository or the sandbox), so a run can be looked at
anywhere its files were copied to; an interrupted run's checkpoint reads like any other.
The edits are parsed again from each iteration's reply (codebot.edits), the same parser the
run used, and shown as diffs. Rendering makes rich renderables; the CLI prints them, in
colour only on a terminal.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codebot import stops
from codebot.errors import ConfigError
from codebot.report import read_run

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

Data = Mapping[str, Any]


@dataclass(frozen=True)
class RunSummary:
    """One row of `codebot runs`."""

    run_id: str
    title: str
    outcome: str
    iterations: int
    cost_usd: float | None
    seconds: float | None
    started_at: str
    directory: Path


def runs_dirs(asked: Path | None, cwd: Path) -> list[Path]:
    """Where to look: `--runs-dir`, else the enclosing repository's `.git/codebot/runs` (local
    runs) and `./.codebot/runs` (GitHub runs, older runs), those that exist."""
    from codebot.configure import git_dir

    if asked is not None:
        return [asked.resolve()]
    here = cwd.resolve()
    top = next((d for d in (here, *here.parents) if (d / ".git").exists()), None)
    found = [git_dir(top) / "codebot" / "runs"] if top else []
    found.append(here / ".codebot" / "runs")
    return [d for d in found if d.is_dir()]


load = read_run  # a run's record, or a ConfigError naming the file and what is wrong


def summaries(dirs: Iterable[Path]) -> list[RunSummary]:
    """Every readable run under `dirs`, newest first (a run id starts with its time)."""
    found = []
    for top in dirs:
        for path in top.glob("*/run.json"):
            try:
                found.append(summary(load(path.parent), path.parent))
            except ConfigError:
                continue  # a run being written, or not ours: listed by no one
    return sorted(found, key=lambda r: (r.started_at, r.run_id), reverse=True)


def summary(data: Data, directory: Path) -> RunSummary:
    spec = data.get("spec") or {}
    timings = data.get("timings") or {}
    return RunSummary(
        run_id=str(data.get("run_id", directory.name)),
        title=str(spec.get("title", "")),
        outcome=str(data.get("stop_reason", "?")),
        iterations=len(data.get("iterations") or ()),
        cost_usd=data.get("cost_usd"),
        seconds=timings.get("total_s"),
        started_at=str(data.get("started_at", "")),
        directory=directory,
    )


def find(which: str, dirs: Sequence[Path]) -> Path:
    """The run directory `which` names: `latest`, a path, a run id or its unique prefix."""
    if (Path(which) / "run.json").is_file():
        return Path(which)
    known = summaries(dirs)
    where = ", ".join(str(d) for d in dirs) or "no runs directory here"
    if not known:
        raise ConfigError(f"no runs found ({where})", "pass --runs-dir DIR, or run one first")
    if which == "latest":
        return known[0].directory
    hits = [r for r in known if r.run_id.startswith(which)]
    if len(hits) != 1:
        said = "no run" if not hits else f"{len(hits)} runs"
        raise ConfigError(f"{said} match `{which}` in {where}", "`codebot runs` lists them")
    return hits[0].directory


def runs_table(rows: Sequence[RunSummary], width: int = 100) -> RenderableType:
    """One row per run within `width` columns: only the title gives way."""
    from rich.table import Table
    from rich.text import Text

    cells = [
        [r.run_id, r.title, r.outcome, str(r.iterations),
         "unknown" if r.cost_usd is None else f"${r.cost_usd:.4f}",
         "–" if r.seconds is None else f"{r.seconds:.0f}s", r.started_at[5:16].replace("T", " ")]
        for r in rows
    ]  # fmt: skip
    heads = ("run", "title", "outcome", "iters", "cost", "time", "started (UTC)")
    widths = [max([len(h), *(len(row[n]) for row in cells)]) for n, h in enumerate(heads)]
    room = max(8, width - sum(widths) + widths[1] - (len(heads) - 1))
    table = Table(box=None, pad_edge=False, collapse_padding=True, header_style="bold")
    for head in heads:
        table.add_column(head, no_wrap=True, justify="right" if head in _RIGHT else "left")
    for row, r in zip(cells, rows, strict=True):
        title = row[1] if len(row[1]) <= room else row[1][: room - 1] + "…"
        table.add_row(row[0], title, Text(row[2], _style(r.outcome)), *row[3:])
    return table


_RIGHT = ("iters", "cost", "time")


def render(data: Data) -> list[RenderableType]:
    """The whole run, top to bottom: the task, the checks before any change, each
    iteration (its edits as diffs, refusals, checks), how it ended and what it spent."""
    from rich.text import Text

    spec = data.get("spec") or {}
    head = Text(f"run {data.get('run_id')}: ", style="bold")
    head.append(_outcome(str(data.get("stop_reason"))), _style(data.get("stop_reason")))
    out: list[RenderableType] = [head, *_task(spec, data)]
    out += _checks("baseline (before any change)", data.get("baseline") or ())
    for it in data.get("iterations") or ():
        out += _iteration(it)
    out += _checks(
        "final checks (the committed tree, fresh sandbox)", data.get("final_checks") or ()
    )
    out += _ending(data)
    return out


def _task(spec: Data, data: Data) -> list[RenderableType]:
    from rich.text import Text

    lines: list[RenderableType] = [Text(f"task: {spec.get('title', '')}", style="bold")]
    lines += [Text(f"  {line}") for line in str(spec.get("description", "")).splitlines()[:12]]
    lines += [Text(f"  - [ ] {a}") for a in spec.get("acceptance") or ()]
    facts = (
        ("repo", data.get("repo")), ("base", f"{data.get('base_ref')} {data.get('base_commit')}"),
        ("branch", data.get("branch")), ("model", data.get("model")), ("test", spec.get("test")),
        ("max iterations", spec.get("max_iterations")), ("environment", data.get("environment")),
    )  # fmt: skip
    lines += [Text(f"  {name}: {value}", style="dim") for name, value in facts if value]
    return lines


def _checks(title: str, checks: Sequence[Data], indent: str = "  ") -> list[RenderableType]:
    from rich.text import Text

    if not checks:
        return []
    out: list[RenderableType] = [Text(title, style="bold")]
    for c in checks:
        line = Text(indent)
        line.append("✓" if c.get("passed") else "✗", "green" if c.get("passed") else "red")
        line.append(f" {c.get('name')}: `{c.get('command')}`")
        line.append(f" {c.get('reason') or ('passed' if c.get('passed') else 'failed')}")
        line.append(f" ({float(c.get('duration_s') or 0):.1f}s)", "dim")
        out.append(line)
        failing = c.get("failing_tests") or ()
        out += [Text(f"{indent}    failing: {t.get('name')}", "red") for t in failing]
    return out


def _iteration(it: Data) -> list[RenderableType]:
    from rich.text import Text

    from codebot.edits import parse_edits

    usage = it.get("usage") or {}
    head = Text(f"iteration {it.get('number')}", style="bold")
    head.append(
        f"  {usage.get('total_tokens', 0):,} tokens, {_cost(it.get('cost_usd'))}, model "
        f"{float(it.get('model_s') or 0):.1f}s, {float(it.get('duration_s') or 0):.1f}s in all; "
        f"{it.get('decision')}",
        "dim",
    )
    out: list[RenderableType] = [head]
    outcomes = {int(e.get("block", 0)): e for e in it.get("edits") or ()}
    edits = parse_edits(str(it.get("reply", ""))).edits
    if not edits:
        said = " ".join(str(it.get("reply", "")).split())
        out.append(Text(f"  no edits; the reply: {said[:300]}", "yellow"))
    for edit in edits:
        outcome = outcomes.get(edit.block) or {"status": "not applied (a repeat)", "detail": ""}
        status = str(outcome.get("status"))
        line = Text(f"  {edit.path} (block {edit.block}): ")
        line.append(status, {"refused": "red", "applied": "green"}.get(status, "yellow"))
        line.append(f" {outcome.get('detail', '')}"[:400], "dim")
        out.append(line)
        out += [_diff_line(d) for d in _diff(edit.path, edit.search, edit.replace, edit.delete)]
    return out + _checks("  checks", it.get("checks") or (), indent="    ")


def _diff(path: str, before: str, after: str, delete: bool) -> list[str]:
    new = [] if delete else after.splitlines()
    lines = difflib.unified_diff(before.splitlines(), new, f"a/{path}", f"b/{path}", lineterm="")
    return [f"    {line}" for line in lines]


def _diff_line(line: str) -> Text:
    from rich.text import Text

    body = line.strip()
    if body.startswith(("+++", "---")):
        return Text(line, "bold")
    style = {"+": "green", "-": "red", "@": "cyan"}.get(body[:1], "")
    return Text(line, style)


def _ending(data: Data) -> list[RenderableType]:
    from rich.text import Text

    usage = data.get("usage") or {}
    timings = data.get("timings") or {}
    end = Text("stopped: ", style="bold")
    end.append(f"{data.get('stop_reason')}", _style(data.get("stop_reason")))
    end.append(f" ({data.get('stop_detail')})")
    spent = (
        f"tokens: {usage.get('prompt_tokens', 0):,} prompt + "
        f"{usage.get('completion_tokens', 0):,} completion; {_cost(data.get('cost_usd'), 'cost ')}"
    )
    times = ", ".join(f"{k.removesuffix('_s')} {float(v):.1f}s" for k, v in timings.items())
    out: list[RenderableType] = [end, Text(spent), Text(f"timings: {times or 'none recorded'}")]
    if data.get("files_changed"):
        out.append(Text(f"files changed: {', '.join(data['files_changed'])}"))
    if data.get("head_commit"):
        out.append(Text(f"commit: {data['head_commit']} on {data.get('branch')}"))
    out += [Text(f"note: {n}", "dim") for n in data.get("notes") or ()]
    return out


def _outcome(reason: str) -> str:
    return f"{reason} ({stops.text(reason)})" if reason in stops.STOPS else reason


def _style(reason: object) -> str:
    return "green" if reason in ("passed", "nothing_to_do") else "yellow"


def _cost(value: object, known: str = "") -> str:
    return f"{known}${float(value):.4f}" if isinstance(value, (int, float)) else "cost unknown"
