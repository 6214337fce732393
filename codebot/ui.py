"""How a run's progress looks: a live panel on a terminal, log lines elsewhere.

The source is the runner's event lines (`codebot.runner.Event`, a plain string callback):
they are the contract, so every view here reads only them. `RunState` is the pure part, a
fold of lines into what a person wants to see (stage, iteration, each check's result,
tokens, cost, elapsed time); the sinks only draw it. A sink is called with each line and
closed once, whatever happened, before the CLI prints its final lines.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

Write = Callable[[str], None]

# codebot.lines.iteration_line, e.g. "iteration 2: 1 edit(s) applied, 0 refused;
# lint passed, test failed (5 tests failed); 1996 tokens, $0.0020; 0.4s"
_ITERATION = re.compile(
    r"^iteration (?P<n>\d+): (?P<edits>[^;]*); (?P<checks>.*); (?P<tokens>\d+) tokens"
    r"(?:, \$(?P<cost>[\d.]+))?; (?P<secs>[\d.]+)s$"
)
_CHECK = re.compile(r"^(?P<name>.+?) (?P<result>passed|failed)(?: \((?P<reason>.*)\))?$")
# The lines that prepare a run; GitHub's log folds them, the panel shows them as steps.
_PREPARING = ("workspace", "resuming run", "environment", "setup", "sandbox")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    reason: str = ""


@dataclass(frozen=True)
class Step:
    """One line of the panel: `ok` None while it is informational or still running."""

    label: str
    detail: str
    ok: bool | None = None
    checks: tuple[Check, ...] = ()


@dataclass(frozen=True)
class RunState:
    """What the lines so far say: finished steps, the stage now, tokens and cost so far
    (`cost` None once an iteration's price was unknown)."""

    steps: tuple[Step, ...] = ()
    stage: str = "starting"
    iteration: int = 0
    tokens: int = 0
    cost: float | None = 0.0
    done: bool = False

    def after(self, line: str) -> RunState:
        """The state once `line` is read; a line it does not know becomes a plain step."""
        key, _, rest = line.partition(": ")
        if (m := _ITERATION.match(line)) is not None:
            return self._iteration(m)
        if key in ("baseline", "verify", "setup"):
            checks = parse_checks(rest)
            stage = {"baseline": "iteration 1 · model call, edits, checks"}.get(key, self.stage)
            step = Step(key, rest, all(c.passed for c in checks) if checks else None, checks)
            return replace(self, steps=(*self.steps, step), stage=stage)
        if key == "stopped":
            passed = rest.startswith(("passed", "nothing_to_do"))
            return replace(self, steps=(*self.steps, Step(key, rest, passed)), stage=key, done=True)
        if key == "warning":
            return replace(self, steps=(*self.steps, Step(key, rest)))
        if line.startswith(_PREPARING):
            building = rest.startswith("building")
            step = Step(key, rest, None if building else True) if rest else Step("resume", line)
            return replace(self, steps=(*self.steps, step), stage=_next_stage(key, rest, self))
        return replace(self, steps=(*self.steps, Step("", line)))

    def _iteration(self, m: re.Match[str]) -> RunState:
        number = int(m["n"])
        said = m["checks"]
        checks = () if said.startswith("checks not run") else parse_checks(said)
        passed = bool(checks) and all(c.passed for c in checks)
        detail = m["edits"] if checks else f"{m['edits']}; {said}"
        step = Step(f"iteration {number}", detail, passed if checks else None, checks)
        cost = None if self.cost is None or m["cost"] is None else self.cost + float(m["cost"])
        stage = (
            "verifying the change in a fresh sandbox"
            if passed
            else f"iteration {number + 1} · model call, edits, checks"
        )
        return replace(
            self,
            steps=(*self.steps, step),
            stage=stage,
            iteration=number,
            tokens=self.tokens + int(m["tokens"]),
            cost=cost,
        )


def _next_stage(key: str, rest: str, state: RunState) -> str:
    """What the run does after a preparation line, until the next line arrives."""
    if key == "environment":
        return "running the setup step" if rest.startswith("building") else "starting the sandbox"
    if key == "sandbox" and " ready in " in rest:
        return "running the checks before any change (baseline)"
    return "preparing the environment" if key == "workspace" else state.stage


def parse_checks(text: str) -> tuple[Check, ...]:
    """`lint passed, test failed (5 tests failed)` as checks; commas inside a reason's
    parentheses do not split it."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    found = [_CHECK.match(p) for p in parts if p]
    if not all(found):
        return ()
    return tuple(Check(m["name"], m["result"] == "passed", m["reason"] or "") for m in found if m)


class Sink(Protocol):
    """What the CLI passes as a run's `on_event`, and closes before its final lines."""

    def __call__(self, line: str) -> None: ...

    def close(self) -> None: ...


class Silent:
    """`--quiet`: no progress at all, only the final lines."""

    def __call__(self, line: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class LogLines:
    """Not a terminal: one indented line per event, as they come (logs, pipes, files)."""

    write: Write

    def __call__(self, line: str) -> None:
        self.write(f"  {line}")

    def close(self) -> None:
        pass


@dataclass
class ActionsLog:
    """On GitHub Actions: the preparation folded into a `::group::`, results and warnings
    in the open (a warning also as a `::warning::` annotation on the run's page)."""

    write: Write
    _open: bool = False

    def __call__(self, line: str) -> None:
        preparing = line.startswith(_PREPARING)
        if preparing and not self._open:
            self.write("::group::codebot: workspace, environment and sandbox")
            self._open = True
        elif not preparing:
            self.close()
        if line.startswith("warning: "):
            self.write(f"::warning::{_escape(line.removeprefix('warning: '))}")
        self.write(f"  {line}")

    def close(self) -> None:
        if self._open:
            self.write("::endgroup::")
            self._open = False


def _escape(text: str) -> str:
    """Workflow commands end at a newline; `%`, CR and LF are escaped as GitHub documents."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


@dataclass
class LiveView:
    """On a terminal: a panel redrawn in place (rich.live) with the steps so far, a spinner
    on the stage now, the elapsed time and the tokens and cost so far. The last frame stays."""

    console: Console
    clock: Callable[[], float] = time.monotonic
    state: RunState = field(default_factory=RunState)

    def __post_init__(self) -> None:
        from rich.live import Live

        self._started = self.clock()
        self._live = Live(
            _Panel(self), console=self.console, refresh_per_second=4, redirect_stderr=False
        )
        self._live.start()

    def __call__(self, line: str) -> None:
        self.state = self.state.after(line)
        self._live.refresh()

    def close(self) -> None:
        self.state = replace(self.state, done=True)
        self._live.stop()

    def elapsed(self) -> float:
        return self.clock() - self._started


@dataclass(frozen=True)
class _Panel:
    """The panel, drawn from the view's state at each refresh (so the time keeps moving)."""

    view: LiveView

    def __rich__(self) -> RenderableType:
        room = max(2, self.view.console.size.height - 2)  # the stage line, and the cursor
        return render(self.view.state, self.view.elapsed(), room)


def render(state: RunState, elapsed_s: float, room: int | None = None) -> RenderableType:
    """The panel for `state`: one row per step (the latest `room`, so the stage line stays
    on the screen), then the stage line with what is spent."""
    from rich.console import Group
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    rows = Table.grid(padding=(0, 1))
    shown = state.steps if room is None or len(state.steps) <= room else state.steps[-room + 1 :]
    if len(shown) < len(state.steps):
        rows.add_row(Text("…", "dim"), "", Text(f"{len(state.steps) - len(shown)} earlier", "dim"))
    for step in shown:
        rows.add_row(_mark(step), Text(step.label, style="bold"), _detail(step))
    cost = "cost unknown" if state.cost is None else f"${state.cost:.4f}"
    spent = f"{_clock(elapsed_s)} elapsed · {state.tokens:,} tokens · {cost}"
    if state.done:
        return Group(rows, Text(f"  {spent}", style="dim"))
    now = Spinner("dots", Text.assemble((state.stage, "cyan"), ("   " + spent, "dim")))
    return Group(rows, now)


def _mark(step: Step) -> RenderableType:
    from rich.text import Text

    if step.label == "warning":
        return Text("!", "yellow")
    return {True: Text("✓", "green"), False: Text("✗", "red"), None: Text("•", "dim")}[step.ok]


def _detail(step: Step) -> RenderableType:
    from rich.text import Text

    if not step.checks:
        return Text(step.detail)
    text = Text(f"{step.detail} · " if step.label.startswith("iteration") else "")
    for i, c in enumerate(step.checks):
        text.append(" · " if i else "")
        text.append(f"{c.name} ")
        text.append("✓" if c.passed else "✗", "green" if c.passed else "red")
        text.append(f" {c.reason}" if c.reason else "")
    return text


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def choose(
    *,
    quiet: bool,
    env: Mapping[str, str],
    tty: bool,
    write: Write,
    console: Callable[[], Console],
) -> Sink:
    """The sink for where the output goes: nothing with --quiet, GitHub's folding on Actions,
    the live panel on a terminal, log lines otherwise."""
    if quiet:
        return Silent()
    if env.get("GITHUB_ACTIONS") == "true":
        return ActionsLog(write)
    if tty:
        return LiveView(console())
    return LogLines(write)
