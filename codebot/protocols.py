"""The seams. loop.py and github_flow.py depend on these, never on an SDK or a concrete class.

Each protocol has one real implementation and one test double:
- `Model`: llm.OpenAIModel (and ladder.LadderModel over several); tests/support/model_server.py
  (a scripted HTTP server).
- `Sandbox`: sandbox.DockerSandbox; tests/support/scripted_sandbox.py (strict, in-process).
- `Worktree`: edits.FileTree on the isolated clone; tests use it on a temp directory.
- `Forge`: forge.GitHubForge; tests/support/github_server.py (a REST server PyGithub talks to).
- `Recall`: knowledge.Recall over the on-disk index; tests give the loop a real index too.
- `Lanes`: lanes.Lanes (copies of the clone, each with a container); tests/test_candidates.py
  (copies of a temp dir, each with a scripted sandbox).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from codebot.errors import FileTooLarge, ModelError
from codebot.records import (
    CheckResult,
    Completion,
    Edit,
    EditOutcome,
    ExecResult,
    FailedJob,
    IssueInfo,
    Message,
    PullInfo,
    RepoInfo,
)

if TYPE_CHECKING:
    from codebot.knowledge import Passage


class Model(Protocol):
    name: str

    @property
    def adjustments(self) -> Sequence[str]:
        """Request options the endpoint refused and the run did without (e.g. temperature)."""
        ...

    def complete(self, messages: Sequence[Message]) -> Completion:
        """One chat completion. Raises ModelError once retries are spent."""
        ...


@runtime_checkable
class PricedModel(Model, Protocol):
    """A Model that knows its price. Optional: the loop's cost cap uses the worst case when a
    model offers one, and an estimate from the price paid so far when it does not."""

    def worst_case_usd(self, prompt_tokens: int) -> float | None:
        """The most the next call can cost with `prompt_tokens` in: the whole `max_tokens`
        out, at the price of whoever would answer; None when that is unknown."""
        ...


@runtime_checkable
class ManyModel(Model, Protocol):
    """A Model that can give several independent replies at once (best-of-N)."""

    def complete_many(self, messages: Sequence[Message], n: int) -> list[Completion | ModelError]:
        """`n` replies asked at once; a failed one is its error. Raises ModelError when every
        one failed."""
        ...


class Recall(Protocol):
    """The team's knowledge that bears on the work so far (codebot.knowledge)."""

    def __call__(
        self, files: Sequence[str], failures: str, skip: Collection[str]
    ) -> Sequence[Passage]:
        """The passages for the task, the `files` being edited and the current `failures`,
        best first and within the caller's budget; sources in `skip` were shown already."""
        ...


# Files read back after commands (`Sandbox.run_steps`): each path's bytes, None when it is
# absent or no regular file, or FileTooLarge (not read) when it is over its limit.
ReadBack = dict[str, bytes | FileTooLarge | None]


@dataclass(frozen=True)
class Step:
    """One command of several run in one go (`Sandbox.run_steps`), with its own time limit
    and environment."""

    command: str
    timeout_s: float
    env: Mapping[str, str] | None = None


class Sandbox(Protocol):
    """An isolated place to run the target repo's commands, alive for one run."""

    workdir: str

    def sync(self, root: Path, paths: Sequence[str] | None = None) -> None:
        """Copy `paths` (relative to `root`; all tracked content when None) into the sandbox
        workspace; a path missing under `root` is deleted in the sandbox."""
        ...

    def run(
        self, command: str, timeout_s: float, env: Mapping[str, str] | None = None
    ) -> ExecResult:
        """Run a shell command in the workspace; kill it and everything it started after
        `timeout_s`."""
        ...

    def run_steps(
        self, steps: Sequence[Step], paths: Mapping[str, int]
    ) -> tuple[tuple[ExecResult, ...], ReadBack]:
        """The `steps` one after the other, each as `run` runs it (leftovers killed between
        them), and one `ExecResult` each; then the files at `paths` (each with its byte
        limit) as `read_file` would give them, read once nothing the steps started is left.
        Every step runs, whatever an earlier one did; a later step cannot change what an
        earlier one showed. An implementation may run them in one exec: when an earlier
        step's output cannot be told from a later one's (a step printed the separator, or
        killed the shell running them), each step fails with that said."""
        ...

    def read_file(self, path: str, max_bytes: int) -> bytes | None:
        """A regular file's bytes from the sandbox (absolute, or relative to the workspace);
        None when absent. Raises FileTooLarge, having read none of it, when the file is over
        `max_bytes`: the host never holds more of what sandboxed code wrote than it chose."""
        ...

    def seal(self) -> None:
        """Cut the sandbox off every network for the rest of its life (a no-op when it never
        had one). Called after the setup step, before any other command runs."""
        ...

    def close(self) -> None:
        """Remove the container and everything it owns. Safe to call twice."""
        ...


class Lanes(Protocol):
    """Places besides the run's own where best-of-N candidates are checked side by side
    (codebot.candidates): each a copy of the run's work tree with a sandbox of its own, made
    from the run's environment. A lane holds the run's files as they were when it was made;
    whoever checks a candidate in it brings the files the run has changed since up to date."""

    @property
    def count(self) -> int:
        """How many there are: the worker limit less the run's own place."""
        ...

    def lane(self, k: int) -> tuple[Worktree, Sandbox]:
        """Lane `k` (0 to count - 1), once it is ready. Raises SandboxError when it could not
        be made; the candidates then go to the places that could."""
        ...


