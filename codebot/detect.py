"""Zero-config detection: the toolchain a repository needs and the commands that install its
dependencies, build, lint and test it, each with the file and line that asks for it.

Pure: the texts of a few committed files in (`wanted` picks them), a `Detection` out, and
`to_yaml` for a `.codebot.yml` fragment to paste. The more specific a source, the more it
is trusted: the repository's own CI (`detect_ci`), then tox and nox envs, then each
language's own files (`detect_files`), then Makefile targets, and last what the mere
presence of test files implies. Only `setup` may use the network; every other command must
run offline after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import yaml

from codebot import detect_files as df
from codebot.detect_ci import WORKFLOW, from_ci
from codebot.detect_files import ROLES, Found, Rules

__all__ = [
    "IMAGES", "ROLES", "Detection", "Found", "detect", "detect_from", "needs_text", "to_yaml",
    "wanted",
]  # fmt: skip

Toolchain = Literal["python", "node", "go", "rust", "polyglot", "unknown"]
IMAGES: dict[str, str] = {
    "node": "codebot-sandbox:node",
    "go": "codebot-sandbox:go",
    "polyglot": "codebot-sandbox:polyglot",
}
_ROOT_FILES = frozenset(
    {*df.PYTHON_FILES, *df.LOCKS, *df.MAKEFILES, "pytest.ini", "ruff.toml", ".ruff.toml",
     ".flake8", "package.json", "go.mod", "Cargo.toml"}
)  # fmt: skip
_LANGUAGES = ("python", "node", "go", "rust")
_SINGLE: dict[str, Toolchain] = {"python": "python", "node": "node", "go": "go"}
# Which language a command found in CI needs, when no file of the repository says so.
_COMMAND_LANGUAGES = (
    ("python", r"\bpython3 -m\b|\bruff\b"),
    ("node", r"\b(?:npm|yarn|pnpm|node)\b"),
    ("go", r"\bgo (?:test|build|vet|mod)\b"),
    ("rust", r"\bcargo\b"),
)


@dataclass(frozen=True)
class Detection:
    """`markers`: for each language needed, the file that shows it (e.g. `package.json`)."""

    toolchain: Toolchain
    setup: Found | None = None
    build: Found | None = None
    lint: Found | None = None
    test: Found | None = None
    markers: tuple[str, ...] = ()

    @property
    def image(self) -> str | None:
        """The sandbox image the toolchain needs; None: the operator's default."""
        return IMAGES.get(self.toolchain)


def wanted(paths: Sequence[str]) -> list[str]:
    """The tracked paths detection reads: root build files, CI workflows, requirements
    files, and the first test file of each kind (only its name matters: `needs_text`)."""
    picked = [
        p
        for p in paths
        if p in _ROOT_FILES or df.REQUIREMENTS.fullmatch(p) or WORKFLOW.fullmatch(p)
    ]
    for marker in (df.PY_TEST, df.GO_TEST, df.JS_TEST):
        picked += [p for p in sorted(paths) if marker.fullmatch(p)][:1]
    return picked


def needs_text(path: str) -> bool:
    """False for files detection only needs to know exist (a lockfile can be megabytes):
    a caller may pass "" as their text."""
    markers = (df.PY_TEST, df.GO_TEST, df.JS_TEST)
    return path not in df.LOCKS and not any(m.fullmatch(path) for m in markers)


def detect_from(paths: Sequence[str], read: Callable[[str], str | None]) -> Detection:
    """Detection over a repository given as its file list and a reader (of the committed
    files: never a work tree the model or a person may have changed)."""
    return detect({p: (read(p) or "") if needs_text(p) else "" for p in wanted(paths)})


def detect(files: Mapping[str, str]) -> Detection:
    """`files`: repository path -> text, for (at least) the paths `wanted` picked."""
    tox, nox = df.tox(files), df.nox(files)
    ci = from_ci(files, {"tox": tox, "nox": nox})
    langs = _languages(files, ci)
    own = {
        "python": [tox, nox, df.python(files)],
        "node": [df.node(files)],
        "go": [df.go(files)],
        "rust": [df.rust(files)],
    }
    make, defaults = df.make(files), df.defaults(files)
    found = {
        role: ci.get(role)
        or _resolve(role, [own[x] for x in langs], make, [defaults.get(x, {}) for x in langs])
        for role in ROLES
    }
    return Detection(
        _toolchain(list(langs)),
        setup=found["setup"],
        build=found["build"],
        lint=found["lint"],
        test=found["test"],
        markers=tuple(langs.values()),
    )


