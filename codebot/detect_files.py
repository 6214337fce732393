"""What a repository's own build files say about its commands, one reader per file kind.

Pure helpers of `codebot.detect`: each reader takes the committed files (path -> text) and
gives a role -> `Found` mapping (roles: setup, build, lint, test), or nothing. tox and nox
envs are read for their commands, never run through tox or nox, which would need the
network to build their environments.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ROLES = ("setup", "build", "lint", "test")
PYTHON_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "noxfile.py", "Pipfile")
LOCKS = {
    "package-lock.json": "npm ci",
    "yarn.lock": "yarn install --frozen-lockfile",
    "pnpm-lock.yaml": "pnpm install --frozen-lockfile",
}
MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
REQUIREMENTS = re.compile(r"requirements(?:[-_.][\w.-]*)?\.txt")
PY_TEST = re.compile(r"(?:.*/)?test_[^/]*\.py|(?:.*/)?[^/]*_test\.py|tests?/.*\.py")
GO_TEST = re.compile(r"(?:.*/)?[^/]+_test\.go")
JS_TEST = re.compile(r"(?:.*/)?[^/]+\.test\.[cm]?[jt]sx?")
LINT_ENVS = ("lint", "flake8", "ruff", "style", "pep8", "linters")
_TEST_ENVS = ("tests", "test", "unit", "pytest")
_EXTRAS = ("test", "tests", "testing", "dev")
_PYTEST = "python3 -m pytest -q"
_NPM_PLACEHOLDER = "no test specified"  # what `npm init` writes as the test script
_REWRITES = (
    (re.compile(r"(?:python3?\s+-m\s+)?pip3?(?=\s)"), "python3 -m pip"),
    (re.compile(r"(?:python3?\s+-m\s+)?py\.?test(?=\s|$)"), "python3 -m pytest"),
    (re.compile(r"(?:python3?\s+-m\s+)?flake8(?=\s|$)"), "python3 -m flake8"),
    (re.compile(r"python3?\s+-m\s+"), "python3 -m "),
)


@dataclass(frozen=True)
class Found:
    """A command and where the repository asks for it, so a person can check the guess."""

    command: str
    file: str
    line: int  # 1-based
    why: str

    @property
    def reason(self) -> str:
        return f"`{self.file}:{self.line}`: {self.why}"


Rules = dict[str, Found]  # role -> Found
Files = Mapping[str, str]


def join(founds: Sequence[Found]) -> Found | None:
    """Commands several sources ask for, run one after the other; every source is named."""
    unique = list({f.command: f for f in reversed(founds)}.values())[::-1]
    if len(unique) < 2:
        return unique[0] if unique else None
    head, *rest = unique
    why = head.why + "".join(f"; `{f.command}` from {f.reason}" for f in rest)
    return Found(" && ".join(f.command for f in unique), head.file, head.line, why)


def normalise(command: str) -> str:
    """`python3 -m` for Python tools: a bare `python`, or a console script pip put outside
    PATH, may not exist in the sandbox."""
    command = " ".join(command.split())
    for pattern, replacement in _REWRITES:
        if pattern.match(command):
            return pattern.sub(replacement, command, count=1)
    return command


def pip_install(args: Sequence[str]) -> str:
    """One quoted `pip install`, each requirement, `-r` or `-e` unit once."""
    units: list[tuple[str, ...]] = []
    rest = iter(args)
    for arg in rest:
        unit = (arg, next(rest, "")) if arg in ("-e", "-r", "-c") else (arg,)
        units += [] if unit in units else [unit]
    return "python3 -m pip install " + shlex.join(a for unit in units for a in unit if a)


def line_of(text: str, pattern: str, start: int = 0) -> int | None:
    """1-based line of the first match of `pattern` (multiline) at or after `start`."""
    match = re.compile(pattern, re.M).search(text, start)
    return text.count("\n", 0, match.start()) + 1 if match else None


def sections(text: str) -> dict[str, dict[str, tuple[str, int]]]:
    """INI and TOML alike, as far as detection needs: section -> key -> (value, line), the
    header's own line under the key "". Indented lines continue the key above them."""
    out: dict[str, dict[str, tuple[str, int]]] = {}
    section, key = "", ""
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        header = re.fullmatch(r"\[\[?([^\[\]]+)\]\]?\s*(?:#.*)?", line)
        if header and not raw[0].isspace():
            section, key = header[1].strip(), ""
            out.setdefault(section, {})[""] = ("", n)
        elif raw[0].isspace() and key:
            value, at = out[section][key]
            out[section][key] = (f"{value}\n{line}", at)
        elif match := re.match(r"""["']?([\w.-]+)["']?\s*[=:]\s*(.*)""", line):
            key = match[1]
            out.setdefault(section, {"": ("", n)})[key] = (match[2], n)
    return out


