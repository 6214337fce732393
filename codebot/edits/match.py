"""Where a SEARCH text sits in a file: exact, then whitespace-insensitive, then fuzzy.

Apart from `apply` because the subtle part lives here: which file lines a loose match may
replace. A fuzzy match replaces only lines it pairs with SEARCH lines (a file line the model
never saw is neither swallowed at the edge of the span nor dropped inside it).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# SequenceMatcher.ratio() of the whole SEARCH text against the lines it replaces, indentation
# ignored. 0.9 lets about one character in ten differ (a stale quote style, a renamed name, a
# changed constant) while two different functions of the same shape score about 0.8; below it
# the closest lines are shown to the model, never applied.
FUZZY_MIN_RATIO = 0.9
PAIRED_LINE_MIN = 0.5  # how alike two differing lines must be to count as one line, changed
# How far from its place in the window a SEARCH line may pair: keeps aligning a long SEARCH
# linear in its length, and a SEARCH that drifts further is too loose to apply anyway.
PAIRING_DRIFT = 8
MAX_FUZZY_CANDIDATES = 50  # windows that get the exact (slow) similarity ratio

Pairs = tuple[tuple[int, int], ...]  # (SEARCH line, file line), both 0-based


@dataclass(frozen=True)
class Match:
    """The file lines an edit replaces; `pairs` aligns a fuzzy match's SEARCH lines to them."""

    start: int
    length: int
    how: str
    reindent: bool = False
    pairs: Pairs = ()

    @property
    def end(self) -> int:
        return self.start + self.length


_LEVELS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("exact", lambda s: s),
    ("whitespace-insensitive", str.rstrip),
    ("whitespace-insensitive", str.strip),
)


def find(lines: Sequence[str], search: Sequence[str], hint: int | None) -> Match | str | None:
    """Exact, then whitespace-insensitive; a str explains an ambiguity the hint cannot settle."""
    for level, (how, norm) in enumerate(_LEVELS):
        starts = positions([norm(x) for x in lines], [norm(x) for x in search])
        if starts:
            start = pick(starts, hint)
            if start is None:
                places = ", ".join(str(s + 1) for s in starts[:8])
                return f"the SEARCH text matches {len(starts)} places (lines {places})"
            return Match(start, len(search), how, reindent=level == 2)
    return None


def fuzzy(lines: Sequence[str], search: Sequence[str], hint: int | None) -> Match | str | None:
    """The closest window, made exactly the file lines that pair with SEARCH lines; None when
    no such span reaches FUZZY_MIN_RATIO."""
    ratio, starts, length = closest(lines, search, FUZZY_MIN_RATIO)
    if ratio < FUZZY_MIN_RATIO:
        return None
    start = pick(starts, hint)
    if start is None:
        return f"the SEARCH text resembles {len(starts)} places equally"
    pairs = _paired_span(lines, search, start, length)
    if not pairs:
        return None
    first, end = pairs[0][1], pairs[-1][1] + 1
    ratio = _ratio(lines[first:end], search)
    if ratio < FUZZY_MIN_RATIO:
        return None
    return Match(first, end - first, f"fuzzy (ratio {ratio:.2f})", reindent=True, pairs=pairs)


def _paired_span(lines: Sequence[str], search: Sequence[str], start: int, length: int) -> Pairs:
    """SEARCH lines paired with the window's lines, or a line either side of it (a window of
    n-1..n+1 lines can miss a stale edge line or take in a neighbour); () if unsafe to apply.

    Unsafe: a file line inside the span left unpaired (REPLACE would drop it unseen), or SEARCH's
    first or last line unpaired (REPLACE's version would land beside the file's own). Only a
    blank line, or a SEARCH line in the middle (REPLACE says what the model wants there), may
    go unpaired.
    """
    lo = max(0, start - 1)
    region = [x.strip() for x in lines[lo : start + length + 1]]
    found = _align([x.strip() for x in search], region, start - lo)
    solid = [i for i, x in enumerate(search) if x.strip()]
    if not found or found[0][0] > solid[0] or found[-1][0] < solid[-1]:
        return ()
    return tuple((i, lo + j) for i, j in found)


