"""Team documents for the knowledge tests and benchmark: one conventions file whose Money
section is the rule a task needs, among many documents about other things.

The other documents are generated from a few topics, deterministic for a given count; some
share a word with a pricing task ("order", "percentage", "total") on purpose, as real docs do.
"""

from __future__ import annotations

CONVENTIONS = """\
# Conventions

How code in this repository is written. Reviewers hold every change to these.

## Naming

Modules are nouns (`ledger.py`), functions are verbs (`post_entry`). Private helpers start
with an underscore and live below the public functions that use them.

## Money

Money amounts (prices, order totals, discounts, refunds, taxes) are `decimal.Decimal`, never
`float`: a binary float cannot hold 0.10 exactly and the cents drift. Build them from strings
(`Decimal("19.99")`), never from floats, and round once, at the end, with
`quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)`.

## Time

Timestamps are timezone-aware UTC `datetime`s; convert to local time only for display.
"""

_TOPICS: dict[str, dict[str, str]] = {
    "logging": {
        "Levels": "Use INFO for state changes a person would want in the morning and DEBUG for "
        "everything else. A log line names the {thing} it is about.",
        "Format": "Logs are JSON lines with a timestamp, a level and a message; the order of "
        "keys is fixed so that diffs of log samples stay readable.",
    },
    "http": {
        "Retries": "Clients retry idempotent requests three times with exponential backoff; "
        "the total timeout of a call to the {thing} service is thirty seconds.",
        "Errors": "A 4xx answer is the caller's fault and is never retried; a 5xx is retried.",
    },
    "testing": {
        "Coverage": "Line coverage percentage must stay above ninety for the {thing} package; "
        "a pull request that lowers it explains why in its description.",
        "Fixtures": "Fixtures build real objects; a test names the behaviour it checks.",
    },
    "imports": {
        "Order": "The import order is standard library, third party, then first party, each "
        "group sorted; ruff enforces it for the {thing} modules.",
        "Cycles": "Two modules never import each other; move the shared part down a layer.",
    },
    "database": {
        "Migrations": "Every schema change ships as a migration with a down step; the {thing} "
        "table is never altered by hand in production.",
        "Queries": "Queries take parameters, never formatted strings, and select named columns.",
    },
    "deployment": {
        "Releases": "Releases are tagged from main after the {thing} pipeline is green; a "
        "release note lists user-facing changes only.",
        "Rollback": "Every deploy can be rolled back by redeploying the previous tag.",
    },
    "security": {
        "Secrets": "Secrets come from the environment, are never committed, and are never "
        "logged; the {thing} token is rotated every ninety days.",
        "Input": "Validate input at the boundary and reject what you do not understand.",
    },
    "frontend": {
        "Components": "Components are small and typed; the {thing} page composes them.",
        "Styles": "Styles use the design tokens; no colour is written as a literal.",
    },
    "caching": {
        "Keys": "Cache keys name their version and the {thing} they hold; a change of shape "
        "bumps the version rather than flushing the cache.",
        "Expiry": "Entries expire; nothing is cached forever.",
    },
    "documentation": {
        "Docstrings": "A docstring says why the {thing} exists, not what the next line does.",
        "Changelog": "The changelog groups entries by release, newest first.",
    },
}
_THINGS = ("billing", "search", "inventory", "accounts", "reports", "shipping", "catalogue")


def unrelated_docs(count: int) -> dict[str, str]:
    """`count` Markdown documents about other topics than money, keyed by path."""
    docs: dict[str, str] = {}
    names = sorted(_TOPICS)
    for n in range(count):
        topic = names[n % len(names)]
        thing = _THINGS[n % len(_THINGS)]
        sections = "".join(
            f"\n## {heading}\n\n{text.format(thing=thing)}\n"
            for heading, text in _TOPICS[topic].items()
        )
        note = f"\nLast reviewed in week {n % 52 + 1} of year {2020 + n // 52}.\n"
        docs[f"docs/{topic}/{thing}-{n:04d}.md"] = (
            f"# {topic.title()} for {thing}\n{note}{sections}"
        )
    return docs