def _lines(value: str) -> list[str]:
    return [s for line in value.splitlines() if (s := line.split(" #")[0].strip())]


# --- tox and nox ---------------------------------------------------------------------------


def tox(files: Files) -> Rules:
    """The default env's commands as the test, a lint env's as the lint, and what those
    envs install as the setup."""
    secs = sections(files.get("tox.ini", ""))
    out: Rules = {}
    args: list[str] = []
    setup_line = 0
    for section, role in [("testenv", "test"), *((f"testenv:{n}", "lint") for n in LINT_ENVS)]:
        env = secs.get(section, {})
        command = _tox_commands(env["commands"][0]) if "commands" in env else None
        if command is None or role in out:
            continue
        out[role] = Found(
            command, "tox.ini", env["commands"][1], f"the tox env `{section}` runs it"
        )
        args += _tox_installs(env, files)
        setup_line = setup_line or env.get("deps", env.get("extras", env[""]))[1]
    if args and "{" not in "".join(args):
        out["setup"] = Found(pip_install(args), "tox.ini", setup_line, "the tox envs install these")
    return out


def _tox_installs(env: dict[str, tuple[str, int]], files: Files) -> list[str]:
    args: list[str] = []
    extras = ",".join(e for e in re.split(r"[\s,]+", env.get("extras", ("", 0))[0]) if e)
    if env.get("skip_install", ("", 0))[0].strip().lower() != "true" and installable(files):
        args += ["-e", f".[{extras}]" if extras else "."]
    for dep in _lines(env.get("deps", ("", 0))[0].replace("{toxinidir}/", "")):
        args += ["-r", dep[2:].strip()] if dep.startswith("-r") else [dep]
    return args


def _tox_commands(value: str) -> str | None:
    subs = {"{posargs}": "", "{toxinidir}/": "", "{toxinidir}": ".", "{envpython}": "python3"}
    commands = []
    for line in _lines(value):
        for key, replacement in subs.items():
            line = line.replace(key, replacement)
        if "{" in line:
            return None  # a substitution only tox can make
        commands.append(normalise(line.removeprefix("- ")))
    return " && ".join(commands) or None


def nox(files: Files) -> Rules:
    """Sessions named like tests or lint: their `session.run` calls with literal arguments
    are the commands, their `session.install` calls the setup."""
    try:
        tree = ast.parse(files.get("noxfile.py", ""))
    except (SyntaxError, ValueError):
        return {}
    out: Rules = {}
    installs: list[tuple[int, list[str]]] = []
    for fn in tree.body:
        name = _nox_session(fn)
        role = "test" if name in _TEST_ENVS else "lint" if name in LINT_ENVS else ""
        calls = _nox_calls(fn) if role and role not in out else []
        runs = [(line, args) for line, kind, args in calls if kind == "run"]
        if runs:
            command = " && ".join(normalise(shlex.join(args)) for _, args in runs)
            out[role] = Found(
                command, "noxfile.py", runs[0][0], f"the nox session `{name}` runs it"
            )
            installs += [(line, args) for line, kind, args in calls if kind == "install"]
    if installs:
        args = [a for _, call in installs for a in call]
        why = "the nox sessions install these"
        out["setup"] = Found(pip_install(args), "noxfile.py", installs[0][0], why)
    return out


def _nox_session(fn: ast.stmt) -> str:
    if not isinstance(fn, ast.FunctionDef):
        return ""
    for dec in fn.decorator_list:
        call = dec if isinstance(dec, ast.Call) else None
        if ast.unparse(call.func if call else dec) in ("nox.session", "session"):
            names = [k.value for k in (call.keywords if call else []) if k.arg == "name"]
            named = names[0].value if names and isinstance(names[0], ast.Constant) else None
            return str(named or fn.name)
    return ""


