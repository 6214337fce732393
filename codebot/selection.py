"""Test selection: a first pass over the tests most likely to fail, before the full suite.

The baseline teaches it (`learn`): which tests failed then, as pytest ids, and how to narrow
the test command. Each later check runs `plan`'s command first (those tests and the changed
test files, stopping at the first failure); the full suite still runs before any green.
Pure: data in, data out. Every argument it builds is shell-quoted, for test names and paths
come from code the model may have written.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace

from codebot.junit import JUnitReport
from codebot.records import CheckResult, ExecResult
from codebot.text import clip, tail

# A suite faster than this gains less from stopping early than a first pass costs to start
# (pytest's own start-up is ~0.3 s in a warm sandbox): below it every check runs in full.
SELECT_FROM_S = 1.0
MAX_SELECTED = 50  # more ids are narrowed to their files; more files are no selection

# Anything the shell would read as more than one plain command with plain words (lists,
# pipes, redirections, expansions, globs, comments): re-quoting its words would change what
# runs, so such a command is never narrowed.
_SHELL = re.compile(r"[;&|<>()$`\\*?\[\]{}~!#\n\r]")
_ENV = re.compile(r"[A-Za-z_]\w*=")
_PYTHON = re.compile(r"python(?:\d+(?:\.\d+)?)?")
_TEST_FILE = re.compile(r"(?:test_[^/]*|[^/]*_test)\.py")  # pytest's default python_files
# A test name pytest accepts back as an id: an identifier, maybe parametrised with printable
# ASCII holding no brackets (pytest itself escapes anything else as \xNN).
_NAME = re.compile(r"[A-Za-z_]\w*(?:\[[ -Z\\^-~]*\])?")
_ROOTDIR = re.compile(r"^rootdir: (/[^,\n]*)", re.MULTILINE)

# pytest's options (and common plugins') by how they read the next word; an option not
# listed is kept only when the next word is another option, so it cannot be a path's owner.
_SHORT_FLAGS = set("qvxsl")
_SHORT_VALUED = set("kmpcoWrn")
_LONG_FLAGS = {
    "--quiet", "--verbose", "--exitfirst", "--showlocals", "--full-trace", "--runxfail",
    "--strict-markers", "--strict-config", "--strict", "--disable-warnings",
    "--disable-pytest-warnings", "--no-header", "--no-summary", "--doctest-modules",
    "--setup-show", "--cov-append", "--no-cov", "--benchmark-disable", "--benchmark-skip",
    "--continue-on-collection-errors", "--no-cov-on-fail", "--forked",
}  # fmt: skip
_LONG_VALUED = {
    "--tb", "--maxfail", "--durations", "--durations-min", "--rootdir", "--basetemp",
    "--confcutdir", "--deselect", "--ignore", "--ignore-glob", "--log-level",
    "--log-cli-level", "--log-format", "--color", "--capture", "--import-mode", "--timeout",
    "--dist", "--numprocesses", "--cov-report", "--cov-config", "--cov-fail-under", "--reruns",
    "--reruns-delay", "--pythonwarnings", "--override-ini", "--config-file", "--doctest-glob",
    "--show-capture", "--junit-prefix", "--assert", "--ds",
}  # fmt: skip


@dataclass(frozen=True)
class FirstPass:
    """What the baseline taught for narrowing: the test command's words without its paths
    (`head`), those paths (`scope`, where a changed test file must lie to be run first; empty
    when the command names none), the pytest ids of the tests that failed then, and the
    directories that held tests then (the scope when the command names no path)."""

    head: tuple[str, ...]
    scope: tuple[str, ...] = ()
    failing: tuple[str, ...] = ()
    test_dirs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Plan:
    """A first pass to run: the command, and in words what it runs."""

    command: str
    what: str


def learn(command: str, report: JUnitReport, ran: ExecResult, workdir: str) -> FirstPass | None:
    """How later checks can run a first pass, from the baseline's full run of `command`:
    its report (how each test ended, in which file) and its output (whose header names
    pytest's rootdir). None when a first pass cannot pay (a fast suite) or cannot be built
    safely (a command not narrowed, a rootdir outside the workspace)."""
    split = split_pytest(command)
    if ran.duration_s < SELECT_FROM_S or split is None:
        return None
    base = _rootdir_base(ran.output, workdir)
    if base is None:
        return None
    outcomes, files = report.outcomes, report.files
    failing = [n for n, outcome in outcomes.items() if outcome in ("failed", "errors")]
    ids = [i for i in (_pytest_id(n, files.get(n), base) for n in failing) if i]
    if {n for n, o in outcomes.items() if o != "skipped"} <= set(failing):
        ids = []  # every test failed: the first pass would be the full suite again
    ids = list(dict.fromkeys(ids))
    if len(ids) > MAX_SELECTED:
        ids = list(dict.fromkeys(i.partition("::")[0] for i in ids))
    located = (_join(base, file) for file in files.values())
    dirs = frozenset(posixpath.dirname(f) for f in located if f)
    head, scope = split
    return FirstPass(head, scope, tuple(ids) if len(ids) <= MAX_SELECTED else (), dirs)


def plan(first: FirstPass | None, changed: Sequence[str]) -> Plan | None:
    """The first pass for a check after the change to `changed` (paths relative to the test
    command's directory): the baseline's failing tests, then the changed test files within
    the suite's scope; None when there is nothing to run first."""
    if first is None:
        return None
    files = list(dict.fromkeys(p for p in map(_clean, changed) if p and _in_scope(p, first)))
    ids = [i for i in first.failing if i.partition("::")[0] not in files]
    if (not ids and not files) or len(ids) + len(files) > MAX_SELECTED:
        return None
    words = [*map(_quote, first.head), "-x", "--", *map(shlex.quote, [*ids, *files])]
    tests = [_plural(len(ids), "test")] if ids else []
    tests += [_plural(len(files), "changed test file")] if files else []
    return Plan(" ".join(words), f"ran the {' and '.join(tests)} most likely to fail first")


def settles(first: CheckResult, ran: ExecResult) -> bool:
    """Whether the first pass's failure is the test check's result: it names failing tests,
    timed out or was killed (the full suite holds those tests too); not a run that could not
    start them (an id pytest no longer finds, as when the change deleted a test)."""
    stopped = ran.timed_out or ran.oom_killed or first.tests_failed or first.tests_errors
    return not first.passed and bool(stopped)


def stopped(chosen: Plan, first: CheckResult) -> CheckResult:
    """A failing first pass as the test check: saying plainly that the suite did not run."""
    return replace(first, reason=f"{first.reason} ({chosen.what}; the full suite was not run)")


def followed(chosen: Plan, first: CheckResult, full: CheckResult, limit: int) -> CheckResult:
    """The full suite's check, its output opened by what ran first, its time both runs'."""
    verdict = "passed" if first.passed else f"could not run ({first.reason})"
    note = (
        f"{chosen.what}: {verdict} in {first.duration_s:.2f}s\n"
        f"$ {clip(chosen.command, 300)}\nthen the full suite:\n"
    )
    return replace(
        full,
        duration_s=round(first.duration_s + full.duration_s, 3),
        output=note + tail(full.output, max(0, limit - len(note))),
    )


def split_pytest(command: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """A pytest invocation's words without its path arguments, and those paths; None when
    the command is not one that can be narrowed by replacing its paths: another runner
    (tox, nox, make, unittest: they decide themselves what runs), a shell construct, or an
    option whose next word could be its value or a path."""
    if _SHELL.search(command):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    env = 0
    while env < len(words) and _ENV.match(words[env]):
        env += 1
    runner = _runner_words(words[env:])
    if not runner:
        return None
    head, paths = list(words[: env + runner]), []
    rest = words[env + runner :]
    i = 0
    while i < len(rest):
        word = rest[i]
        following = rest[i + 1] if i + 1 < len(rest) else None
        if word == "--":
            paths += rest[i + 1 :]
            break
        if not word.startswith("-") or word == "-":
            paths.append(word)
        else:
            takes = _takes_value(word, following)
            if takes is None:
                return None
            head += rest[i : i + 1 + takes]
            i += takes
        i += 1
    return tuple(head), tuple(paths)


def _runner_words(words: Sequence[str]) -> int:
    """How many words name pytest itself: `pytest`, `py.test`, `python -m pytest`."""
    if not words:
        return 0
    program = posixpath.basename(words[0])
    if program in ("pytest", "py.test"):
        return 1
    if _PYTHON.fullmatch(program) and list(words[1:3]) == ["-m", "pytest"]:
        return 3
    return 0


def _takes_value(option: str, following: str | None) -> int | None:
    """1 when `option` reads the next word as its value, 0 when not, None when unknown."""
    if option.startswith("--"):
        if "=" in option or option in _LONG_FLAGS:
            return 0
        if option in _LONG_VALUED:
            return 1
    elif all(c in _SHORT_FLAGS for c in option[1:]):
        return 0
    elif option[1] in _SHORT_VALUED:
        return 0 if len(option) > 2 else 1
    # An unknown option (or one whose value is optional, like --cov) is harmless only when
    # the next word cannot be its value.
    return 0 if following is None or following.startswith("-") else None


def _rootdir_base(output: str, workdir: str) -> str | None:
    """Where pytest's rootdir is, relative to the workspace ("" when it is the workspace,
    as when the header is hidden by -q: pytest's rootdir is the invocation directory unless
    a config file elsewhere says otherwise); None when it lies outside."""
    found = _ROOTDIR.search(output)
    if not found:
        return ""
    rootdir, workdir = posixpath.normpath(found.group(1)), posixpath.normpath(workdir)
    if rootdir == workdir:
        return ""
    if rootdir.startswith(workdir.rstrip("/") + "/"):
        return posixpath.relpath(rootdir, workdir)
    return None


def _join(base: str, file: str) -> str:
    return _clean(posixpath.join(base, file) if base else file)


def _clean(path: str) -> str:
    """A relative path as pytest can take it as an argument, or "" if it cannot be one."""
    path = posixpath.normpath(path) if path else ""
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts or "::" in path or "[" in path:
        return ""
    return path if path.isprintable() else ""


def _pytest_id(case: str, file: str | None, base: str) -> str:
    """The pytest id, relative to the workspace, of a JUnit test id (`classname::name`:
    classname is the dotted path of `file`, relative to the rootdir at `base`, then the
    classes), or its file when the name cannot be given back safely; "" when neither (no
    file known, or one that is not a test file)."""
    path = _join(base, file) if file else ""
    if not file or not path or not _TEST_FILE.fullmatch(posixpath.basename(path)):
        return ""
    classname, _, name = case.partition("::")
    module = file.removesuffix(".py").replace("/", ".")
    if not name or not (classname == module or classname.startswith(module + ".")):
        return path  # a collection error (named by its module), or a name we cannot read
    classes = classname[len(module) + 1 :].split(".") if classname != module else []
    if not all(c.isidentifier() for c in classes) or not _NAME.fullmatch(name):
        return path
    return "::".join([path, *classes, name])


def _in_scope(path: str, first: FirstPass) -> bool:
    """Whether the full suite would run `path`: a test file under a path the command names,
    or, when it names none, under a directory that held tests at the baseline."""
    if not _TEST_FILE.fullmatch(posixpath.basename(path)):
        return False
    roots = [posixpath.normpath(p.partition("::")[0]) for p in first.scope] or first.test_dirs
    return any(r in ("", ".") or path == r or path.startswith(r + "/") for r in roots)


def _quote(word: str) -> str:
    """A word of the narrowed command, quoted; a leading NAME=value keeps its name bare so
    the shell still reads it as an assignment."""
    if (env := _ENV.match(word)) and not word.startswith("-"):
        return env.group(0) + shlex.quote(word[env.end() :])
    return shlex.quote(word)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
