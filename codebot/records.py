"""The data that flows between stages: frozen, typed, serialisable to JSON.

The run record built from these is the single source for logs, the PR body and benchmarks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from codebot.stops import StopReason

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class Completion:
    """One model reply. `cost_usd` is None when the model's price is unknown."""

    text: str
    usage: Usage
    model: str
    latency_s: float
    cost_usd: float | None = None
    attempts: int = 1
    rung: str = ""  # the model ladder's rung that answered (codebot.ladder); "" without one


EditFormat = Literal["search_replace", "diff"]


@dataclass(frozen=True)
class Edit:
    """One change the model asked for, in a format-independent shape.

    `search` empty with `replace` set creates the file (or fails if it exists with other
    content); `delete` removes it. `hint_line` is the 1-based line a diff hunk claimed,
    used only to pick between several equal matches.
    """

    path: str
    search: str
    replace: str
    format: EditFormat
    block: int
    hint_line: int | None = None
    delete: bool = False


EditStatus = Literal["applied", "already_applied", "refused"]


@dataclass(frozen=True)
class EditOutcome:
    """What happened to one edit. `detail` says how it matched or, if refused, why and
    what the closest lines were: it is sent back to the model verbatim."""

    path: str
    block: int
    status: EditStatus
    detail: str


@dataclass(frozen=True)
class ExecResult:
    """A command run inside the sandbox."""

    command: str
    exit_code: int
    output: str
    duration_s: float
    timed_out: bool = False
    truncated: bool = False
    oom_killed: bool = False
    pids_limited: bool = False  # a fork was refused at the sandbox's process limit


CheckName = Literal["setup", "build", "lint", "test", "base tests"]


@dataclass(frozen=True)
class FailedTest:
    name: str
    detail: str


@dataclass(frozen=True)
class CheckResult:
    """One check (build, lint or test) as data. `output` is trimmed for people and models;
    test counts are None when the runner's results could not be read. `preexisting`: lint
    findings that were there before the change and were left alone (they fail nothing)."""

    name: CheckName
    command: str
    passed: bool
    exit_code: int
    duration_s: float
    output: str
    reason: str = ""
    tests_passed: int | None = None
    tests_failed: int | None = None
    tests_errors: int | None = None
    tests_skipped: int | None = None
    failing_tests: tuple[FailedTest, ...] = ()
    preexisting: int = 0


# How an iteration ended: the name of the loop's decision (codebot.loop.Decision).
IterationEnd = Literal["green", "retry", "stop"]


@dataclass(frozen=True)
class Iteration:
    number: int
    prompt_chars: int
    reply: str
    usage: Usage
    cost_usd: float | None
    model_s: float
    edits: tuple[EditOutcome, ...]
    checks: tuple[CheckResult, ...]
    decision: IterationEnd
    feedback: str
    duration_s: float
    rung: str = ""  # the model ladder's rung whose reply this was; "" without a ladder
    # Best-of-N (codebot.candidates): every candidate of this iteration, the chosen one
    # included; `usage` and `cost_usd` above are then theirs summed. Empty for one reply.
    candidates: tuple[Candidate, ...] = ()


CandidateOutcome = Literal["green", "retry", "stop", "not checked", "error"]


@dataclass(frozen=True)
class Candidate:
    """One of an iteration's independent replies (best-of-N): what it cost, what its checks
    said in its own try (`check_s`: applying its edits and checking them), and whether its
    work went on (`chosen`). Each was tried on the run's files as the iteration began, and
    only the chosen one's edits reach the branch."""

    index: int  # 1-based, in the order they were asked
    outcome: CandidateOutcome
    detail: str  # the failing checks and test counts, the stop, or the model error
    failing_tests: int | None  # None: no test ran
    usage: Usage
    cost_usd: float | None
    model_s: float
    chosen: bool
    reply: str
    check_s: float = 0.0
    rung: str = ""  # the ladder rung that answered (codebot.ladder)


@dataclass(frozen=True)
class RungUsage:
    """What one rung of the model ladder (codebot.ladder) spent in a run, for the record and
    the PR body. `max_cost_usd` is the rung's own cap (None: none)."""

    name: str
    model: str
    calls: int
    usage: Usage
    cost_usd: float | None
    max_cost_usd: float | None = None


@dataclass(frozen=True)
class GroundingPassage:
    """A passage of team knowledge the model was shown (codebot.knowledge): where it is
    (path:line or a review comment's URL), its heading, its retrieval score, and the
    prompt that carried it: 0 the first, n the feedback on iteration n."""

    source: str
    heading: str
    score: float
    iteration: int

    @classmethod
    def shown(cls, passages: Sequence[Any], iteration: int) -> tuple[GroundingPassage, ...]:
        """What the record keeps of `passages` (codebot.knowledge.Passage) shown at
        `iteration`."""
        return tuple(cls(p.source, p.heading, round(p.score, 6), iteration) for p in passages)


