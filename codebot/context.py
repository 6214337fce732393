"""What the model sees, always within a token budget and inside the <untrusted> wrapper.

First prompt (`gather` -> `Context` -> `render_task`): the files the spec names (whole, or by
their relevant regions), then the files codebot.repomap ranks for the task (large ones by
their regions), the map of signatures for the rest, and the names of what was left out.
Later turns: `feedback_excerpts` (codebot.excerpts: what the model changed, where the checks
failed) and `render_requests` (codebot.show: what it asked to SHOW), re-exported here so the
loop asks one module for everything the model sees. Deterministic for a given tree.
About 430 lines: the first prompt's budget plan and its renderers share `_Plan`;
the pieces that stand alone already live in the modules named above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from codebot import prompts
from codebot import repomap as rm
from codebot.excerpts import feedback_excerpts
from codebot.outline import source_lines
from codebot.parsing import Ahead, Parsed
from codebot.records import EditOutcome
from codebot.render import (
    AROUND,
    Excerpt,
    Outline,
    entry_outline,
    file_block,
    make_excerpt,
    numbered,
    render_excerpt,
    render_outline,
    repository,
    shown_names,
    shown_path,
    untrusted,
)
from codebot.show import Request, render_requests, requests
from codebot.spec import TaskSpec
from codebot.tokens import count_tokens

if TYPE_CHECKING:
    from codebot.knowledge import Passage

__all__ = [
    "Context",
    "Excerpt",
    "Outline",
    "Request",
    "baseline_text",
    "check_output",
    "feedback_excerpts",
    "gather",
    "mentioned_paths",
    "numbered",
    "render_feedback",
    "render_files",
    "render_knowledge",
    "render_repository",
    "render_requests",
    "render_task",
    "requests",
    "shown_path",
    "system_prompt",
    "untrusted",
]

MAX_TREE_ENTRIES = 400
MAX_FILE_BYTES = 60_000  # a larger file is shown by its regions, never whole
MAX_READ_BYTES = 2_000_000  # a larger file is not read: listed by name only
MAX_READ_FILES = 5_000
FILES_SHARE, RANKED_SHARE, MAP_SHARE = 0.7, 1 / 3, 0.2  # of the budget left for files
SMALL_TOKENS = 150  # an unrelated non-code file this small may still be shown whole
NAMES_RESERVE = 200  # kept for the names of what is left out
_NO_CHECKS = "All checks pass before any change."


@dataclass(frozen=True)
class Context:
    """The first prompt's repository part. `omitted` lists left-out files by name (best
    first), `unlisted` counts those left out whose names did not fit either."""

    tree: tuple[str, ...]
    tree_omitted: int
    files: tuple[tuple[str, str], ...]
    omitted: tuple[str, ...]
    excerpts: tuple[Excerpt, ...] = ()
    outlines: tuple[Outline, ...] = ()
    unlisted: int = 0


@dataclass
class _Plan:
    """The context being filled; `left` is what the budget still allows for files."""

    left: int
    model: str | None
    files: list[tuple[str, str]]
    excerpts: list[Excerpt]
    outlines: list[Outline]

    def take(self, piece: str, limit: int) -> bool:
        cost = count_tokens(piece, self.model) + 1
        if cost > min(limit, self.left):
            return False
        self.left -= cost
        return True


def gather(
    root: Path,
    tracked: Sequence[str],
    spec: TaskSpec,
    failure_text: str,
    budget_tokens: int,
    *,
    model: str | None = None,
    exclude: Sequence[str] = (),
    parsed: Parsed | None = None,
) -> Context:
    """The context for the first prompt: `render_task(spec, ctx, baseline_text(failure_text))`
    is at most `budget_tokens` (by `count_tokens` for `model`) unless the task text alone is.
    `parsed`: the files parsed ahead (`parse_ahead`), for those that did not change since."""
    frames = rm.frames(failure_text, tracked)
    texts = _read_all(root, tracked, [*spec.files, *(f.path for f in frames)], exclude)
    named = tuple(f for f in spec.files if f in texts)
    entries = rm.rank(texts, rm.Task(_task_text(spec), named, frames), exclude, parsed)
    empty = Context((), 0, (), ())
    baseline = baseline_text(failure_text)
    frame_cost = count_tokens(render_task(spec, empty, baseline), model) + 16
    tree = _tree(tracked, exclude, (budget_tokens - frame_cost) // 5, model)
    plan = _Plan(budget_tokens - frame_cost - _cost(tree, model), model, [], [], [])
    lines = {e.path: [f.line for f in frames if f.path == e.path] for e in entries}
    _place(plan, entries, texts, lines, named, _agents(texts, spec))
    shown = {p for p, _ in plan.files} | {x.path for x in plan.excerpts}
    shown |= {o.path for o in plan.outlines}
    left = [e.path for e in entries if e.path not in shown]
    left += sorted(set(tracked) - set(texts) - set(left) - shown - _quiet(tracked, exclude))
    files, excerpts, outlines = tuple(plan.files), tuple(plan.excerpts), tuple(plan.outlines)
    ctx = Context(tree, len(tracked) - len(tree), files, (), excerpts, outlines)
    ctx = _listed(ctx, left, plan.left, model)
    return _within(ctx, spec, baseline, budget_tokens, model)


def parse_ahead(root: Path, tracked: Sequence[str], exclude: Sequence[str] = ()) -> Ahead:
    """The files `gather` ranks, read and parsed in the background from now on (while the
    sandbox starts and the baseline runs: codebot.parsing)."""
    files, skip = tuple(tracked), tuple(exclude)
    return Ahead(lambda: _read_all(root, files, [], skip))


def baseline_text(failure_text: str) -> str:
    """What the first prompt says about the checks before any change."""
    return check_output(failure_text) or _NO_CHECKS


def _task_text(spec: TaskSpec) -> str:
    return "\n".join([spec.title, spec.description, *spec.acceptance, *spec.files])


def _read_all(
    root: Path, tracked: Sequence[str], first: Sequence[str], exclude: Sequence[str]
) -> dict[str, str]:
    """The text of every tracked file worth ranking (`first` first): not noise unless named
    first, not binary, not a symlink, not huge."""
    known = set(tracked)
    first = [f for f in first if f in known]
    rest = [p for p in sorted(tracked) if not rm.is_noise(p, exclude)]
    texts: dict[str, str] = {}
    for path in list(dict.fromkeys(first + rest))[:MAX_READ_FILES]:
        text = _read_text(root / path)
        if text is not None:
            texts[path] = text
    return texts


def _read_text(path: Path) -> str | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_READ_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return None if rm.looks_binary(data) else data.decode("utf-8", errors="replace")


def _quiet(tracked: Sequence[str], exclude: Sequence[str]) -> set[str]:
    """Files never listed as left out: noise (the file list still names them)."""
    return {p for p in tracked if rm.is_noise(p, exclude)}


def _agents(texts: Mapping[str, str], spec: TaskSpec) -> str | None:
    """AGENTS.md, unless its text already reached the task (issue specs carry it)."""
    text = texts.get("AGENTS.md")
    return text if text and text.strip() not in spec.description else None


def _tree(
    tracked: Sequence[str], exclude: Sequence[str], limit: int, model: str | None
) -> tuple[str, ...]:
    """The file list, within `limit` tokens: noise is dropped first, then the end."""
    keep = sorted(tracked)[:MAX_TREE_ENTRIES]
    if len(keep) < len(tracked) or _cost(keep, model) > limit:
        keep = sorted(tracked, key=lambda p: (rm.is_noise(p, exclude), p))[:MAX_TREE_ENTRIES]
        while keep and _cost(keep, model) > limit:
            keep = keep[: len(keep) * 9 // 10]
    return tuple(sorted(keep))


def _cost(names: Sequence[str], model: str | None) -> int:
    return count_tokens("\n".join(shown_names(names)), model) if names else 0


def _place(
    plan: _Plan,
    entries: Sequence[rm.Entry],
    texts: Mapping[str, str],
    lines: Mapping[str, list[int]],
    named: Sequence[str],
    agents: str | None,
) -> None:
    """Fill the plan: `files:` first (whole, else by regions), AGENTS.md, the files related
    to the task (large ones by regions), then `_map_and_rest`."""
    content = plan.left
    by_path = {e.path: e for e in entries}
    for path in named:
        if not _whole(plan, path, texts[path], int(content * FILES_SHARE)):
            _excerpt(plan, by_path[path], texts[path], lines[path], int(content * FILES_SHARE))
    if agents is not None and "AGENTS.md" not in named:
        _whole(plan, "AGENTS.md", agents, int(content * RANKED_SHARE))
    done = {p for p, _ in plan.files} | {x.path for x in plan.excerpts} | {"AGENTS.md"}
    for entry in (e for e in entries if e.relevant and e.path not in done):
        limit = min(int(content * RANKED_SHARE), plan.left - int(content * MAP_SHARE))
        text = texts[entry.path]
        if not _whole(plan, entry.path, text, limit) and (entry.named or lines[entry.path]):
            _excerpt(plan, entry, text, lines[entry.path], limit)
    whole = {p for p, _ in plan.files} | {"AGENTS.md"}
    _map_and_rest(plan, [e for e in entries if e.path not in whole], texts, content)


def _map_and_rest(
    plan: _Plan, rest: Sequence[rm.Entry], texts: Mapping[str, str], content: int
) -> None:
    """The map of `rest`; with what the whole map leaves, the other files whole, best first,
    each in place of its map entry (so a small repository is shown entire)."""
    outlines = {e.path: entry_outline(e, 60 if e.relevant else 25) for e in rest}
    outlines = {p: o for p, o in outlines.items() if o.symbols or o.more}
    costs = {p: count_tokens(render_outline(o), plan.model) + 1 for p, o in outlines.items()}
    room = plan.left - sum(costs.values()) - NAMES_RESERVE
    excerpted = {x.path for x in plan.excerpts}
    for entry in rest:
        text = texts[entry.path]
        if entry.path in excerpted or not _code_or_small(entry.path, text, plan.model):
            continue
        saved = costs.get(entry.path, 0)
        limit = min(int(content * RANKED_SHARE), room + saved)
        if _whole(plan, entry.path, text, limit):
            room -= count_tokens(file_block(entry.path, text), plan.model) + 1 - saved
            costs.pop(entry.path, None)
    for path in (e.path for e in rest if e.path in costs):
        if plan.take(render_outline(outlines[path]), plan.left - NAMES_RESERVE):
            plan.outlines.append(outlines[path])


def _code_or_small(path: str, text: str, model: str | None) -> bool:
    return rm.prior(path) >= 0.5 or count_tokens(text, model) <= SMALL_TOKENS


def _whole(plan: _Plan, path: str, text: str, limit: int) -> bool:
    if len(text.encode()) > MAX_FILE_BYTES or not plan.take(file_block(path, text), limit):
        return False
    plan.files.append((path, text))
    return True


def _excerpt(plan: _Plan, entry: rm.Entry, text: str, lines: list[int], limit: int) -> None:
    """The file by its relevant regions, as many as `limit` allows, most telling first; a
    file the task names with nothing named inside shows its head (the map shows the rest)."""
    regions = rm.regions(entry, lines, AROUND)
    if not regions:
        first = min((s.line for s in entry.symbols), default=entry.lines + 1)
        regions = [rm.Region(1, max(1, min(first - 1, 20)))]
    source = source_lines(text)
    chosen: list[rm.Region] = []
    best: Excerpt | None = None
    for region in regions[:20]:
        candidate = make_excerpt(entry.path, source, [*chosen, region])
        cost = count_tokens(render_excerpt(candidate), plan.model) + 1
        if cost <= min(limit, plan.left):
            chosen.append(region)
            best = candidate
    if best is not None:
        plan.take(render_excerpt(best), plan.left)
        plan.excerpts.append(best)


def _listed(ctx: Context, left: Sequence[str], budget: int, model: str | None) -> Context:
    """`ctx` naming as many of the `left` files as the budget allows."""
    names = list(left)
    while names and count_tokens(_omitted_note(names, len(left) - len(names)), model) > budget:
        names = names[: len(names) * 4 // 5]
    return replace(ctx, omitted=tuple(names), unlisted=len(left) - len(names))


def _within(ctx: Context, spec: TaskSpec, baseline: str, budget: int, model: str | None) -> Context:
    """`ctx` shrunk, least useful part first, until the rendered prompt fits the budget."""
    while count_tokens(render_task(spec, ctx, baseline), model) > budget:
        if ctx.omitted:
            ctx = replace(ctx, omitted=ctx.omitted[:-1], unlisted=ctx.unlisted + 1)
        elif ctx.outlines:
            ctx = replace(ctx, outlines=ctx.outlines[:-1])
        elif ctx.files or ctx.excerpts:
            drop = "files" if ctx.files else "excerpts"
            ctx = replace(ctx, **{drop: getattr(ctx, drop)[:-1]}, unlisted=ctx.unlisted + 1)
        elif ctx.tree:
            ctx = replace(ctx, tree=ctx.tree[:-1], tree_omitted=ctx.tree_omitted + 1)
        else:
            break
    return ctx


def mentioned_paths(text: str, tracked: Sequence[str]) -> list[str]:
    """Tracked files named in `text` (tracebacks, lint output), in order of first mention."""
    found: dict[str, int] = {}
    for path in tracked:
        pos = text.find(path)
        if pos >= 0:
            found[path] = pos
    return sorted(found, key=lambda p: found[p])


def system_prompt() -> str:
    """The rules of the reply, then how to ask for code with SHOW (the first prompt shows
    only part of the repository)."""
    return prompts.text("system.md").rstrip("\n") + "\n\n" + prompts.text("show_help.md")


def check_output(text: str) -> str:
    """Check output for the model: written by the repository's code, so untrusted too."""
    if not text:
        return ""
    body = untrusted(text if text.endswith("\n") else text + "\n")
    return '<untrusted source="check output">\n' + body + "</untrusted>\n"


