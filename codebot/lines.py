"""The progress lines of a run, one per stage and iteration, as the CLI prints them and
codebot.ui reads them back for its panel: what each check did and, when no check ran, why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from codebot import context
from codebot.edits import parse_edits
from codebot.loop import NOTHING_TO_DO
from codebot.records import CheckResult, Iteration

# The loop's words for a resent edit (prompts/repeated_edits.md), read back from the record.
_REPEATED = re.compile(r"identical to iteration (\d+)")


def iteration_line(it: Iteration) -> str:
    refused = sum(e.status == "refused" for e in it.edits)
    checks = checks_line(it.checks) if it.checks else f"checks not run: {unchecked(it)}"
    cost = "" if it.cost_usd is None else f", ${it.cost_usd:.4f}"
    return (
        f"iteration {it.number}: {len(it.edits) - refused} edit(s) applied, {refused} refused; "
        f"{checks}; {it.usage.total_tokens} tokens{cost}; {it.duration_s:.1f}s"
    )


def unchecked(it: Iteration) -> str:
    """Why an iteration ran no check, from what it recorded: "checks not run" alone left
    the reader guessing between a silent model, a repeat and a refusal."""
    if any(e.status == "refused" for e in it.edits):
        return "edits refused"
    if it.edits:
        return "the edits changed nothing"
    if parse_edits(it.reply).edits:  # edits in the reply, none applied: a repeat
        earlier = _REPEATED.search(it.feedback)
        return f"identical to iteration {earlier[1]}" if earlier else "identical to an earlier try"
    if context.requests(it.reply):
        return "asked to see code"
    if NOTHING_TO_DO.search(it.reply):
        return "the model said nothing is left to change"
    return "no edits in the reply"


def checks_line(checks: Sequence[CheckResult]) -> str:
    if not checks:
        return "checks not run"
    return ", ".join(
        f"{c.name} {'passed' if c.passed else 'failed (' + c.reason + ')'}" for c in checks
    )
