"""`codebot init`: the two files a repository needs, written from what it already has; and
`codebot init --check`: what is wrong with a `.codebot.yml`, line by line.

`.codebot.yml` is codebot.detect's fragment (each command under the comment saying where it
was found) plus every other section a repository may set, commented out. The workflow is
this repository's own example, turned into what another repository uses: the action by
reference instead of `uses: ./`, without the step that checks codebot itself out. Nothing
that exists is overwritten unless asked. The check applies the file the way a run does
(codebot.config, codebot.spec), one section at a time so that every section's first
problem is found, not only the file's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from codebot import config as cfg
from codebot.detect import Detection, to_yaml
from codebot.errors import CodebotError

CONFIG = ".codebot.yml"
WORKFLOW = ".github/workflows/codebot.yml"
# The example workflow of this repository (the one `codebot example` sits next to).
WORKFLOW_SOURCE = Path(__file__).resolve().parent.parent / WORKFLOW
DEFAULT_ACTION = "<owner>/codebot@v0"

_HEADER = """\
# codebot's settings for this repository (README "Configuration"). Read from the base
# commit of every run, never from the model's edits. The endpoint, the API key, the network
# and which images are allowed come from the operator's environment, never from here.
"""
_OPTIONAL = """\
# Optional, with examples; uncomment what you need.
# spec:                       # more defaults for every task (add them under `spec:` above)
#   max_iterations: 6
#   timeout: 300              # seconds per check command
#   budget: {max_tokens: 60000, max_cost_usd: 0.50, max_minutes: 20}
# sandbox: {memory: 2g, cpus: 2, pids: 512, disk: 2g}   # within the operator's maxima
# git: {author_name: codebot, author_email: bot@example.com}
# protected_paths: ["migrations/**"]   # adds to the defaults, never removes
# context: {tokens: 12000, exclude: ["docs/generated/**"]}
# github: {draft: auto, labels: [codebot], reviewers: [], ci_attempts: 2}
"""
_CHECKOUT = re.compile(r"^(?P<indent>\s*)- uses: actions/checkout@")
_NAMED = re.compile(r"`([\w.]+)`")


@dataclass(frozen=True)
class Written:
    path: Path
    how: Literal["wrote", "kept"]


def config_text(found: Detection) -> str:
    """A commented `.codebot.yml` for a repository where `found` was detected."""
    return f"{_HEADER}\n{to_yaml(found)}\n{_OPTIONAL}"


def workflow_text(source: str, action: str = DEFAULT_ACTION) -> str:
    """The example workflow for another repository: `uses: ./` becomes `action`, and each
    `actions/checkout` step (with the comment lines just above it) goes: it only fetched
    codebot itself, which `uses: <owner>/codebot@v0` fetches by reference."""
    kept: list[str] = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        m = _CHECKOUT.match(lines[i])
        if m is None:
            kept.append(lines[i])
            i += 1
            continue
        while kept and kept[-1].strip().startswith("#"):
            kept.pop()  # the comment that explained the checkout
        step = len(m["indent"])
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > step):
            i += 1
    text = "\n".join(line for line in kept if "replace `./` with" not in line)
    return re.sub(r"uses: \./(?=\s|$)", f"uses: {action}", text) + "\n"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def write(repo: Path, files: dict[str, str], force: bool) -> list[Written]:
    """Each file into `repo`'s work tree, unless it is there already and `force` is off."""
    done = []
    for name, text in files.items():
        path = repo / name
        if path.exists() and not force:
            done.append(Written(path, "kept"))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        done.append(Written(path, "wrote"))
    return done


def problems(text: str, settings: cfg.Settings, name: str = CONFIG) -> list[str]:
    """What is wrong with a `.codebot.yml`, each as `name:LINE: what — fix`; none: it is
    fine. The operator's settings matter: they set the ceilings and the allowed images."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        return [f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})"]
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        return [f"{name}:1: must be a YAML mapping of sections (spec:, sandbox:, git:, ...)"]
    found = []
    for key, value in data.items():
        try:
            cfg.with_repo_file(settings, yaml.safe_dump({key: value}), name)
        except CodebotError as exc:
            found.append(_located(exc, node, name))
            continue
        if key == "spec" and isinstance(value, dict):
            found += _spec_problems(value, _child(node, "spec"), name)
    return found


def _spec_problems(defaults: dict[str, Any], node: yaml.Node | None, name: str) -> list[str]:
    """The `spec:` defaults checked as a run checks a task spec that leaves them to it."""
    from codebot.spec import spec_from_data

    task = {"title": "check", "description": "check"}
    if "test" not in defaults:
        task["test"] = "true"  # detection may provide it; its absence is no error here
    try:
        spec_from_data(task, name, defaults, node)
    except CodebotError as exc:
        return [exc.one_line()]
    return []


def _located(exc: CodebotError, root: yaml.MappingNode, name: str) -> str:
    """The error at the line of the setting it names (`sandbox.memory`, `foo`)."""
    named = _NAMED.search(exc.cause)
    path = named[1].split(".") if named else []
    node: yaml.Node | None = root
    line = None
    for part in path:
        key = next((k for k, _ in getattr(node, "value", ()) if k.value == part), None)
        if key is None or not isinstance(node, yaml.MappingNode):
            break
        line = key.start_mark.line + 1
        node = _child(node, part)
    said = exc.one_line().removeprefix(f"{name}: ")
    return f"{name}:{line}: {said}" if line else f"{name}: {said}"


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if k.value == key), None)