def render_files(files: Sequence[tuple[str, str]]) -> str:
    return repository([file_block(p, t) for p, t in files])


def render_repository(ctx: Context) -> str:
    """Whole files, excerpts and the map, all inside one repository wrapper."""
    blocks = [file_block(p, t) for p, t in ctx.files]
    blocks += [render_excerpt(x) for x in ctx.excerpts]
    if ctx.outlines:
        head = "Repository map (line, then signature) of files not shown whole:\n"
        blocks.append(head + "".join(render_outline(o) for o in ctx.outlines))
    return repository(blocks)


def _omitted_note(names: Sequence[str], more: int) -> str:
    if not names and not more:
        return ""
    listed = ", ".join(shown_names(names))
    rest = f"{' and ' if listed else ''}{more} more" if more else ""
    return f"\n(Not shown for space: {listed}{rest}; ask with SHOW.)\n"


def render_knowledge(passages: Sequence[Passage]) -> str:
    """The team's rules that bear on the task (codebot.knowledge), each under its source:
    repository content, so data, never instructions. Empty when there are none."""
    blocks = [
        untrusted(f"[{shown_path(p.source)}] {shown_path(p.heading)}".rstrip() + "\n")
        + untrusted(p.text.strip("\n") + "\n")
        for p in passages
    ]
    return prompts.render("knowledge.md", passages="\n".join(blocks)) if blocks else ""


