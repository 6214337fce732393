"""Feedback after a turn: the regions the model changed and the code at the failing lines.

Whole files would crowd out the checks' output in later turns and grow with every turn;
a line diff of each change and the source around the failing frames is what the model
needs to see its edits landed and where they went wrong, numbered and within the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from codebot import repomap as rm
from codebot.outline import source_lines
from codebot.render import AROUND, make_excerpt, render_excerpt, repository, shown_names
from codebot.tokens import count_tokens

MAX_FEEDBACK_LINES = 120  # of one file; and never all of a file longer than 40 lines
_FEEDBACK_HEAD = (
    "Your changes as the files now stand, and the code at the failing lines "
    "(line numbers are not part of the files):\n"
)


def feedback_excerpts(
    changes: Mapping[str, tuple[str, str]],
    failure_text: str,
    read: Callable[[str], str | None],
    tracked: Sequence[str],
    budget_tokens: int,
    *,
    model: str | None = None,
) -> str:
    """What the model changed (a line diff of each file before and after its edits) and the
    source around the failing output's in-repo frames, numbered, within the budget."""
    sources: dict[str, list[str]] = {}
    wanted: list[tuple[str, rm.Region]] = []
    emptied = [p for p, (before, after) in sorted(changes.items()) if before and not after]
    for path in sorted(changes):
        before, after = changes[path]
        if before != after and after:
            sources[path] = source_lines(after)
            wanted += [(path, r) for r in rm.changed_regions(before, after, AROUND)]
    for frame in reversed(rm.frames(failure_text, tracked)):
        if frame.path not in sources and (text := read(frame.path)) is not None:
            sources[frame.path] = source_lines(text)
        if frame.path in sources:
            wanted.append((frame.path, rm.Region(frame.line - AROUND, frame.line + AROUND)))
    left = budget_tokens - count_tokens(_FEEDBACK_HEAD + repository(["x"]), model)
    chosen, skipped = _choose(wanted, sources, left, model)
    blocks = [render_excerpt(make_excerpt(p, sources[p], rs)) for p, rs in chosen.items()]
    note = f"(Not shown for space: {', '.join(skipped)}.)\n" if skipped else ""
    note += "".join(f"({n} is now empty.)\n" for n in shown_names(emptied))
    text = (_FEEDBACK_HEAD + repository(blocks) if blocks else "") + note
    return text if count_tokens(text, model) <= budget_tokens else ""


def _choose(
    wanted: Sequence[tuple[str, rm.Region]],
    sources: Mapping[str, Sequence[str]],
    left: int,
    model: str | None,
) -> tuple[dict[str, list[rm.Region]], list[str]]:
    """The regions that fit `left` tokens, in the order wanted; and those that did not."""
    chosen: dict[str, list[rm.Region]] = {}
    skipped: list[str] = []
    for path, wish in wanted:
        lines = sources[path]
        region = rm.Region(max(1, wish.start), min(len(lines), wish.end))
        if region.start > region.end:
            continue
        trial = rm.merged([*chosen.get(path, []), region])
        cap = len(lines) if len(lines) <= 40 else min(MAX_FEEDBACK_LINES, len(lines) - 1)
        cost = _cost_of(path, lines, trial, model) - _cost_of(path, lines, chosen.get(path), model)
        if sum(r.end - r.start + 1 for r in trial) > cap or cost > left:
            skipped.append(f"{shown_names([path])[0]} lines {region.start}-{region.end}")
            continue
        chosen[path], left = trial, left - cost
    return chosen, skipped


def _cost_of(
    path: str, lines: Sequence[str], regions: Sequence[rm.Region] | None, model: str | None
) -> int:
    if not regions:
        return 0
    return count_tokens(render_excerpt(make_excerpt(path, lines, regions)), model) + 1