def _nox_calls(fn: ast.stmt) -> list[tuple[int, str, list[str]]]:
    """(line, run|install, literal arguments) in source order; `*session.posargs` is left out."""
    calls = []
    for node in ast.walk(fn):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        args = [a for a in node.args if not isinstance(a, ast.Starred)]
        literal = [
            a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)
        ]
        if node.func.attr in ("run", "install") and args and len(literal) == len(args):
            calls.append((node.lineno, node.func.attr, literal))
    return sorted(calls, key=lambda call: call[0])


# --- each language's own files -------------------------------------------------------------


def python(files: Files) -> Rules:
    """Packaging metadata and configuration; lint only when the repository configures a
    linter, so codebot's default (ruff on the changed files) applies otherwise."""
    found = {
        "setup": _extra_install(files) or _requirements_install(files) or _package_install(files),
        "test": _pytest_configured(files),
        "lint": _lint_configured(files),
    }
    return {role: f for role, f in found.items() if f}


def _extra_install(files: Files) -> Found | None:
    """A test extra installs the package and what its tests need in one step."""
    for path, section in (
        ("pyproject.toml", "project.optional-dependencies"),
        ("setup.cfg", "options.extras_require"),
    ):
        extras = sections(files.get(path, "")).get(section, {})
        for name in (e for e in _EXTRAS if e in extras):
            why = f"the `{name}` extra of [{section}] holds the test dependencies"
            return Found(pip_install(["-e", f".[{name}]"]), path, extras[name][1], why)
    for name in _EXTRAS:
        if (at := line_of(files.get("setup.py", ""), rf"""["']{name}["']\s*:""")) is not None:
            why = f"the `{name}` extra of `extras_require` holds the test dependencies"
            return Found(pip_install(["-e", f".[{name}]"]), "setup.py", at, why)
    return None


def _requirements_install(files: Files) -> Found | None:
    """The dev/test requirements first, plus the main ones unless the first includes them."""
    reqs = sorted(p for p in files if REQUIREMENTS.fullmatch(p))
    chosen = [p for p in reqs if re.search(r"dev|test", p)][:1]
    included = chosen and line_of(files[chosen[0]], r"^\s*-r\s*requirements\.txt\s*$")
    chosen += ["requirements.txt"] if "requirements.txt" in files and not included else []
    if not chosen:
        return None
    args = [a for p in chosen for a in ("-r", p)]
    editable = any(line_of(files[p], r"^\s*-e\s") for p in chosen)
    args = ["-e", ".", *args] if installable(files) and not editable else args
    what = "the test dependencies" if re.search(r"dev|test", chosen[0]) else "the dependencies"
    return Found(pip_install(args), chosen[0], 1, f"`{chosen[0]}` lists {what}")


def _package_install(files: Files) -> Found | None:
    for path, section in (("pyproject.toml", "project"), ("setup.cfg", "metadata")):
        if section in (secs := sections(files.get(path, ""))):
            why = "the package and its dependencies are installed"
            return Found(pip_install(["-e", "."]), path, secs[section][""][1], why)
    if "setup.py" in files:
        return Found(pip_install(["-e", "."]), "setup.py", 1, "the package has a setup.py")
    return None


def installable(files: Files) -> bool:
    return _package_install(files) is not None


def _pytest_configured(files: Files) -> Found | None:
    for path, section in (
        ("pyproject.toml", "tool.pytest.ini_options"), ("pytest.ini", "pytest"),
        ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest"),
    ):  # fmt: skip
        if section in (secs := sections(files.get(path, ""))):
            return Found(_PYTEST, path, secs[section][""][1], f"pytest is configured ([{section}])")
    dependency = r"""(?:^|(?<=["'\s]))pytest(?:[<>=~!\[;,"'\s]|$)"""
    for path in [*PYTHON_FILES, *sorted(p for p in files if REQUIREMENTS.fullmatch(p))]:
        if (at := line_of(files.get(path, ""), dependency)) is not None:
            return Found(_PYTEST, path, at, "pytest is a declared dependency")
    return None


