"""GitHub through PyGithub: read issues, comment, open or update one PR per branch.

The only module importing `github`. Every PyGithub or network failure leaves here as a
one-line ForgeError; the token never appears in a message. `api_url` may point at GitHub
Enterprise or a local test server: PyGithub follows the URLs the API returns. A little over
400 lines: the CI reads (failed jobs, their logs, check runs) and the Git Data calls (commits
GitHub makes and signs, for codebot.gitapi) must live here too, since this is the one module
that may import PyGithub. That rule, not a choice of layout, is why it is over 400 lines.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import time
import urllib.request
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

import github
from github.CheckRun import CheckRun
from github.PullRequest import PullRequest
from github.Repository import Repository
from github.WorkflowJob import WorkflowJob

from codebot.errors import ConfigError, ForgeError
from codebot.protocols import BranchHead, MadeCommit, PastReviewComment, TreeEntry
from codebot.records import FailedJob, IssueInfo, PullInfo, RepoInfo
from codebot.text import CUT, clip

DEFAULT_API_URL = "https://api.github.com"
_FULL_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
LOG_LIMIT = 200_000  # bytes of a job's log kept (its tail: where the failure is)
_LOG_DOWNLOAD_LIMIT = 32_000_000  # bytes read at most; a longer log keeps what was read
_FAILED = frozenset({"failure", "timed_out", "startup_failure"})
_MAX_FAILED_JOBS = 10  # a matrix can fail 50 ways at once; the model needs a few


@dataclass(frozen=True)
class ClientOptions:
    """HTTP behaviour of the client. The pacing defaults are PyGithub's (a write at most
    every second), which respect GitHub's secondary rate limits; tests against a local
    server turn retries and pacing off.

    Git Data writes (codebot.gitapi: a blob per file, then a tree, a commit, a ref) are
    paced apart from those: a second apart they cost a second per file. GitHub's documented
    secondary limits are per minute (900 points for REST endpoints, 5 per write, so 180
    writes; and 80 content-generating requests), and its advice to wait a second between
    writes is for "a large number" of them. So up to `git_writes_per_window` (80: under both
    limits, even if GitHub counted blobs as content) go out at once, one after another and
    never concurrently, and only more than that in one `git_write_window_s` wait their turn.
    PyGithub's retry (on outside tests) still waits out a secondary limit GitHub reports."""

    retry: bool = True
    seconds_between_requests: float = 0.25
    seconds_between_writes: float = 1.0
    timeout_s: int = 15
    git_writes_per_window: int = 80
    git_write_window_s: float = 60.0


