"""Telling a broken environment from a failing test, from what the checks printed.

A test that fails because of the code is the model's work; a test run that cannot start
(the toolchain is not in the image, a dependency the repository declares is not installed,
no test was found) is not, and no reply can fix it: the run stops before the model is asked,
with the cause and the setting that fixes it. Pure: check results and file texts in.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

from codebot.records import CheckResult

_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")
_MISSING_COMMAND = re.compile(r"(?:^|\n)(?:\S+: )?(?:\d+: )?([\w.+-]+): (?:command )?not found")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*")
_NETWORK_HINT = "allow the network for setup with CODEBOT_SANDBOX_NETWORK=1"
# The image that has each command (sandbox/setup-host.sh builds them).
_TOOLCHAIN = {
    "node": "codebot-sandbox:node", "npm": "codebot-sandbox:node", "npx": "codebot-sandbox:node",
    "go": "codebot-sandbox:go", "gofmt": "codebot-sandbox:go",
}  # fmt: skip


def environment_problem(
    checks: Sequence[CheckResult],
    tracked: Sequence[str],
    declared: Mapping[str, str],
    *,
    strict: bool = True,
) -> str | None:
    """Why the checks cannot run in this environment (cause, then fix), or None.

    `declared`: the texts of the dependency files (requirements, pyproject, setup.cfg...).
    With `strict` (a run), a missing module counts only when the repository declares it
    (so an import the code itself gets wrong stays the model's to fix); `codebot setup
    --check` reports any, and a test command that ran no test."""
    for check in checks:
        if check.passed:
            continue
        text = "\n".join([check.output, *(t.detail for t in check.failing_tests)])
        command = _missing_command(check.command, text)
        if command:
            image = _TOOLCHAIN.get(command)
            fix = (
                f"use `sandbox: {{image: {image}}}` in .codebot.yml (or `codebot detect`)"
                if image
                else f"use a sandbox image that has `{command}` (CODEBOT_ALLOWED_IMAGES)"
            )
            return (
                f"the {check.name} command needs `{command}`, which the sandbox image lacks — {fix}"
            )
        module = _missing_module(text, tracked, declared, strict=strict)
        if module:
            return (
                f"tests cannot import `{module}`, which is not installed — add its install to "
                f"`setup:` (e.g. `python3 -m pip install -r requirements.txt`) and "
                f"{_NETWORK_HINT}"
            )
        ran = (check.tests_passed or 0) + (check.tests_failed or 0) + (check.tests_errors or 0)
        if not strict and check.name == "test" and check.tests_passed is not None and not ran:
            # Not during a run: a task may be to add the first test.
            return f"`{check.command}` ran no test — check `test:` in the spec or .codebot.yml"
    return None


def _missing_command(command: str, text: str) -> str | None:
    words = set(re.findall(r"[\w.+-]+", command))
    for name in _MISSING_COMMAND.findall(text):
        if name in words:
            return str(name)
    return None


def _missing_module(
    text: str, tracked: Sequence[str], declared: Mapping[str, str], *, strict: bool
) -> str | None:
    ours = _own_modules(tracked)
    for name in _MISSING_MODULE.findall(text):
        top = name.split(".", 1)[0]
        if top in ours:
            continue  # the repository's own code: a bug to fix, not a missing install
        if not strict or _declares(declared, top):
            return str(top)
    return None


def _own_modules(tracked: Sequence[str]) -> set[str]:
    names = set()
    for path in tracked:
        parts = PurePosixPath(path).parts
        for i, part in enumerate(parts):
            names.add(part.removesuffix(".py") if i == len(parts) - 1 else part)
    return names


def _declares(declared: Mapping[str, str], module: str) -> bool:
    """Whether a dependency file names the distribution (its name often differs from the
    module's only by `-`/`_` and case)."""
    wanted = re.sub(r"[-_.]+", "-", module).lower()
    for text in declared.values():
        for word in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", text):
            if re.sub(r"[-_.]+", "-", word).lower() == wanted:
                return True
    return False


def program_of(command: str) -> str | None:
    """The program a simple command runs (`VAR=value` words before it skipped); None when
    the command cannot be split like a shell would."""
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: running it will say so
        return None
    while words and _ASSIGNMENT.fullmatch(words[0]):
        words = words[1:]
    return words[0] if words else None