def render_task(spec: TaskSpec, ctx: Context, baseline: str, knowledge: str = "") -> str:
    """The first prompt; `knowledge` is `render_knowledge`'s section (empty: none)."""
    acceptance = "".join(f"\n- {untrusted(a)}" for a in spec.acceptance)
    total = len(ctx.tree) + ctx.tree_omitted
    note = f", {len(ctx.tree)} of {total} for space" if ctx.tree_omitted else ""
    files = render_repository(ctx) + _omitted_note(ctx.omitted, ctx.unlisted)
    return prompts.render(
        "task.md",
        source=untrusted(spec.source or "spec"),
        title=untrusted(spec.title),
        description=untrusted(spec.description.strip()),
        acceptance=("\nAcceptance criteria:" + acceptance) if acceptance else "",
        tree_note=note,
        tree="\n".join(shown_names(ctx.tree)),
        files=files or "(none)\n",
        baseline=baseline,
        knowledge=knowledge,
    )


def render_feedback(
    iteration: int,
    max_iterations: int,
    outcomes: Sequence[EditOutcome],
    checks: str,
    files: Sequence[tuple[str, str]],
    shown: str = "",
) -> str:
    """The next user message. `shown` (from `feedback_excerpts`, `render_requests`) replaces
    the whole `files` when given."""
    edits = "\n".join(
        f"- block {o.block} ({shown_names([o.path])[0]}): {o.status}. {untrusted(o.detail)}"
        for o in outcomes
    )
    if edits:  # a refusal quotes the file's closest lines: repository content
        edits = f'<untrusted source="edit results">\n{edits}\n</untrusted>'
    if not shown and files:
        shown = "Current content of the files you changed:\n\n" + render_files(files)
    return prompts.render(
        "feedback.md",
        iteration=iteration,
        max_iterations=max_iterations,
        edits=(edits + "\n") if edits else "",
        checks=checks + ("\n" if checks else ""),
        files=(shown + "\n") if shown else "",
    )