class Verifier(Protocol):
    """The verification of the tree an iteration would commit, checked beside the loop's
    own checks (codebot.speculate)."""

    def start(self, changed: Sequence[str]) -> None:
        """Begin checking the run's `changed` files as they are now, in a fresh sandbox."""
        ...

    def cancel(self) -> None:
        """The loop's checks did not pass: drop the check under way."""
        ...

    def instead(self) -> tuple[CheckResult, ...] | None:
        """When the checks are cheap, the check `start` began is the iteration's own: its
        results, once done (what stopped it is raised, e.g. SandboxError). None when the
        loop runs its own (costly checks, which a warm sandbox makes cheaper)."""
        ...


class Worktree(Protocol):
    """The files a run edits (the isolated clone's work tree), as the loop sees them."""

    @property
    def root(self) -> Path:
        """Where the tree is on the host (what `Sandbox.sync` copies from)."""
        ...

    def apply(self, edits: Sequence[Edit]) -> tuple[EditOutcome, ...]:
        """Apply edits in order, refusing unsafe or protected paths; one outcome per edit."""
        ...

    def read(self, path: str) -> str | None:
        """A regular file's text inside the tree (None if absent, a link, or outside)."""
        ...

    def snapshot(self, paths: Sequence[str]) -> dict[str, bytes | None]:
        """The bytes of `paths` now (None: absent), for `restore`."""
        ...

    def restore(self, saved: Mapping[str, bytes | None]) -> None:
        """Put each path back as `snapshot` saw it (written, or removed when it was absent)."""
        ...

    def exists(self, path: str) -> bool:
        """Whether `path` is a regular file in the tree now."""
        ...


@dataclass(frozen=True)
class BranchHead:
    """The commit a branch points at on the forge, and that commit's tree."""

    sha: str
    tree: str


@dataclass(frozen=True)
class TreeEntry:
    """One path of a tree the forge makes on top of a base tree: a blob (a submodule's
    commit for mode 160000) at `sha`; `sha` None deletes the path from the base tree."""

    path: str
    mode: str
    sha: str | None


@dataclass(frozen=True)
class MadeCommit:
    """A commit the forge made itself; `verified` is its signature check (GitHub signs the
    commits it makes for a GitHub App token), `reason` GitHub's word for it."""

    sha: str
    verified: bool
    reason: str


@dataclass(frozen=True)
class PastReviewComment:
    """A review comment on a closed (perhaps merged) pull request: what codebot.learn reads
    the team's rules from. `line` is the diff line it is on (None when outdated)."""

    pull: int
    merged: bool
    id: int
    body: str
    author: str
    path: str
    line: int | None
    url: str
    in_reply_to: int | None = None


class Forge(Protocol):
    """The code host: issues, comments, labels and one pull request per branch."""

    def repo(self, full_name: str) -> RepoInfo: ...

    def issue(self, full_name: str, number: int) -> IssueInfo: ...

    def pull(self, full_name: str, number: int) -> PullInfo: ...

    def comment(self, full_name: str, number: int, body: str) -> str:
        """Post a comment on an issue or PR; returns the comment's URL."""
        ...

    def add_label(self, full_name: str, number: int, label: str) -> None: ...

    def remove_label(self, full_name: str, number: int, label: str) -> None:
        """Remove a label; one that is not there is not an error."""
        ...

    def is_protected(self, full_name: str, branch: str) -> bool: ...

    def open_pr_body(self, full_name: str, head: str) -> str | None:
        """The body of the open PR from branch `head`; None when there is none."""
        ...

    def edit_pr_body(self, full_name: str, number: int, body: str) -> None:
        """Replace a PR's body (and nothing else about it)."""
        ...

    def read_file(self, full_name: str, path: str, ref: str | None = None) -> str | None:
        """A file's text on `ref` (the default branch when None); None when it is absent."""
        ...

    def failed_jobs(self, full_name: str, run_id: int) -> tuple[FailedJob, ...]:
        """The jobs of workflow run `run_id` that failed, each with the tail of its log."""
        ...

    def failed_checks(self, full_name: str, suite_id: int) -> tuple[FailedJob, ...]:
        """The check runs of check suite `suite_id` that failed, with their output as log."""
        ...

    def open_or_update_pr(
        self,
        full_name: str,
        *,
        head: str,
        base: str,
        title: str,
        body: str,
        draft: bool,
        labels: Sequence[str] = (),
        reviewers: Sequence[str] = (),
    ) -> PullInfo:
        """One open PR per head branch: update it if it exists, else create it."""
        ...

    def reply_to_review_comment(
        self, full_name: str, number: int, comment_id: int, body: str
    ) -> str:
        """Answer in the thread of review comment `comment_id` on PR `number`; its URL."""
        ...

    def past_review_comments(self, full_name: str, limit: int) -> tuple[PastReviewComment, ...]:
        """The review comments of the `limit` most recently updated closed pull requests
        (merged or not), oldest comment of each first."""
        ...

    # Git Data: commits the forge makes (and signs), instead of commits pushed to it.
    def branch_head(self, full_name: str, branch: str) -> BranchHead | None:
        """Where `branch` points now; None when there is no such branch."""
        ...

    def create_blob(self, full_name: str, data: bytes) -> str:
        """Store `data` (any bytes, sent as base64); the blob's id."""
        ...

    def create_tree(self, full_name: str, base_tree: str, entries: Sequence[TreeEntry]) -> str:
        """A tree: `base_tree` with `entries` set or deleted; the tree's id."""
        ...

    def create_commit(
        self, full_name: str, message: str, tree: str, parents: Sequence[str]
    ) -> MadeCommit:
        """A commit the forge authors and signs (no author or committer is sent)."""
        ...

    def create_ref(self, full_name: str, branch: str, sha: str) -> bool:
        """Create `branch` at `sha`; False when the branch exists already."""
        ...

    def update_ref(self, full_name: str, branch: str, sha: str) -> bool:
        """Move `branch` to `sha`, never forced; False when that is not a fast-forward (or
        the branch is gone)."""
        ...