def positions(lines: Sequence[str], search: Sequence[str]) -> list[int]:
    n = len(search)
    return [i for i in range(len(lines) - n + 1) if list(lines[i : i + n]) == list(search)]


def pick(starts: Sequence[int], hint: int | None) -> int | None:
    if len(starts) == 1:
        return starts[0]
    if hint is None:
        return None
    return min(starts, key=lambda s: abs(s + 1 - hint))


def closest(
    lines: Sequence[str], search: Sequence[str], cutoff: float = 0.0
) -> tuple[float, list[int], int]:
    """Most similar window, of n-1..n+1 lines so one dropped or extra line is tolerated.

    quick_ratio() bounds ratio() from above and is cheap, so it ranks the windows and only
    the top few pay for the exact ratio: a large file stays well under a second.
    """
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2("\n".join(x.strip() for x in search))
    stripped = [x.strip() for x in lines]
    ranked: list[tuple[float, int, int]] = []
    for length in sorted({max(1, len(search) + d) for d in (0, -1, 1)}):
        for i in range(len(lines) - length + 1):
            matcher.set_seq1("\n".join(stripped[i : i + length]))
            bound = matcher.quick_ratio() if matcher.real_quick_ratio() >= cutoff else 0.0
            if bound >= cutoff:
                ranked.append((bound, i, length))
    ranked.sort(key=lambda r: -r[0])
    best, starts, best_len = 0.0, [0], len(search)
    for bound, i, length in ranked[:MAX_FUZZY_CANDIDATES]:
        if bound < best:
            break
        matcher.set_seq1("\n".join(stripped[i : i + length]))
        ratio = matcher.ratio()
        if ratio > best:
            best, starts, best_len = ratio, [i], length
        elif ratio == best and length == best_len:
            starts.append(i)
    return best, sorted(starts), best_len


def _ratio(found: Sequence[str], search: Sequence[str]) -> float:
    joined = ["\n".join(x.strip() for x in side) for side in (found, search)]
    return difflib.SequenceMatcher(None, joined[0], joined[1], autojunk=False).ratio()


def _align(search: Sequence[str], region: Sequence[str], near: int) -> list[tuple[int, int]]:
    """Pairs (SEARCH line, region line), in order, with the greatest total likeness, where a
    pair's lines are at least PAIRED_LINE_MIN alike and every non-blank region line between the
    first and last pair is paired; of equally good spans, the one starting nearest `near`.

    best[i][j] scores search[i:] against region[j:] once the span has begun (a small dynamic
    programme: SEARCH against its window and a line either side).
    """
    n, m = len(search), len(region)
    like = _likeness_table(search, region, near)
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in reversed(range(n)):
        for j in reversed(range(m)):
            options = [0.0, best[i + 1][j]]  # end the span here; leave search[i] unpaired
            if not region[j]:
                options.append(best[i][j + 1])  # a blank file line may go unpaired
            if like[i][j]:
                options.append(like[i][j] + best[i + 1][j + 1])
            best[i][j] = max(options)
    j = max(range(m), key=lambda k: (best[0][k], -abs(k - near)), default=0)
    pairs: list[tuple[int, int]] = []
    i = 0
    while i < n and j < m and best[i][j] > 0.0:
        if like[i][j] and best[i][j] == like[i][j] + best[i + 1][j + 1]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def _likeness_table(search: Sequence[str], region: Sequence[str], near: int) -> list[list[float]]:
    """ratio() of the line pairs within PAIRING_DRIFT that are at least PAIRED_LINE_MIN alike,
    else 0; the cheap upper bounds skip the exact ratio for plainly different lines."""
    table = [[0.0] * len(region) for _ in search]
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    for j, line in enumerate(region):
        matcher.set_seq2(line)
        low = max(0, j - near - PAIRING_DRIFT)
        for i, wanted in enumerate(search[low : j - near + PAIRING_DRIFT + 1], low):
            if wanted == line:
                table[i][j] = 1.0
                continue
            matcher.set_seq1(wanted)
            bound = matcher.quick_ratio() if matcher.real_quick_ratio() >= PAIRED_LINE_MIN else 0.0
            ratio = matcher.ratio() if bound >= PAIRED_LINE_MIN else 0.0
            table[i][j] = ratio if ratio >= PAIRED_LINE_MIN else 0.0
    return table