def _lint_configured(files: Files) -> Found | None:
    secs = sections(files.get("pyproject.toml", ""))
    if ruff := next((s for s in secs if s.startswith("tool.ruff")), None):
        why = "ruff is configured ([tool.ruff])"
        return Found("ruff check .", "pyproject.toml", secs[ruff][""][1], why)
    if path := next((p for p in ("ruff.toml", ".ruff.toml") if p in files), None):
        return Found("ruff check .", path, 1, "ruff is configured")
    for path in ("setup.cfg", "tox.ini", ".flake8"):
        if "flake8" in (secs := sections(files.get(path, ""))):
            why = "flake8 is configured ([flake8])"
            return Found("python3 -m flake8", path, secs["flake8"][""][1], why)
    return None


def node(files: Files) -> Rules:
    """package.json scripts, run by the package manager its lockfile belongs to."""
    text = files.get("package.json")
    if text is None:
        return {}
    try:
        scripts = json.loads(text).get("scripts") or {}
    except (ValueError, AttributeError):
        scripts = {}
    lock = next((p for p in LOCKS if p in files), None)
    manager = LOCKS[lock].split()[0] if lock else "npm"
    setup = (
        Found(LOCKS[lock], lock, 1, "the lockfile pins the dependencies")
        if lock
        else Found("npm install", "package.json", 1, "no lockfile: npm resolves the versions")
    )
    out = {"setup": setup}
    start = max(text.find('"scripts"'), 0)
    for role in ("test", "lint", "build"):
        script = scripts.get(role) if isinstance(scripts, dict) else None
        if isinstance(script, str) and _NPM_PLACEHOLDER not in script:
            command = f"{manager} test" if role == "test" else f"{manager} run {role}"
            at = line_of(text, rf'"{role}"\s*:', start) or 1
            out[role] = Found(command, "package.json", at, f"package.json has a `{role}` script")
    return out


def go(files: Files) -> Rules:
    text = files.get("go.mod")
    if text is None:
        return {}
    at = line_of(text, r"^module\s") or 1
    out = {
        role: Found(command, "go.mod", at, f"a Go module: `{command}` {what}")
        for role, command, what in (
            ("build", "go build ./...", "compiles every package"),
            ("lint", "go vet ./...", "is the Go toolchain's own checker"),
            ("test", "go test ./...", "tests every package"),
        )
    }
    if (required := line_of(text, r"^require\b")) is not None:
        why = "the module's dependencies are downloaded once, before the offline checks"
        out["setup"] = Found("go mod download", "go.mod", required, why)
    return out


def rust(files: Files) -> Rules:
    """`--offline` after `cargo fetch`: cargo would otherwise try to update its index."""
    secs = sections(files.get("Cargo.toml", ""))
    if "Cargo.toml" not in files:
        return {}
    at = secs["package"][""][1] if "package" in secs else 1
    fetch = secs["dependencies"][""][1] if "dependencies" in secs else at
    why = "a Rust crate (Cargo.toml [package])"
    return {
        "setup": Found("cargo fetch", "Cargo.toml", fetch, "the crate's dependencies are fetched"),
        "build": Found("cargo build --offline", "Cargo.toml", at, why),
        "test": Found("cargo test --offline", "Cargo.toml", at, why),
    }


def make(files: Files) -> Rules:
    """Only targets the Makefile has; `check` stands in for a missing `test`."""
    path = next((p for p in MAKEFILES if p in files), "")
    targets: dict[str, int] = {}
    for n, line in enumerate(files.get(path, "").splitlines(), 1):
        match = re.match(r"([A-Za-z0-9_./ -]+?)\s*::?(?!=)", line)
        if match and not line.startswith("."):
            for target in match[1].split():
                targets.setdefault(target, n)
    out: Rules = {}
    for role, names in (("test", ("test", "check")), ("lint", ("lint",)), ("build", ("build",))):
        if name := next((t for t in names if t in targets), None):
            why = f"the Makefile has a `{name}` target"
            out[role] = Found(f"make {name}", path, targets[name], why)
    return out


def defaults(files: Files) -> dict[str, Rules]:
    """What test files imply when nothing names a runner, per language."""
    out: dict[str, Rules] = {}
    if py := next((p for p in sorted(files) if PY_TEST.fullmatch(p)), None):
        why = "a Python test file and no configured runner: pytest collects it"
        out["python"] = {"test": Found(_PYTEST, py, 1, why)}
    if js := next((p for p in sorted(files) if JS_TEST.fullmatch(p)), None):
        why = "a JavaScript test file and no `test` script: node's own runner finds it"
        out["node"] = {"test": Found("node --test", js, 1, why)}
    return out
