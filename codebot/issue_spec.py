"""A GitHub issue becomes a TaskSpec.

Issue text is untrusted: it supplies only the title, the description and the acceptance
checklist. Every command the sandbox will run, and every limit, comes from the repository's
`.codebot.yml` (`spec:` section), whatever the issue body says.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import yaml

from codebot.errors import SpecError
from codebot.records import IssueInfo
from codebot.spec import TaskSpec, parse_spec, slugify

AGENTS_HEADING = "## Repository instructions (AGENTS.md)"
_CHECKLIST_ITEM = re.compile(r"^\s*[-*+]\s+\[[ xX]\]\s+(?P<text>\S.*?)\s*$", re.MULTILINE)
_CODE_FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1", re.MULTILINE | re.DOTALL)
_MAX_TITLE = 200  # the schema's limit; GitHub allows 256
_MAX_ID = 60  # the schema's id pattern allows 60 characters


def spec_from_issue(
    issue: IssueInfo, repo_defaults: Mapping[str, Any], agents_md: str | None = None
) -> TaskSpec:
    """Validated like a spec file, so the same errors apply; raises SpecError."""
    where = f"issue {issue.repo}#{issue.number}"
    if not repo_defaults.get("test"):
        raise SpecError(
            f"{where}: no test command: issues never supply commands, and none was found in "
            "the repository's files",
            "add `spec: {test: <command that runs the tests>}` to the repo's .codebot.yml "
            "(`codebot detect` shows what it can find)",
        )
    body = issue.body.replace("\r\n", "\n").strip()
    title = " ".join(issue.title.split())[:_MAX_TITLE].rstrip()
    description = body or title
    if agents_md and agents_md.strip():
        description = f"{description}\n\n{AGENTS_HEADING}\n\n{agents_md.strip()}"
    prefix = f"issue-{issue.number}-"
    fields: dict[str, Any] = {
        "id": prefix + slugify(title, limit=_MAX_ID - len(prefix)),
        "title": title,
        "description": description,
        "repo": issue.repo,
    }
    prose = _CODE_FENCE.sub("", body)
    acceptance = [m["text"] for m in _CHECKLIST_ITEM.finditer(prose)]
    if acceptance:
        fields["acceptance"] = acceptance
    # Issue fields are dumped as YAML *values*: whatever the body contains stays a string.
    text = yaml.safe_dump(fields, sort_keys=False, allow_unicode=True)
    try:
        spec = parse_spec(text, source=where, defaults=dict(repo_defaults))
    except SpecError as exc:
        # Line numbers would point into YAML nobody wrote; the culprit is .codebot.yml.
        cause = re.sub(rf"^{re.escape(where)}:\d+:", f"{where}:", exc.cause)
        raise SpecError(
            f"{cause} (after applying the repo's .codebot.yml `spec:`)", exc.fix
        ) from None
    return replace(spec, source=issue.url)