def _resolve(role: str, own: list[list[Rules]], make: Rules, defaults: list[Rules]) -> Found | None:
    """Each language's most specific rule, joined across languages; the Makefile only when
    no language names the command; a language's default only when neither does."""
    chosen = [next((rules[role] for rules in group if role in rules), None) for group in own]
    if not any(chosen) and role in make:
        return make[role]
    return df.join([f for c, d in zip(chosen, defaults, strict=True) if (f := c or d.get(role))])


def _languages(files: Mapping[str, str], ci: Rules) -> dict[str, str]:
    """Language -> the file that shows it is needed, in a fixed order."""
    found: dict[str, str] = {}
    for path in [*df.PYTHON_FILES, *sorted(files)]:
        if path in files and (lang := _language_of(path)):
            found.setdefault(lang, path)
    for f in ci.values():
        for lang, pattern in _COMMAND_LANGUAGES:
            if re.search(pattern, f.command):
                found.setdefault(lang, f.file)
    return {lang: found[lang] for lang in _LANGUAGES if lang in found}


def _language_of(path: str) -> str | None:
    if path in df.PYTHON_FILES or df.REQUIREMENTS.fullmatch(path) or df.PY_TEST.fullmatch(path):
        return "python"
    return {"package.json": "node", "go.mod": "go", "Cargo.toml": "rust"}.get(path)


def _toolchain(langs: list[str]) -> Toolchain:
    """Polyglot when two of Python, Node and Go are needed (one image must hold both)."""
    main = [lang for lang in langs if lang != "rust"]
    if len(main) > 1:
        return "polyglot"
    if main:
        return _SINGLE[main[0]]
    return "rust" if langs else "unknown"


# --- the .codebot.yml fragment -------------------------------------------------------------

_MISSING = {
    "setup": "nothing to install found: no setup step runs",
    "build": "no build step found: none runs",
    "lint": "no linter configured: codebot's default (ruff on the changed Python files) runs",
    "test": "no test command found: write the one that runs your tests (`test:` is required)",
}
_NOTHING = """\
# codebot detect found nothing to run: no CI workflow step, tox.ini, noxfile.py,
# package.json, pyproject.toml, setup.py, setup.cfg, requirements*.txt, go.mod, Cargo.toml
# or Makefile target at HEAD says how to install, build, lint or test this repository.
# Write the commands into .codebot.yml yourself, for example:
# spec:
#   setup: <installs the dependencies; the only step with network>
#   build: <optional; runs first>
#   lint: <optional; default: ruff on the changed Python files>
#   test: <required: the command that runs your tests>
"""


def to_yaml(detection: Detection) -> str:
    """A `.codebot.yml` fragment to paste: each value under a comment saying where it came
    from, each value dumped by yaml so no command can break the file's syntax."""
    d = detection
    found = {role: getattr(d, role) for role in ROLES}
    if not any(found.values()):
        return _NOTHING
    markers = f" ({', '.join(d.markers)})" if d.markers else ""
    lines = [f"# codebot detect: toolchain {d.toolchain}{_comment(markers)}", "spec:"]
    for role, f in found.items():
        if f is None:
            lines.append(f"  # {role}: {_MISSING[role]}")
        else:
            lines += [f"  # {_comment(f.reason)}", f"  {role}: {_scalar(f.command)}"]
    if d.image:
        why = f"{d.toolchain} needs an image with its toolchain (allowed by the operator)"
        lines += ["sandbox:", f"  # {why}", f"  image: {_scalar(d.image)}"]
    elif "Cargo.toml" in d.markers:
        lines.append("# no codebot sandbox image ships cargo: set `sandbox: {image: ...}` to one")
    elif d.toolchain == "unknown":
        lines.append("# no toolchain recognised: these run in the operator's default image")
    return "\n".join(lines) + "\n"


def _scalar(value: str) -> str:
    dumped = yaml.safe_dump(value, width=2**31 - 1, allow_unicode=True)
    return dumped.removesuffix("\n...\n").removesuffix("\n")


def _comment(text: str) -> str:
    """One comment line, whatever a file name or job name holds."""
    return "".join(c if c.isprintable() else " " for c in text)
