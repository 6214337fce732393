"""What the repository's own CI runs: the most specific answer to "how is this tested".

Pure helper of `codebot.detect`: reads the `run:` steps of `.github/workflows/*.yml` and
keeps those the sandbox can repeat. Actions (`uses:`), deploy/publish/upload steps and jobs,
steps touching a secret and commands with `${{ }}` expressions (only Actions expands them)
are left out.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping

import yaml

from codebot.detect_files import LINT_ENVS, ROLES, Found, Rules, join, normalise, pip_install

WORKFLOW = re.compile(r"\.github/workflows/[^/]+\.ya?ml")
_SKIPPED = re.compile(r"\b(?:deploy|publish|upload|release|gh-pages)\b|docker push|twine", re.I)
_EXPANDED = re.compile(r"\$\{\{|\$GITHUB_|\$RUNNER_")
_TABLE = tuple(
    (re.compile(pattern), role, tool)
    for pattern, role, tool in (
        (r"python3 -m pip install\b", "setup", "pip"),
        (r"(?:npm (?:ci|install|i)|yarn(?: install)?|pnpm (?:install|i))(?:\s+-\S+)*$",
         "setup", "node"),
        (r"go mod download\b", "setup", "go"),
        (r"cargo fetch\b", "setup", "cargo"),
        (r"python3 -m (?:pytest|unittest)\b", "test", "pytest"),
        (r"(?:python3 -m )?(?:tox|nox)\b", "test", "tox"),
        (r"(?:npm|yarn|pnpm)(?: run)? test\b", "test", "node"),
        (r"go test\b", "test", "go"),
        (r"cargo test\b", "test", "cargo"),
        (r"make (?:test|check)\b", "test", "make"),
        (r"(?:npm|yarn|pnpm)(?: run)? lint\b", "lint", "node"),
        (r"go vet\b", "lint", "go"),
        (r"ruff check\b|python3 -m flake8\b", "lint", "python"),
        (r"make lint\b", "lint", "make"),
        (r"(?:npm|yarn|pnpm)(?: run)? build\b", "build", "node"),
        (r"go build\b", "build", "go"),
        (r"cargo build\b", "build", "cargo"),
        (r"make build\b", "build", "make"),
    )
)  # fmt: skip
# What `pip install` brings in for CI's own use, not the project's.
_TOOLING = {"pip", "setuptools", "wheel", "tox", "nox", "build", "twine", "virtualenv", "codecov"}


def from_ci(files: Mapping[str, str], delegated: Mapping[str, Rules]) -> Rules:
    """Per role, the first command of each tool in workflow and job order. Installs count
    only from jobs that also build, lint or test. A `tox`/`nox` step becomes the env's own
    commands and installs (`delegated["tox"]`, `delegated["nox"]`), which need neither tool
    nor network."""
    jobs: dict[tuple[str, str], list[tuple[str, str, Found]]] = {}
    for path in sorted(p for p in files if WORKFLOW.fullmatch(p)):
        for job, cwd, command, line in _commands(files[path]):
            hit = _classify(command)
            if hit is None:
                continue
            role, tool, command = hit[0], hit[1], f"(cd {cwd} && {hit[2]})" if cwd else hit[2]
            found = Found(command, path, line, f"the CI job `{job}` runs it")
            hits = jobs.setdefault((path, job), [])
            own = delegated.get("nox" if re.search(r"\bnox\b", command) else "tox", {})
            if tool == "tox" and (delegation := _delegate(found, own)):
                role, found = delegation
                hits += [("setup", "tox", own["setup"])] if "setup" in own else []
            elif tool == "tox":
                continue
            hits.append((role, tool, found))
    picked: dict[str, dict[str, Found]] = {role: {} for role in ROLES}
    for hits in jobs.values():
        if any(role != "setup" for role, _, _ in hits):
            for role, tool, found in hits:
                picked[role].setdefault(found.command if role == "setup" else tool, found)
    return {role: f for role, got in picked.items() if (f := join(list(got.values())))}


def _classify(command: str) -> tuple[str, str, str] | None:
    """(role, tool, command as the sandbox should run it), or None for anything else."""
    for pattern, role, tool in _TABLE:
        if not pattern.match(command):
            continue
        if tool != "pip":
            return role, tool, command
        try:
            args = shlex.split(command)[4:]
        except ValueError:
            return None
        names = [re.split(r"[<>=!~\[;]", a)[0].lower() for a in args if not a.startswith("-")]
        project = any(a.startswith(("-r", "-e", "--req", "--edit")) for a in args)
        if project or any(name not in _TOOLING for name in names):
            return role, tool, pip_install(args)
        return None
    return None


def _delegate(step: Found, env_rules: Rules) -> tuple[str, Found] | None:
    env = re.search(r"\s-[es]\s*(\S+)", step.command)
    role = "lint" if env and env[1] in LINT_ENVS else "test"
    own = env_rules.get(role)
    if own is None:
        return None
    why = f"{own.why}, as the CI does through `{step.command}` ({step.reason})"
    return role, Found(own.command, own.file, own.line, why)


def _commands(text: str) -> Iterator[tuple[str, str, str, int]]:
    """(job, directory, command, 1-based line) for each command of each step the sandbox
    could repeat; the directory ("" for the root) is quoted for the shell."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return
    jobs = _get(root, "jobs")
    for key, job in jobs.value if isinstance(jobs, yaml.MappingNode) else []:
        steps = _get(job, "steps")
        if _SKIPPED.search(str(key.value)) or not isinstance(steps, yaml.SequenceNode):
            continue
        for step in steps.value:
            run, name, cwd = _get(step, "run"), _get(step, "name"), _get(step, "working-directory")
            source = text[step.start_mark.index : step.end_mark.index]
            label = str(name.value) if isinstance(name, yaml.ScalarNode) else ""
            if not isinstance(run, yaml.ScalarNode) or _get(step, "uses") is not None:
                continue
            if "secrets." in source or _SKIPPED.search(label):
                continue
            first = run.start_mark.line + (2 if run.style in ("|", ">") else 1)
            where = shlex.quote(str(cwd.value)) if isinstance(cwd, yaml.ScalarNode) else ""
            for offset, directory, command in _shell(str(run.value), where):
                yield str(key.value), directory, command, first + offset


def _shell(script: str, directory: str) -> Iterator[tuple[int, str, str]]:
    """Each command of a step's script with the 0-based line it starts on and the directory
    it runs in: a `cd` applies to the commands after it."""
    lines = script.splitlines()
    n = 0
    while n < len(lines):
        start, line = n, lines[n]
        while line.endswith("\\") and n + 1 < len(lines):
            n += 1
            line = line[:-1] + " " + lines[n].strip()
        n += 1
        for part in re.split(r"\s*(?:&&|;)\s*", line.strip()):
            if not part or part.startswith("#") or _SKIPPED.search(part) or _EXPANDED.search(part):
                continue
            if part.startswith("cd "):
                directory = part.removeprefix("cd ").strip()
                continue
            yield start, directory, normalise(part)


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if k.value == key), None)
    return None
