"""What the model is told about failing checks, within a token budget.

Each failing check gives its command and reason; tests give each failing test with the end
of its traceback (the assertion matters most), the budget shared across them. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from codebot.records import CheckResult
from codebot.text import tail
from codebot.tokens import chars_for

MIN_TEST_CHARS = 300  # below this a traceback tail is useless: list fewer tests instead


def feedback_for_model(checks: Sequence[CheckResult], max_tokens: int) -> str:
    """What the model needs about the failing checks, in at most `max_tokens` (chars/4).

    Each failing check gives its command and reason; tests give each failing test with the end
    of its traceback (the assertion matters most), the budget shared across tests; build and
    lint give the tail of their output. Empty when every check passed.
    """
    budget = chars_for(max_tokens)
    failing = [c for c in checks if not c.passed]
    heads: list[str] = []
    bodies: list[str] = []
    for check in failing:
        heads.append(f"## {check.name} failed: {check.reason or 'failed'}\n$ {check.command}\n")
        tests = check.failing_tests
        bodies.append("" if tests else check.output)
        shown = max(1, min(len(tests), budget // (MIN_TEST_CHARS * len(failing))))
        for test in tests[:shown]:
            heads.append(f"### {test.name}\n")
            bodies.append(test.detail)
        total = max(len(tests), (check.tests_failed or 0) + (check.tests_errors or 0))
        if tests and total > shown:
            heads.append(f"(and {total - shown} more failing tests)\n")
            bodies.append("")
    if not heads:
        return ""
    fixed = sum(len(h) + 1 for h in heads)
    allowances = share_budget([b.strip("\n") for b in bodies], max(0, budget - fixed))
    parts = [
        head + (tail(body.strip("\n"), allowed) + "\n" if allowed else "")
        for head, body, allowed in zip(heads, bodies, allowances, strict=True)
    ]
    return "\n".join(parts).rstrip("\n")[:budget]


def share_budget(texts: Sequence[str], budget: int) -> list[int]:
    """Characters each text may keep: short texts keep all, long ones split what is left."""
    allowances = [0] * len(texts)
    pending = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    remaining = budget
    while pending:
        share = remaining // len(pending)
        shortest = pending[0]
        if len(texts[shortest]) > share:
            for index in pending:
                allowances[index] = share
            break
        allowances[shortest] = len(texts[shortest])
        remaining -= allowances[shortest]
        pending.pop(0)
    return allowances