@dataclass(frozen=True)
class RunRecord:
    """Everything a run did. Written as run.json; the PR body is rendered from it."""

    run_id: str
    spec: dict[str, Any]
    model: str
    repo: str
    base_ref: str
    base_commit: str
    branch: str
    started_at: str
    finished_at: str
    stop_reason: StopReason
    stop_detail: str
    baseline: tuple[CheckResult, ...]
    iterations: tuple[Iteration, ...]
    usage: Usage
    cost_usd: float | None
    head_commit: str | None = None
    files_changed: tuple[str, ...] = ()
    # The checks of the committed tree, checked out fresh into a new sandbox.
    final_checks: tuple[CheckResult, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    # Request options the endpoint refused and the run did without (e.g. temperature).
    model_adjustments: tuple[str, ...] = ()
    # Settings changed from what was asked (e.g. a sandbox value lowered to the ceiling).
    notes: tuple[str, ...] = ()
    # The image the sandboxes started from: cached, built (and how long it took), or none.
    environment: str = ""
    # The run began on a branch that already held codebot's commits (a rerun or follow-up):
    # its baseline is the PR branch's, not the base branch's.
    continued: bool = False
    # On GitHub: where the result went ("pushed BRANCH; pull request URL"), or why it did not.
    published: str = ""
    # The team knowledge the model was shown, prompt by prompt (codebot.knowledge).
    grounding: tuple[GroundingPassage, ...] = ()
    # Each rung of the model ladder, in order (one for a run with a single model).
    rungs: tuple[RungUsage, ...] = ()

    @property
    def passed(self) -> bool:
        return self.stop_reason == "passed"


@dataclass(frozen=True)
class RepoInfo:
    full_name: str
    default_branch: str
    clone_url: str
    url: str


@dataclass(frozen=True)
class IssueInfo:
    """An issue as the API reports it. `author_association` (OWNER, MEMBER, COLLABORATOR,
    CONTRIBUTOR, NONE, ...) is what callers use to decide whether to trust a trigger."""

    repo: str
    number: int
    title: str
    body: str
    labels: tuple[str, ...]
    author: str
    author_association: str
    state: str
    url: str
    is_pull_request: bool


@dataclass(frozen=True)
class PullInfo:
    """A pull request. `warnings` lists what was asked for but not done (e.g. a reviewer
    who is not a collaborator); `created` is False when an open PR was reused."""

    number: int
    url: str
    head: str
    base: str
    draft: bool
    state: str
    title: str = ""
    created: bool = False
    warnings: tuple[str, ...] = ()
    head_sha: str = ""  # the commit the head branch points at, as GitHub last saw it


@dataclass(frozen=True)
class FailedJob:
    """One failed CI job (a workflow job, or a third-party check run) as the forge reports
    it. `log` is the job's raw log (a check run's title, summary and text), cut to its tail
    when long: written by the repository's code and tools, so it is untrusted input."""

    id: int
    name: str
    conclusion: str
    failed_steps: tuple[str, ...]
    log: str
    url: str = ""


def to_jsonable(value: Any) -> Any:
    """Dataclasses to plain dicts/lists, keeping derived totals that readers want."""
    if isinstance(value, Usage):
        return {
            "prompt_tokens": value.prompt_tokens,
            "completion_tokens": value.completion_tokens,
            "total_tokens": value.total_tokens,
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def iteration_from_dict(data: dict[str, Any]) -> Iteration:
    """An Iteration back from run.json (for resuming a run)."""
    usage = data["usage"]
    checks = tuple(
        CheckResult(
            **{
                **c,
                "failing_tests": tuple(FailedTest(**f) for f in c.get("failing_tests", ())),
            }
        )
        for c in data["checks"]
    )
    return Iteration(
        number=data["number"],
        prompt_chars=data["prompt_chars"],
        reply=data["reply"],
        usage=Usage(usage["prompt_tokens"], usage["completion_tokens"]),
        cost_usd=data["cost_usd"],
        model_s=data["model_s"],
        edits=tuple(EditOutcome(**e) for e in data["edits"]),
        checks=checks,
        decision=data["decision"],
        feedback=data["feedback"],
        duration_s=data["duration_s"],
        rung=str(data.get("rung", "")),
        candidates=tuple(_candidate(c) for c in data.get("candidates", ())),
    )


def _candidate(data: dict[str, Any]) -> Candidate:
    usage = data["usage"]
    return Candidate(**{**data, "usage": Usage(usage["prompt_tokens"], usage["completion_tokens"])})