class GitHubForge:
    """The real `codebot.protocols.Forge`; github_flow sees only the protocol, so a run's
    logic never depends on PyGithub."""

    def __init__(
        self, token: str, api_url: str = DEFAULT_API_URL, options: ClientOptions = ClientOptions()
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._timeout_s = options.timeout_s
        paced = (options.seconds_between_requests, options.seconds_between_writes)
        self._gh = self._client(token, options, *paced)
        # Git Data writes: a client of their own, paced by `_git_pacer` instead (ClientOptions).
        self._git = self._client(token, options, 0, 0)
        self._git_pacer = _Pacer(options.git_writes_per_window, options.git_write_window_s)

    def _client(
        self, token: str, options: ClientOptions, between_requests: float, between_writes: float
    ) -> github.Github:
        return github.Github(
            auth=github.Auth.Token(token),
            base_url=self.api_url,
            timeout=options.timeout_s,
            retry=github.Github.default_retry if options.retry else None,
            seconds_between_requests=between_requests,
            seconds_between_writes=between_writes,
            lazy=True,  # no GET for objects we only use as a URL prefix
        )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, options: ClientOptions = ClientOptions()
    ) -> GitHubForge:
        """GITHUB_TOKEN and GITHUB_API_URL, as GitHub Actions sets them."""
        env = os.environ if env is None else env
        token = env.get("GITHUB_TOKEN", "")
        if not token:
            raise ConfigError(
                "GITHUB_TOKEN is not set",
                "export a token with contents, issues and pull-requests write access "
                "(in Actions: `env: GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}`)",
            )
        return cls(token, env.get("GITHUB_API_URL") or DEFAULT_API_URL, options)

    def whoami(self) -> str:
        """The login the token belongs to (for `codebot doctor`)."""
        with self._calling("reading the authenticated user"):
            return self._gh.get_user().login

    def repo(self, full_name: str) -> RepoInfo:
        with self._calling(f"reading repository {full_name}"):
            r = self._repo(full_name)
            return RepoInfo(r.full_name, r.default_branch, r.clone_url, r.html_url)

    def issue(self, full_name: str, number: int) -> IssueInfo:
        with self._calling(f"reading issue {full_name}#{number}"):
            i = self._repo(full_name).get_issue(number)
            return IssueInfo(
                repo=full_name,
                number=i.number,
                title=i.title,
                body=i.body or "",
                labels=tuple(label.name for label in i.labels),
                author=i.user.login,
                author_association=i.author_association,
                state=i.state,
                url=i.html_url,
                is_pull_request=i.pull_request is not None,
            )

    def comment(self, full_name: str, number: int, body: str) -> str:
        """Post a comment on an issue or PR; returns the comment's URL."""
        with self._calling(f"commenting on {full_name}#{number}"):
            return self._repo(full_name).get_issue(number).create_comment(body).html_url

    def pull(self, full_name: str, number: int) -> PullInfo:
        with self._calling(f"reading pull request {full_name}#{number}"):
            return _pull_info(self._repo(full_name).get_pull(number))

    def add_label(self, full_name: str, number: int, label: str) -> None:
        with self._calling(f"labelling {full_name}#{number}"):
            self._repo(full_name).get_issue(number).add_to_labels(label)

    def remove_label(self, full_name: str, number: int, label: str) -> None:
        """Remove a label; one already gone (a maintainer removed it by hand) is not an error.
        GitHub answers 404 "Label does not exist", which PyGithub raises as a plain
        GithubException, not UnknownObjectException."""
        with self._calling(f"unlabelling {full_name}#{number}"), _gone_is_fine():
            self._repo(full_name).get_issue(number).remove_from_labels(label)

    def find_open_pr(self, full_name: str, head_branch: str) -> PullInfo | None:
        with self._calling(f"listing pull requests of {full_name}"):
            pull = self._find_open(self._repo(full_name), full_name, head_branch)
            return _pull_info(pull) if pull else None

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
        repo = self._repo(full_name)
        with self._calling(f"listing pull requests of {full_name}"):
            pull = self._find_open(repo, full_name, head)
        created = False
        if pull is None:
            pull, created = self._create_pull(repo, full_name, head, base, title, body, draft)
        if not created:
            with self._calling(f"updating pull request {full_name}#{pull.number}"):
                if (pull.title, pull.body or "") != (title, body):
                    pull.edit(title=title, body=body)
        if labels:
            with self._calling(f"labelling {full_name}#{pull.number}"):
                pull.add_to_labels(*labels)
        warnings = tuple(w for r in reviewers if (w := self._request_review(pull, full_name, r)))
        return replace(_pull_info(pull), created=created, warnings=warnings)

    def open_pr_body(self, full_name: str, head: str) -> str | None:
        """The body of the open PR from branch `head`; None when there is none."""
        repo = self._repo(full_name)
        with self._calling(f"listing pull requests of {full_name}"):
            pull = self._find_open(repo, full_name, head)
        return None if pull is None else pull.body or ""

    def edit_pr_body(self, full_name: str, number: int, body: str) -> None:
        with self._calling(f"updating pull request {full_name}#{number}"):
            self._repo(full_name).get_pull(number).edit(body=body)

    def read_file(self, full_name: str, path: str, ref: str | None = None) -> str | None:
        """A file's text on `ref` (the default branch when None); None when absent."""
        with self._calling(f"reading {path} of {full_name}"):
            repo = self._repo(full_name)
            try:
                found = repo.get_contents(path, ref) if ref else repo.get_contents(path)
            except github.UnknownObjectException:
                return None
            if isinstance(found, list) or found.type != "file" or found.encoding != "base64":
                return None  # a directory, a link, or a file too large for the API
            return found.decoded_content.decode("utf-8", "replace")

    def failed_jobs(self, full_name: str, run_id: int) -> tuple[FailedJob, ...]:
        """The failed jobs of the run's latest attempt, each with the tail of its log."""
        with self._calling(f"reading the jobs of workflow run {run_id} in {full_name}"):
            jobs = self._repo(full_name).get_workflow_run(run_id).jobs()
            failed = [j for j in jobs if j.conclusion in _FAILED][:_MAX_FAILED_JOBS]
            steps = [tuple(s.name for s in j.steps if s.conclusion in _FAILED) for j in failed]
        return tuple(
            FailedJob(j.id, j.name, j.conclusion or "", names, self._job_log(full_name, j),
                      j.html_url or "")
            for j, names in zip(failed, steps, strict=True)
        )  # fmt: skip

    def failed_checks(self, full_name: str, suite_id: int) -> tuple[FailedJob, ...]:
        """A third-party CI's failed check runs; their output stands in for a log."""
        with self._calling(f"reading the check runs of check suite {suite_id} in {full_name}"):
            runs = self._repo(full_name).get_check_suite(suite_id).get_check_runs()
            failed = [r for r in runs if r.conclusion in _FAILED][:_MAX_FAILED_JOBS]
            return tuple(
                FailedJob(r.id, r.name, r.conclusion, (), _check_output(r), r.html_url or "")
                for r in failed
            )

    def is_protected(self, full_name: str, branch: str) -> bool:
        """Whether `branch` has protection rules; a branch that does not exist is not.

        Reads the branch's `protected` flag rather than the protection endpoint: that one
        needs admin rights, which a workflow's GITHUB_TOKEN lacks (it answers 403/404)."""
        with self._calling(f"reading branch {branch} of {full_name}"):
            try:
                return self._repo(full_name).get_branch(branch).protected
            except github.UnknownObjectException:
                return False

    def reply_to_review_comment(
        self, full_name: str, number: int, comment_id: int, body: str
    ) -> str:
        """Answer in a review comment's thread; returns the reply's URL. The comment is read
        first: one that is not on PR `number` (a plan names it, and a plan is not trusted)
        gets no reply."""
        with self._calling(f"reading review comment {comment_id} of {full_name}"):
            pull = self._repo(full_name).get_pull(number)
            on = pull.get_review_comment(comment_id).pull_request_url.rstrip("/")
        if on.rsplit("/", 1)[-1] != str(number):
            raise ForgeError(
                f"review comment {comment_id} is not on pull request {full_name}#{number} "
                f"(GitHub has it on #{on.rsplit('/', 1)[-1]}); no reply was posted",
                "codebot replies only in a thread of the pull request it updates; check the "
                "review comment id (a plan's `review_comment`)",
            )
        with self._calling(f"replying to review comment {comment_id} on {full_name}#{number}"):
            return pull.create_review_comment_reply(comment_id, body).html_url

    def past_review_comments(self, full_name: str, limit: int) -> tuple[PastReviewComment, ...]:
        """Review comments of recently closed PRs (for `codebot learn`): one request for the
        list, one per PR; `merged_at` is in the list, so no PR is fetched again."""
        found: list[PastReviewComment] = []
        with self._calling(f"reading the review comments of closed pull requests of {full_name}"):
            pulls = self._repo(full_name).get_pulls(
                state="closed", sort="updated", direction="desc"
            )
            for pull in itertools.islice(pulls, max(0, limit)):
                merged = pull.merged_at is not None
                found += [
                    PastReviewComment(pull.number, merged, c.id, c.body or "",
                                      c.user.login if c.user else "", c.path or "", c.line,
                                      c.html_url or "", c.in_reply_to_id)
                    for c in pull.get_review_comments()
                ]  # fmt: skip
        return tuple(found)

    # --- Git Data: commits GitHub makes itself (codebot.gitapi) ------------------------------
    def branch_head(self, full_name: str, branch: str) -> BranchHead | None:
        with self._calling(f"reading branch {branch} of {full_name}"):
            try:
                commit = self._repo(full_name).get_branch(branch).commit
            except github.UnknownObjectException:
                return None
            return BranchHead(commit.sha, commit.commit.tree.sha)

    def create_blob(self, full_name: str, data: bytes) -> str:
        """Base64 whatever the bytes: binary files and large ones arrive unchanged."""
        payload = {"content": base64.b64encode(data).decode("ascii"), "encoding": "base64"}
        return _sha(self._git_data(full_name, "POST", "blobs", payload), f"a blob in {full_name}")

    def create_tree(self, full_name: str, base_tree: str, entries: Sequence[TreeEntry]) -> str:
        tree = [
            {"path": e.path, "mode": e.mode, "sha": e.sha,
             "type": "commit" if e.mode == "160000" else "blob"}
            for e in entries
        ]  # fmt: skip
        data = self._git_data(full_name, "POST", "trees", {"base_tree": base_tree, "tree": tree})
        return _sha(data, f"the tree made in {full_name}")

    def create_commit(
        self, full_name: str, message: str, tree: str, parents: Sequence[str]
    ) -> MadeCommit:
        """No author or committer is sent: GitHub sets them and, for a GitHub App token,
        signs the commit (what "verified" means on a branch whose rules require it)."""
        payload = {"message": message, "tree": tree, "parents": list(parents)}
        data = self._git_data(full_name, "POST", "commits", payload)
        check = data.get("verification")
        check = check if isinstance(check, dict) else {}
        sha = _sha(data, f"the commit made in {full_name}")
        return MadeCommit(sha, check.get("verified") is True, str(check.get("reason") or ""))

    def create_ref(self, full_name: str, branch: str, sha: str) -> bool:
        try:
            payload = {"ref": f"refs/heads/{branch}", "sha": sha}
            self._git_data(full_name, "POST", "refs", payload)
        except _Unprocessable as exc:
            if "already exists" not in exc.detail:
                raise
            return False
        return True

    def update_ref(self, full_name: str, branch: str, sha: str) -> bool:
        try:
            payload = {"sha": sha, "force": False}
            self._git_data(full_name, "PATCH", f"refs/heads/{quote(branch)}", payload)
        except _Unprocessable as exc:
            if "fast forward" not in exc.detail and "does not exist" not in exc.detail:
                raise
            return False
        return True

    # --- helpers ---------------------------------------------------------------------------
    def _git_data(
        self, full_name: str, verb: str, path: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """A Git Data write through PyGithub's requester, which PyGithub offers for this: its
        typed methods need fetched objects for plain ids, and its lazy ref PATCHes the
        read-only `git/ref/` URL. On the Git Data client, paced by `_git_pacer`."""
        with self._calling(f"writing git {path.split('/')[0]} in {full_name}"):
            url = f"{self._repo(full_name).url}/git/{path}"
            self._git_pacer.wait()
            _, data = self._git.requester.requestJsonAndCheck(verb, url, input=payload)
        return data if isinstance(data, dict) else {}

    def _repo(self, full_name: str) -> Repository:
        if not _FULL_NAME.fullmatch(full_name):
            raise ForgeError(
                f"`{full_name}` is not a repository OWNER/NAME", "name the repository as OWNER/NAME"
            )
        return self._gh.get_repo(full_name)

    def _find_open(self, repo: Repository, full_name: str, branch: str) -> PullRequest | None:
        owner = full_name.split("/")[0]
        label = f"{owner}:{branch}".casefold()
        for pull in repo.get_pulls(state="open", head=f"{owner}:{branch}"):
            if pull.head.label.casefold() == label:
                return pull
        return None

    def _create_pull(
        self,
        repo: Repository,
        full_name: str,
        head: str,
        base: str,
        title: str,
        body: str,
        draft: bool,
    ) -> tuple[PullRequest, bool]:
        """The new PR and True, or the PR another run opened meanwhile and False."""
        try:
            with self._calling(f"opening a pull request from {head} into {base} in {full_name}"):
                pull = repo.create_pull(base=base, head=head, title=title, body=body, draft=draft)
                return pull, True
        except _Unprocessable as exc:
            # Another run may have opened it since we looked: reuse that one.
            if "already exists" not in exc.detail:
                raise
            with self._calling(f"listing pull requests of {full_name}"):
                existing = self._find_open(repo, full_name, head)
            if existing is None:
                raise
            return existing, False

    def _request_review(self, pull: PullRequest, full_name: str, reviewer: str) -> str:
        """Request one review; a refusal (422) is a warning, not a failed PR."""
        try:
            with self._calling(f"requesting a review on {full_name}#{pull.number}"):
                pull.create_review_request(reviewers=[reviewer])
        except _Unprocessable as exc:
            return f"review not requested from {reviewer}: {exc.detail}"
        return ""

    def _job_log(self, full_name: str, job: WorkflowJob) -> str:
        """The tail of a job's log. GitHub answers the logs endpoint with a redirect to a
        short-lived download URL; that URL is fetched without the token (it is another host).
        A log that is gone (logs expire) or unreadable becomes a note, not a failed run:
        the job's name and failed steps still say what to fix."""
        with self._calling(f"locating the log of job {job.id} in {full_name}"):
            try:
                location = job.logs_url()
            except github.GithubException as exc:
                if exc.status not in (404, 410):
                    raise
                return f"(the log of this job is no longer available: HTTP {exc.status})"
        if urlsplit(location).scheme not in ("http", "https"):
            return "(the log of this job is at a URL codebot does not fetch)"
        try:
            return _download_tail(location, LOG_LIMIT, self._timeout_s)
        except OSError as exc:
            return f"(the log of this job could not be downloaded: {type(exc).__name__})"

    @contextmanager
    def _calling(self, action: str) -> Iterator[None]:
        try:
            yield
        except github.GithubException as exc:
            raise self._scrub(_translate(action, exc, self.api_url)) from None
        except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors
            host = urlsplit(self.api_url).netloc or self.api_url
            raise self._scrub(
                ForgeError(
                    f"cannot reach the GitHub API at {host} while {action} ({type(exc).__name__})",
                    "check GITHUB_API_URL and the network; GitHub status: githubstatus.com",
                )
            ) from None

    def _scrub(self, error: ForgeError) -> ForgeError:
        """Belt and braces: no message may carry the token, whatever GitHub echoed."""
        if self._token:
            error.cause = error.cause.replace(self._token, "***")
            error.fix = error.fix.replace(self._token, "***")
            error.args = (error.cause,)
        return error


class _Pacer:
    """At most `limit` calls in any `window_s` seconds: the first `limit` go at once, a
    further one waits until the oldest of them leaves the window."""

    def __init__(self, limit: int, window_s: float) -> None:
        self._limit, self._window_s = max(1, limit), window_s
        self._times: deque[float] = deque()

    def wait(self) -> None:
        now = time.monotonic()
        while self._times and now - self._times[0] >= self._window_s:
            self._times.popleft()
        if len(self._times) >= self._limit:
            time.sleep(self._window_s - (now - self._times.popleft()))
        self._times.append(time.monotonic())


@contextmanager
def _gone_is_fine() -> Iterator[None]:
    """A clean-up call whose object is already gone has nothing left to do."""
    try:
        yield
    except github.GithubException as exc:
        if exc.status != 404:
            raise


class _Unprocessable(ForgeError):
    """422: GitHub understood the request and refused it (validation)."""

    def __init__(self, cause: str, fix: str, detail: str) -> None:
        super().__init__(cause, fix)
        self.detail = detail


def _translate(action: str, exc: github.GithubException, api_url: str) -> ForgeError:
    detail = _detail(exc)
    status = exc.status
    if isinstance(exc, github.RateLimitExceededException):
        return ForgeError(
            f"GitHub rate limit exceeded while {action}",
            "wait for the limit to reset, or use a token with a higher limit",
        )
    if status == 401:
        return ForgeError(
            f"GitHub rejected the token while {action} (401 {detail})",
            "set GITHUB_TOKEN to a valid, unexpired token for "
            f"{urlsplit(api_url).netloc or api_url}",
        )
    if status == 403:
        return ForgeError(
            f"GitHub refused {action} (403 {detail})",
            "give the token contents, issues and pull-requests write permission "
            "(in Actions: the workflow's `permissions:` block)",
        )
    if status == 404:
        return ForgeError(
            f"not found while {action} (404)",
            "check the name and number, and that the token can read the repository "
            "(GitHub answers 404, not 403, for private repositories the token cannot see)",
        )
    if status == 422:
        return _Unprocessable(
            f"GitHub rejected {action} (422 {detail})",
            "check that the branches exist and were pushed, and that the values are valid",
            detail,
        )
    return ForgeError(
        f"GitHub answered {status} while {action}: {detail}",
        "retry later; if it persists, check GITHUB_API_URL and githubstatus.com",
    )


def _detail(exc: github.GithubException) -> str:
    """GitHub's message plus its validation errors, on one line."""
    data = exc.data if isinstance(exc.data, dict) else {}
    parts = [str(data.get("message") or exc.message or "no message")]
    for error in data.get("errors") or []:
        if isinstance(error, dict):
            text = error.get("message") or " ".join(
                str(error[k]) for k in ("field", "code") if error.get(k)
            )
            parts.append(str(text))
        else:
            parts.append(str(error))
    text = " ".join("; ".join(p for p in parts if p).split())
    return clip(text, 300)


def _download_tail(url: str, limit: int, timeout_s: float) -> str:
    """The last `limit` bytes of the text at `url`, read in chunks so that a huge log never
    sits in memory whole; reading stops after _LOG_DOWNLOAD_LIMIT bytes."""
    request = urllib.request.Request(url, headers={"User-Agent": "codebot"})
    kept: deque[bytes] = deque()
    size = total = 0
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # caller checked: http(s)
        while total < _LOG_DOWNLOAD_LIMIT and (chunk := response.read(65_536)):
            kept.append(chunk)
            size, total = size + len(chunk), total + len(chunk)
            while size - len(kept[0]) >= limit:
                size -= len(kept.popleft())
    data = b"".join(kept)
    if len(data) <= limit and total == size:
        return data.decode("utf-8", "replace")
    text = data[-limit:].decode("utf-8", "replace")
    return CUT + text[text.find("\n") + 1 :]  # from the first whole line


def _sha(data: dict[str, Any], what: str) -> str:
    sha = data.get("sha")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise ForgeError(f"GitHub answered without the id of {what}", "retry later")
    return sha


def _check_output(run: CheckRun) -> str:
    output = run.output
    parts = (output.title, output.summary, output.text) if output else ()
    return clip("\n\n".join(p for p in parts if p), LOG_LIMIT)


def _pull_info(pull: PullRequest) -> PullInfo:
    return PullInfo(
        number=pull.number,
        url=pull.html_url,
        head=pull.head.ref,
        base=pull.base.ref,
        draft=bool(pull.draft),
        state=pull.state,
        title=pull.title,
        head_sha=pull.head.sha or "",
    )
