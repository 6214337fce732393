"""A local GitHub REST double: the endpoints codebot.forge uses, over a real socket.

PyGithub follows URLs it finds in responses, so every URL here points back to this server.
The double is strict: a request for an endpoint it does not speak is answered 404 *and*
recorded in `unexpected`, which fails the test at teardown. Longer than our usual module
because it is a whole fake service (state, routes, JSON shapes) that reads best in one place.

Repositories whose `clone_url` is a local (bare) git repository answer from it what GitHub
answers from git: a PR's head commit, a branch's head, the contents API, and the Git Data API
(blobs, trees, commits, refs), whose writes become real objects and refs in that repository
(`git hash-object -w`, a tree written from a scratch index, `git commit-tree`, `git
update-ref`, so no hook sees a push). Commits made there are GitHub's: its author and
committer, and `verification.verified` true when the caller left both to it. Review comments
are scripted with `add_review_comment` (on closed pull requests from `add_closed_pull`, too,
for `codebot learn`), read one by one by id, and replies land in `review_comments`. CI is scripted:
`add_workflow_run` and `add_check_suite` make failed runs whose jobs have logs; a job's log is
served the way GitHub serves it, as a redirect to a separate download URL that takes no token.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

Json = Any
Response = tuple[int, Json]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Json


@dataclass
class IssueRecord:
    repo: str
    number: int
    title: str
    body: str
    labels: list[str]
    author: str
    author_association: str
    state: str = "open"


@dataclass
class PullRecord:
    repo: str
    number: int
    head: str
    base: str
    title: str
    body: str
    draft: bool
    author: str
    state: str = "open"
    labels: list[str] = field(default_factory=list)
    requested_reviewers: list[str] = field(default_factory=list)
    head_sha: str | None = None  # None: what the branch points at in a local clone_url
    merged: bool = False


@dataclass(frozen=True)
class Raw:
    """A response that is not JSON: a redirect, or a plain-text log."""

    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class JobRecord:
    """A CI job (or a check run) with its log (or check output text)."""

    id: int
    name: str
    conclusion: str
    log: str
    failed_step: str = "Run tests"
    title: str = ""
    summary: str = ""


@dataclass
class CiRecord:
    """A workflow run (`kind` "run") or a third-party check suite ("suite")."""

    kind: str
    repo: str
    id: int
    name: str
    head_branch: str
    head_sha: str
    conclusion: str
    jobs: list[JobRecord]


@dataclass
class CommentRecord:
    repo: str
    issue_number: int
    id: int
    body: str
    author: str


@dataclass
class ReviewCommentRecord:
    """A comment on lines of a PR's diff; a reply has `in_reply_to` set."""

    repo: str
    pull_number: int
    id: int
    body: str
    author: str
    path: str
    line: int | None
    start_line: int | None = None
    in_reply_to: int | None = None


@dataclass
class RepoRecord:
    full_name: str
    default_branch: str
    clone_url: str
    collaborators: set[str]
    branches: set[str]
    protected: set[str] = field(default_factory=set)
    next_number: int = 1


class GitHubServer:
    """In-memory GitHub. `url` is the API base URL to give PyGithub; `token` the only valid one."""

    def __init__(self, prefix: str = "", login: str = "codebot-bot") -> None:
        self.prefix = prefix.rstrip("/")
        self.login = login
        self.token = "ghs_" + secrets.token_hex(12)
        self.repos: dict[str, RepoRecord] = {}
        self.issues: list[IssueRecord] = []
        self.pulls: list[PullRecord] = []
        self.comments: list[CommentRecord] = []
        self.review_comments: list[ReviewCommentRecord] = []
        self.verified_commits: set[str] = set()  # commits the Git Data API made and "signed"
        self.ci: list[CiRecord] = []
        self.log_downloads: list[int] = []  # job ids whose log was fetched, in order
        self._blob_key = secrets.token_hex(8)
        self._last_id = 9_876_543_210
        self.requests: list[RecordedRequest] = []
        self.unexpected: list[RecordedRequest] = []
        self._scripted: list[tuple[str, re.Pattern[str], int, Json]] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.base = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.url = self.base + self.prefix

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> GitHubServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.02)  # the default 0.5 s slows every teardown

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> GitHubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting -------------------------------------------------------------------------
    def add_repo(
        self,
        full_name: str,
        default_branch: str = "main",
        clone_url: str | None = None,
        collaborators: Iterable[str] = (),
        branches: Iterable[str] = (),
    ) -> RepoRecord:
        owner = full_name.split("/")[0]
        repo = RepoRecord(
            full_name=full_name,
            default_branch=default_branch,
            clone_url=clone_url or f"{self.base}/{full_name}.git",
            collaborators={owner, self.login, *collaborators},
            branches={default_branch, *branches},
        )
        self.repos[full_name.lower()] = repo
        return repo

    def add_issue(
        self,
        full_name: str,
        number: int,
        title: str,
        body: str = "",
        labels: Iterable[str] = (),
        author: str = "octocat",
        author_association: str = "OWNER",
        state: str = "open",
    ) -> IssueRecord:
        repo = self.repos[full_name.lower()]
        issue = IssueRecord(
            repo.full_name, number, title, body, list(labels), author, author_association, state
        )
        self.issues.append(issue)
        repo.next_number = max(repo.next_number, number + 1)
        return issue

    def add_review_comment(
        self,
        full_name: str,
        pull_number: int,
        path: str,
        line: int,
        body: str,
        start_line: int | None = None,
        author: str = "mona",
    ) -> ReviewCommentRecord:
        comment = ReviewCommentRecord(
            self.repos[full_name.lower()].full_name, pull_number, self._next_id(), body, author,
            path, line, start_line,
        )  # fmt: skip
        self.review_comments.append(comment)
        return comment

    def add_closed_pull(
        self, full_name: str, number: int, title: str = "Past change", merged: bool = True
    ) -> PullRecord:
        """A pull request already closed (merged unless said otherwise), for review memory."""
        repo = self.repos[full_name.lower()]
        pull = PullRecord(repo.full_name, number, f"topic-{number}", repo.default_branch,
                          title, "", False, "octocat", "closed", merged=merged)  # fmt: skip
        self.pulls.append(pull)
        repo.next_number = max(repo.next_number, number + 1)
        return pull

    def protect(self, full_name: str, branch: str) -> None:
        repo = self.repos[full_name.lower()]
        repo.branches.add(branch)
        repo.protected.add(branch)

    def add_workflow_run(
        self,
        full_name: str,
        head_branch: str,
        head_sha: str,
        failing: Mapping[str, str],
        *,
        name: str = "CI",
        passing: Iterable[str] = ("lint",),
    ) -> CiRecord:
        """A failed workflow run: one failed job per `failing` item (job name -> its log)
        and passing jobs with no log worth reading."""
        jobs = [JobRecord(self._next_id(), n, "failure", log) for n, log in failing.items()]
        jobs += [JobRecord(self._next_id(), n, "success", "ok\n") for n in passing]
        run = CiRecord("run", full_name, self._next_id(), name, head_branch, head_sha,
                       "failure" if failing else "success", jobs)  # fmt: skip
        self.ci.append(run)
        return run

    def add_check_suite(
        self,
        full_name: str,
        head_branch: str,
        head_sha: str,
        app: str,
        failing: Iterable[JobRecord],
    ) -> CiRecord:
        """A third-party CI app's completed check suite with these check runs."""
        runs = list(failing)
        suite = CiRecord("suite", full_name, self._next_id(), app, head_branch, head_sha,
                         "failure" if runs else "success", runs)  # fmt: skip
        self.ci.append(suite)
        return suite

    def _next_id(self) -> int:
        """Ids beyond 2**31, as GitHub's run and job ids now are."""
        self._last_id += 1
        return self._last_id

    def respond_once(self, method: str, path_regex: str, status: int, payload: Json) -> None:
        """Answer the next request matching `method` and `path_regex` with `payload`."""
        self._scripted.append((method, re.compile(path_regex), status, payload))

    def fail(self, method: str, path_regex: str, status: int, message: str) -> None:
        self.respond_once(method, path_regex, status, _error(message))

    def writes(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method != "GET"]

    # --- request handling ------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, auth: str, body: Json) -> Response:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        request = RecordedRequest(method, path, dict(parse_qsl(parts.query)), body)
        with self._lock:
            self.requests.append(request)
            if path.startswith("/_blobs/"):
                return self._blob(request, auth)
            if auth not in (f"token {self.token}", f"Bearer {self.token}"):
                return 401, _error("Bad credentials")
            for scripted in self._scripted:
                if scripted[0] == method and scripted[1].search(path):
                    self._scripted.remove(scripted)
                    return scripted[2], scripted[3]
            if not path.startswith(self.prefix + "/"):
                self.unexpected.append(request)
                return 404, _error("Not Found")
            route = path[len(self.prefix) :]
            for pattern, verb, action in self._routes():
                match = re.fullmatch(pattern, route)
                if match and verb == method:
                    return action(request, **match.groupdict())
            self.unexpected.append(request)
            return 404, _error("Not Found")

    def _routes(self) -> list[tuple[str, str, Callable[..., Response]]]:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
        return [
            (r"/user", "GET", self._get_user),
            (repo, "GET", self._get_repo),
            (repo + r"/issues/(?P<n>\d+)", "GET", self._get_issue),
            (repo + r"/issues/(?P<n>\d+)/comments", "GET", self._list_comments),
            (repo + r"/issues/(?P<n>\d+)/comments", "POST", self._create_comment),
            (repo + r"/issues/(?P<n>\d+)/labels", "POST", self._add_labels),
            (repo + r"/issues/(?P<n>\d+)/labels/(?P<label>[^/]+)", "DELETE", self._remove_label),
            (repo + r"/pulls", "GET", self._list_pulls),
            (repo + r"/pulls", "POST", self._create_pull),
            (repo + r"/pulls/(?P<n>\d+)", "GET", self._get_pull),
            (repo + r"/pulls/(?P<n>\d+)", "PATCH", self._update_pull),
            (repo + r"/pulls/(?P<n>\d+)/requested_reviewers", "POST", self._request_reviewers),
            (repo + r"/pulls/(?P<n>\d+)/comments", "GET", self._list_review_comments),
            (repo + r"/pulls/(?P<n>\d+)/comments/(?P<c>\d+)/replies", "POST", self._reply),
            (repo + r"/pulls/comments/(?P<c>\d+)", "GET", self._get_review_comment),
            (repo + r"/git/blobs", "POST", self._create_blob),
            (repo + r"/git/trees", "POST", self._create_tree),
            (repo + r"/git/commits", "POST", self._create_commit),
            (repo + r"/git/refs", "POST", self._create_ref),
            (repo + r"/git/refs/heads/(?P<branch>.+)", "PATCH", self._update_ref),
            (repo + r"/branches/(?P<branch>.+)/protection", "GET", self._get_protection),
            (repo + r"/branches/(?P<branch>.+)", "GET", self._get_branch),
            (repo + r"/contents/(?P<path>.+)", "GET", self._get_contents),
            (repo + r"/actions/runs/(?P<n>\d+)", "GET", self._get_run),
            (repo + r"/actions/runs/(?P<n>\d+)/jobs", "GET", self._list_jobs),
            (repo + r"/actions/jobs/(?P<n>\d+)/logs", "GET", self._job_logs),
            (repo + r"/check-suites/(?P<n>\d+)", "GET", self._get_suite),
            (repo + r"/check-suites/(?P<n>\d+)/check-runs", "GET", self._list_check_runs),
        ]

    def _repo(self, owner: str, name: str) -> RepoRecord | None:
        return self.repos.get(f"{owner}/{name}".lower())

    def _get_user(self, _: RecordedRequest) -> Response:
        return 200, self._user(self.login)

    def _get_repo(self, _: RecordedRequest, owner: str, name: str) -> Response:
        repo = self._repo(owner, name)
        return (200, self._repo_json(repo)) if repo else (404, _error("Not Found"))

    def _get_issue(self, _: RecordedRequest, owner: str, name: str, n: str) -> Response:
        repo = self._repo(owner, name)
        issue = self._issue(repo, int(n)) if repo else None
        if issue is not None:
            return 200, self._issue_json(issue)
        pull = self._pull(repo, int(n)) if repo else None
        if pull is not None:
            return 200, self._pull_as_issue_json(pull)
        return 404, _error("Not Found")

    def _list_comments(self, _: RecordedRequest, owner: str, name: str, n: str) -> Response:
        repo = self._repo(owner, name)
        if repo is None or not self._exists(repo, int(n)):
            return 404, _error("Not Found")
        found = [c for c in self.comments if c.repo == repo.full_name and c.issue_number == int(n)]
        return 200, [self._comment_json(c) for c in found]

    def _create_comment(self, req: RecordedRequest, owner: str, name: str, n: str) -> Response:
        repo = self._repo(owner, name)
        if repo is None or not self._exists(repo, int(n)):
            return 404, _error("Not Found")
        if not isinstance(req.body, dict) or not req.body.get("body"):
            return 422, _invalid("IssueComment", "body", "missing_field")
        comment = CommentRecord(
            repo.full_name, int(n), len(self.comments) + 1, req.body["body"], self.login
        )
        self.comments.append(comment)
        return 201, self._comment_json(comment)

    def _add_labels(self, req: RecordedRequest, owner: str, name: str, n: str) -> Response:
        repo = self._repo(owner, name)
        target = self._issue(repo, int(n)) or self._pull(repo, int(n))
        if repo is None or target is None:
            return 404, _error("Not Found")
        # GitHub takes {"labels": [...]} or a bare list; PyGithub sends the bare list.
        labels = req.body.get("labels") if isinstance(req.body, dict) else req.body
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            return 422, _invalid("Label", "labels", "invalid")
        target.labels.extend(x for x in labels if x not in target.labels)
        return 200, [self._label_json(repo, x) for x in target.labels]

    def _remove_label(
        self, _: RecordedRequest, owner: str, name: str, n: str, label: str
    ) -> Response:
        repo = self._repo(owner, name)
        target = self._issue(repo, int(n)) or self._pull(repo, int(n))
        if repo is None or target is None or label not in target.labels:
            return 404, _error("Label does not exist")
        target.labels.remove(label)
        return 200, [self._label_json(repo, x) for x in target.labels]

    def _list_pulls(self, req: RecordedRequest, owner: str, name: str) -> Response:
        repo = self._repo(owner, name)
        if repo is None:
            return 404, _error("Not Found")
        state = req.query.get("state", "open")
        found = [p for p in self.pulls if p.repo == repo.full_name]
        found = [p for p in found if state == "all" or p.state == state]
        if req.query.get("sort") == "updated" and req.query.get("direction") == "desc":
            found = found[::-1]  # the latest scripted counts as the latest updated
        head = req.query.get("head")
        # Like GitHub: the filter needs `owner:branch`; a bare branch name is ignored.
        if head and ":" in head:
            head_owner, branch = head.split(":", 1)
            same_owner = head_owner.lower() == repo.full_name.split("/")[0].lower()
            found = [p for p in found if same_owner and p.head == branch]
        return 200, [self._pull_json(p) for p in found]

    def _create_pull(self, req: RecordedRequest, owner: str, name: str) -> Response:
        repo = self._repo(owner, name)
        if repo is None:
            return 404, _error("Not Found")
        body = req.body if isinstance(req.body, dict) else {}
        for key in ("title", "head", "base"):
            if not isinstance(body.get(key), str) or not body[key]:
                return 422, _invalid("PullRequest", key, "missing_field")
        if body["base"] not in repo.branches:
            return 422, _invalid("PullRequest", "base", "invalid")
        head = body["head"].split(":", 1)[-1]
        if any(
            p.repo == repo.full_name and p.head == head and p.state == "open" for p in self.pulls
        ):
            owner_login = repo.full_name.split("/")[0]
            message = f"A pull request already exists for {owner_login}:{head}."
            return 422, {"message": "Validation Failed", "errors": [_custom(message)]}
        pull = PullRecord(
            repo=repo.full_name,
            number=repo.next_number,
            head=head,
            base=body["base"],
            title=body["title"],
            body=body.get("body") or "",
            draft=bool(body.get("draft", False)),
            author=self.login,
        )
        repo.next_number += 1
        self.pulls.append(pull)
        return 201, self._pull_json(pull)

    def _get_pull(self, _: RecordedRequest, owner: str, name: str, n: str) -> Response:
        pull = self._pull(self._repo(owner, name), int(n))
        return (200, self._pull_json(pull)) if pull else (404, _error("Not Found"))

    def _update_pull(self, req: RecordedRequest, owner: str, name: str, n: str) -> Response:
        pull = self._pull(self._repo(owner, name), int(n))
        if pull is None:
            return 404, _error("Not Found")
        body = req.body if isinstance(req.body, dict) else {}
        for key in ("title", "body", "state", "base"):
            if key in body:
                setattr(pull, key, body[key])
        return 200, self._pull_json(pull)

    def _request_reviewers(self, req: RecordedRequest, owner: str, name: str, n: str) -> Response:
        repo = self._repo(owner, name)
        pull = self._pull(repo, int(n))
        if repo is None or pull is None:
            return 404, _error("Not Found")
        reviewers = req.body.get("reviewers", []) if isinstance(req.body, dict) else []
        if pull.author in reviewers:
            return 422, _error("Review cannot be requested from pull request author.")
        if any(r not in repo.collaborators for r in reviewers):
            return 422, _error(
                "Reviews may only be requested from collaborators. One or more of the users or "
                f"teams you specified is not a collaborator of the {repo.full_name} repository."
            )
        pull.requested_reviewers.extend(r for r in reviewers if r not in pull.requested_reviewers)
        return 201, self._pull_json(pull)

    def _get_branch(self, _: RecordedRequest, owner: str, name: str, branch: str) -> Response:
        repo = self._repo(owner, name)
        head = (
            _git(repo.clone_url, "rev-parse", "-q", "--verify", f"refs/heads/{branch}")
            if repo
            else None
        )
        if repo is None or (branch not in repo.branches and head is None):
            return 404, _error("Branch not found")
        api = f"{self.url}/repos/{repo.full_name}/branches/{branch}"
        sha = head or "0" * 40
        tree = (_git(repo.clone_url, "rev-parse", f"{sha}^{{tree}}") if head else None) or "0" * 40
        commits = f"{self.url}/repos/{repo.full_name}/commits/{sha}"
        git_api = f"{self.url}/repos/{repo.full_name}/git"
        return 200, {
            "name": branch,
            "protected": branch in repo.protected,
            "commit": {
                "sha": sha,
                "url": commits,
                "commit": {
                    "url": f"{git_api}/commits/{sha}",
                    "tree": {"sha": tree, "url": f"{git_api}/trees/{tree}"},
                },
            },
            "protection_url": f"{api}/protection",
            "_links": {"self": api, "html": f"{self.base}/{repo.full_name}/tree/{branch}"},
        }

    # --- the Git Data API, written into the local bare repository --------------------------
    def _git_repo(self, owner: str, name: str) -> RepoRecord | None:
        repo = self._repo(owner, name)
        return repo if repo is not None and Path(repo.clone_url).is_dir() else None

    def _create_blob(self, req: RecordedRequest, owner: str, name: str) -> Response:
        repo = self._git_repo(owner, name)
        if repo is None:
            return 404, _error("Not Found")
        body = req.body if isinstance(req.body, dict) else {}
        content, encoding = body.get("content"), body.get("encoding", "utf-8")
        if not isinstance(content, str) or encoding not in ("utf-8", "base64"):
            return 422, _invalid("Blob", "content", "invalid")
        try:
            data = base64.b64decode(content, validate=True) if encoding == "base64" else None
        except ValueError:
            return 422, _error("Invalid base64 content")
        raw = data if data is not None else content.encode()
        sha = _git_bytes(repo.clone_url, raw, "hash-object", "-w", "--stdin")
        url = f"{self.url}/repos/{repo.full_name}/git/blobs/{sha}"
        return 201, {"sha": sha, "url": url}

    def _create_tree(self, req: RecordedRequest, owner: str, name: str) -> Response:
        """`base_tree` with each entry set, or deleted (`sha: null`), like GitHub; an entry
        naming an object the repository lacks, or deleting a path it lacks, is refused."""
        repo = self._git_repo(owner, name)
        body = req.body if isinstance(req.body, dict) else {}
        entries, base = body.get("tree"), body.get("base_tree")
        if repo is None:
            return 404, _error("Not Found")
        files = _tree_files(repo.clone_url, base) if isinstance(base, str) else {}
        if files is None or not isinstance(entries, list):
            return 422, _error("tree.base_tree is not a valid tree")
        for entry in entries:
            refusal = _apply_entry(repo.clone_url, files, entry)
            if refusal:
                return 422, _error(refusal)
        sha = _write_tree(repo.clone_url, files)
        if sha is None:
            return 422, _error("GitRPC::BadObjectState")
        listing = _git(repo.clone_url, "ls-tree", sha) or ""
        top = [line.split(None, 3) for line in listing.splitlines()]
        url = f"{self.url}/repos/{repo.full_name}/git/trees/{sha}"
        return 201, {"sha": sha, "url": url, "truncated": False, "tree": [
            {"mode": m, "type": t, "sha": o, "path": p} for m, t, o, p in top
        ]}  # fmt: skip

    def _create_commit(self, req: RecordedRequest, owner: str, name: str) -> Response:
        """GitHub authors the commit; it "signs" (marks verified) only one whose author and
        committer it chose."""
        repo = self._git_repo(owner, name)
        body = req.body if isinstance(req.body, dict) else {}
        message, tree, parents = body.get("message"), body.get("tree"), body.get("parents", [])
        if repo is None:
            return 404, _error("Not Found")
        if not isinstance(message, str) or _kind(repo.clone_url, tree) != "tree":
            return 422, _invalid("Commit", "tree", "invalid")
        if not isinstance(parents, list) or any(
            _kind(repo.clone_url, p) != "commit" for p in parents
        ):
            return 422, _invalid("Commit", "parents", "invalid")
        bot = {
            "GIT_AUTHOR_NAME": self.login,
            "GIT_AUTHOR_EMAIL": f"{self.login}@users.noreply",
            "GIT_COMMITTER_NAME": "GitHub",
            "GIT_COMMITTER_EMAIL": "noreply@github.com",
        }
        args = [arg for parent in parents for arg in ("-p", parent)]
        sha = _git_bytes(repo.clone_url, message.encode(), "commit-tree", str(tree), *args, env=bot)
        verified = "author" not in body and "committer" not in body
        if verified:
            self.verified_commits.add(sha)
        api = f"{self.url}/repos/{repo.full_name}/git"
        return 201, {
            "sha": sha,
            "url": f"{api}/commits/{sha}",
            "html_url": f"{self.base}/{repo.full_name}/commit/{sha}",
            "message": message,
            "tree": {"sha": tree, "url": f"{api}/trees/{tree}"},
            "parents": [{"sha": p, "url": f"{api}/commits/{p}"} for p in parents],
            "author": {"name": self.login, "email": f"{self.login}@users.noreply"},
            "committer": {"name": "GitHub", "email": "noreply@github.com"},
            "verification": {"verified": verified, "reason": "valid" if verified else "unsigned",
                             "signature": None, "payload": None},
        }  # fmt: skip

    def _create_ref(self, req: RecordedRequest, owner: str, name: str) -> Response:
        repo = self._git_repo(owner, name)
        body = req.body if isinstance(req.body, dict) else {}
        ref, sha = body.get("ref"), body.get("sha")
        if repo is None:
            return 404, _error("Not Found")
        if not isinstance(ref, str) or not re.fullmatch(r"refs/[^/]+/.+", ref):
            return 422, _error("Reference name is invalid")
        if _kind(repo.clone_url, sha) != "commit":
            return 422, _error("Object does not exist")
        if _git(repo.clone_url, "update-ref", ref, str(sha), "") is None:
            return 422, _error("Reference already exists")
        if ref.startswith("refs/heads/"):
            repo.branches.add(ref.removeprefix("refs/heads/"))
        return 201, self._ref_json(repo, ref, str(sha))

    def _update_ref(self, req: RecordedRequest, owner: str, name: str, branch: str) -> Response:
        """Like GitHub: only a fast-forward unless `force` is true."""
        repo = self._git_repo(owner, name)
        body = req.body if isinstance(req.body, dict) else {}
        sha, ref = body.get("sha"), f"refs/heads/{branch}"
        if repo is None:
            return 404, _error("Not Found")
        old = _git(repo.clone_url, "rev-parse", "-q", "--verify", ref)
        if old is None:
            return 422, _error("Reference does not exist")
        if _kind(repo.clone_url, sha) != "commit":
            return 422, _error("Object does not exist")
        ahead = _git(repo.clone_url, "merge-base", "--is-ancestor", old, str(sha)) is not None
        if not ahead and body.get("force") is not True:
            return 422, _error("Update is not a fast forward")
        if _git(repo.clone_url, "update-ref", ref, str(sha), old) is None:
            return 422, _error("Update is not a fast forward")
        return 200, self._ref_json(repo, ref, str(sha))

    def _ref_json(self, repo: RepoRecord, ref: str, sha: str) -> Json:
        api = f"{self.url}/repos/{repo.full_name}/git"
        target = {"sha": sha, "type": "commit", "url": f"{api}/commits/{sha}"}
        return {"ref": ref, "url": f"{api}/{ref}", "object": target}

    def _reply(self, req: RecordedRequest, owner: str, name: str, n: str, c: str) -> Response:
        """A reply in a review comment's thread; GitHub takes no reply to a reply."""
        repo = self._repo(owner, name)
        pull = self._pull(repo, int(n))
        found = [r for r in self.review_comments if repo and r.repo == repo.full_name]
        parent = next((r for r in found if r.pull_number == int(n) and r.id == int(c)), None)
        if repo is None or pull is None or parent is None:
            return 404, _error("Not Found")
        body = req.body.get("body") if isinstance(req.body, dict) else None
        if not isinstance(body, str) or not body:
            return 422, _invalid("PullRequestReviewComment", "body", "missing_field")
        if parent.in_reply_to is not None:
            return 422, _error("Replies to replies are not supported")
        reply = ReviewCommentRecord(
            repo.full_name, pull.number, self._next_id(), body, self.login, parent.path,
            parent.line, parent.start_line, parent.id,
        )  # fmt: skip
        self.review_comments.append(reply)
        return 201, self._review_comment_json(reply)

    def _get_review_comment(self, _: RecordedRequest, owner: str, name: str, c: str) -> Response:
        """Any review comment of the repository, whichever pull request it is on."""
        repo = self._repo(owner, name)
        found = [r for r in self.review_comments if repo and r.repo == repo.full_name]
        comment = next((r for r in found if r.id == int(c)), None)
        return (200, self._review_comment_json(comment)) if comment else (404, _error("Not Found"))

    def _list_review_comments(self, _: RecordedRequest, owner: str, name: str, n: str) -> Response:
        repo = self._repo(owner, name)
        if self._pull(repo, int(n)) is None or repo is None:
            return 404, _error("Not Found")
        found = [c for c in self.review_comments
                 if c.repo == repo.full_name and c.pull_number == int(n)]  # fmt: skip
        return 200, [self._review_comment_json(c) for c in found]

    def _review_comment_json(self, comment: ReviewCommentRecord) -> Json:
        api = f"{self.url}/repos/{comment.repo}/pulls"
        html = f"{self.base}/{comment.repo}/pull/{comment.pull_number}"
        return {
            "id": comment.id,
            "body": comment.body,
            "user": self._user(comment.author),
            "path": comment.path,
            "line": comment.line,
            "start_line": comment.start_line,
            "in_reply_to_id": comment.in_reply_to,
            "url": f"{api}/comments/{comment.id}",
            "pull_request_url": f"{api}/{comment.pull_number}",
            "html_url": f"{html}#discussion_r{comment.id}",
        }

    def _get_protection(self, _: RecordedRequest, owner: str, name: str, branch: str) -> Response:
        repo = self._repo(owner, name)
        if repo is None or branch not in repo.branches:
            return 404, _error("Branch not found")
        if branch not in repo.protected:
            return 404, _error("Branch not protected")
        return 200, {"url": f"{self.url}/repos/{repo.full_name}/branches/{branch}/protection"}

    def _get_contents(self, req: RecordedRequest, owner: str, name: str, path: str) -> Response:
        repo = self._repo(owner, name)
        ref = req.query.get("ref") or (repo.default_branch if repo else "")
        text = _git(repo.clone_url, "show", f"{ref}:{path}") if repo else None
        if repo is None or text is None:
            return 404, _error("Not Found")
        api = f"{self.url}/repos/{repo.full_name}/contents/{path}"
        return 200, {
            "type": "file",
            "encoding": "base64",
            "content": base64.b64encode(text.encode()).decode(),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "size": len(text.encode()),
            "sha": "0" * 40,
            "url": api,
            "html_url": f"{self.base}/{repo.full_name}/blob/{ref}/{path}",
        }

    def _ci_record(self, owner: str, name: str, kind: str, n: str) -> CiRecord | None:
        repo = self._repo(owner, name)
        found = [c for c in self.ci if repo and c.repo == repo.full_name and c.kind == kind]
        return next((c for c in found if c.id == int(n)), None)

    def _get_run(self, _: RecordedRequest, owner: str, name: str, n: str) -> Response:
        run = self._ci_record(owner, name, "run", n)
        return (200, self._run_json(run)) if run else (404, _error("Not Found"))

    def _list_jobs(self, _: RecordedRequest, owner: str, name: str, n: str) -> Response:
        run = self._ci_record(owner, name, "run", n)
        if run is None:
            return 404, _error("Not Found")
        return 200, {
            "total_count": len(run.jobs),
            "jobs": [self._job_json(run, j) for j in run.jobs],
        }

    def _job_logs(self, _: RecordedRequest, owner: str, name: str, n: str) -> Response:
        """Like GitHub: a redirect to a short-lived download URL on another host."""
        repo = self._repo(owner, name)
        runs = [c for c in self.ci if repo and c.repo == repo.full_name and c.kind == "run"]
        if not any(j.id == int(n) for run in runs for j in run.jobs):
            return 404, _error("Not Found")
        location = f"{self.base}/_blobs/job-logs/{n}?sig={self._blob_key}"
        return 302, Raw(content_type="text/plain", headers={"Location": location})

    def _blob(self, req: RecordedRequest, auth: str) -> Response:
        """The download URL: signed, so it must arrive *without* the API token."""
        if auth:
            self.unexpected.append(req)  # the token leaked to the log storage host
        found = re.fullmatch(r"/_blobs/job-logs/(\d+)", req.path)
        jobs = [j for c in self.ci for j in c.jobs if found and j.id == int(found[1])]
        if not jobs or req.query.get("sig") != self._blob_key:
            return 403, Raw(b"AuthenticationFailed", "application/xml")
        self.log_downloads.append(jobs[0].id)
        return 200, Raw(jobs[0].log.encode())

    def _get_suite(self, _: RecordedRequest, owner: str, name: str, n: str) -> Response:
        suite = self._ci_record(owner, name, "suite", n)
        return (200, self._suite_json(suite)) if suite else (404, _error("Not Found"))

    def _list_check_runs(self, _: RecordedRequest, owner: str, name: str, n: str) -> Response:
        suite = self._ci_record(owner, name, "suite", n)
        if suite is None:
            return 404, _error("Not Found")
        runs = [self._check_run_json(suite, j) for j in suite.jobs]
        return 200, {"total_count": len(runs), "check_runs": runs}

    # --- state lookups ---------------------------------------------------------------------
    def _issue(self, repo: RepoRecord | None, number: int) -> IssueRecord | None:
        found = [i for i in self.issues if repo and i.repo == repo.full_name and i.number == number]
        return found[0] if found else None

    def _pull(self, repo: RepoRecord | None, number: int) -> PullRecord | None:
        found = [p for p in self.pulls if repo and p.repo == repo.full_name and p.number == number]
        return found[0] if found else None

    def _exists(self, repo: RepoRecord, number: int) -> bool:
        return self._issue(repo, number) is not None or self._pull(repo, number) is not None

    def _head_sha(self, pull: PullRecord) -> str:
        if pull.head_sha is not None:
            return pull.head_sha
        repo = self.repos[pull.repo.lower()]
        return _git(repo.clone_url, "rev-parse", "--verify", "-q", f"refs/heads/{pull.head}") or (
            "0" * 40
        )

    # --- JSON shapes (only the fields PyGithub reads for codebot, URLs back to us) -----------
    def _user(self, login: str) -> Json:
        return {"login": login, "type": "User", "url": f"{self.url}/users/{login}"}

    def _repo_json(self, repo: RepoRecord) -> Json:
        owner, name = repo.full_name.split("/")
        return {
            "id": abs(hash(repo.full_name)) % 10**8,
            "name": name,
            "full_name": repo.full_name,
            "owner": self._user(owner),
            "private": False,
            "default_branch": repo.default_branch,
            "clone_url": repo.clone_url,
            "html_url": f"{self.base}/{repo.full_name}",
            "url": f"{self.url}/repos/{repo.full_name}",
        }

    def _label_json(self, repo: RepoRecord, label: str) -> Json:
        return {"name": label, "url": f"{self.url}/repos/{repo.full_name}/labels/{label}"}

    def _issue_json(self, issue: IssueRecord) -> Json:
        api = f"{self.url}/repos/{issue.repo}"
        repo = self.repos[issue.repo.lower()]
        return {
            "number": issue.number,
            "title": issue.title,
            "body": issue.body or None,
            "state": issue.state,
            "labels": [self._label_json(repo, x) for x in issue.labels],
            "user": self._user(issue.author),
            "author_association": issue.author_association,
            "url": f"{api}/issues/{issue.number}",
            "html_url": f"{self.base}/{issue.repo}/issues/{issue.number}",
            "comments_url": f"{api}/issues/{issue.number}/comments",
            "repository_url": api,
        }

    def _pull_as_issue_json(self, pull: PullRecord) -> Json:
        api = f"{self.url}/repos/{pull.repo}"
        data = self._issue_json(
            IssueRecord(pull.repo, pull.number, pull.title, pull.body, pull.labels, pull.author, "")
        )
        data["author_association"] = "CONTRIBUTOR"
        data["state"] = pull.state
        data["html_url"] = f"{self.base}/{pull.repo}/pull/{pull.number}"
        data["pull_request"] = {"url": f"{api}/pulls/{pull.number}", "html_url": data["html_url"]}
        return data

    def _pull_json(self, pull: PullRecord) -> Json:
        api = f"{self.url}/repos/{pull.repo}"
        repo = self.repos[pull.repo.lower()]
        owner = pull.repo.split("/")[0]
        return {
            "number": pull.number,
            "title": pull.title,
            "body": pull.body or None,
            "state": pull.state,
            "draft": pull.draft,
            "user": self._user(pull.author),
            "head": {
                "ref": pull.head,
                "label": f"{owner}:{pull.head}",
                "sha": self._head_sha(pull),
            },
            "base": {"ref": pull.base, "label": f"{owner}:{pull.base}", "sha": "0" * 40},
            "labels": [self._label_json(repo, x) for x in pull.labels],
            "requested_reviewers": [self._user(r) for r in pull.requested_reviewers],
            "merged_at": "2026-01-02T03:04:05Z" if pull.merged else None,
            "url": f"{api}/pulls/{pull.number}",
            "issue_url": f"{api}/issues/{pull.number}",
            "comments_url": f"{api}/issues/{pull.number}/comments",
            "html_url": f"{self.base}/{pull.repo}/pull/{pull.number}",
        }

    def _comment_json(self, comment: CommentRecord) -> Json:
        api = f"{self.url}/repos/{comment.repo}"
        return {
            "id": comment.id,
            "body": comment.body,
            "user": self._user(comment.author),
            "url": f"{api}/issues/comments/{comment.id}",
            "issue_url": f"{api}/issues/{comment.issue_number}",
            "html_url": (
                f"{self.base}/{comment.repo}/issues/{comment.issue_number}"
                f"#issuecomment-{comment.id}"
            ),
        }

    def _run_json(self, run: CiRecord) -> Json:
        api = f"{self.url}/repos/{run.repo}/actions/runs/{run.id}"
        return {
            "id": run.id,
            "name": run.name,
            "head_branch": run.head_branch,
            "head_sha": run.head_sha,
            "status": "completed",
            "conclusion": run.conclusion,
            "run_attempt": 1,
            "url": api,
            "jobs_url": f"{api}/jobs",
            "logs_url": f"{api}/logs",
            "html_url": f"{self.base}/{run.repo}/actions/runs/{run.id}",
        }

    def _job_json(self, run: CiRecord, job: JobRecord) -> Json:
        api = f"{self.url}/repos/{run.repo}/actions/jobs/{job.id}"
        failed = job.conclusion != "success"
        steps = [
            ("Set up job", "success"),
            ("Run actions/checkout@v4", "success"),
            (job.failed_step, job.conclusion),
            ("Post Run actions/checkout@v4", "success"),
            ("Complete job", "success"),
        ]
        return {
            "id": job.id,
            "run_id": run.id,
            "name": job.name,
            "head_sha": run.head_sha,
            "status": "completed",
            "conclusion": job.conclusion,
            "steps": [
                {
                    "name": n,
                    "status": "completed",
                    "conclusion": c if failed else "success",
                    "number": i + 1,
                }
                for i, (n, c) in enumerate(steps)
            ],
            "url": api,
            "html_url": f"{self.base}/{run.repo}/actions/runs/{run.id}/job/{job.id}",
            "check_run_url": f"{self.url}/repos/{run.repo}/check-runs/{job.id}",
        }

    def _suite_json(self, suite: CiRecord) -> Json:
        api = f"{self.url}/repos/{suite.repo}/check-suites/{suite.id}"
        return {
            "id": suite.id,
            "head_branch": suite.head_branch,
            "head_sha": suite.head_sha,
            "status": "completed",
            "conclusion": suite.conclusion,
            "app": {"slug": suite.name.lower(), "name": suite.name},
            "url": api,
            "check_runs_url": f"{api}/check-runs",
        }

    def _check_run_json(self, suite: CiRecord, run: JobRecord) -> Json:
        return {
            "id": run.id,
            "name": run.name,
            "head_sha": suite.head_sha,
            "status": "completed",
            "conclusion": run.conclusion,
            "output": {
                "title": run.title or None,
                "summary": run.summary or None,
                "text": run.log or None,
                "annotations_count": 0,
            },
            "url": f"{self.url}/repos/{suite.repo}/check-runs/{run.id}",
            "html_url": f"{self.base}/{suite.repo}/runs/{run.id}",
        }


def _git(clone_url: str, *args: str) -> str | None:
    """What git says about a local bare repository (None when it fails or is not local)."""
    if not Path(clone_url).is_dir():
        return None
    out = subprocess.run(["git", "--git-dir", clone_url, *args], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def _git_bytes(clone_url: str, data: bytes, *args: str, env: Mapping[str, str] = {}) -> str:
    """git with `data` on stdin, in a local bare repository; its output, which must exist."""
    out = subprocess.run(["git", "--git-dir", clone_url, *args], input=data, capture_output=True,
                         env={**os.environ, **env}, check=True)  # fmt: skip
    return out.stdout.decode().strip()


def _kind(clone_url: str, sha: object) -> str | None:
    """The type of object `sha` in the repository (blob, tree, commit), None if absent."""
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{40}", sha):
        return None
    return _git(clone_url, "cat-file", "-t", sha)


def _tree_files(clone_url: str, tree: str) -> dict[str, tuple[str, str]] | None:
    """Every path of a tree, recursively: path -> (mode, object id)."""
    if _kind(clone_url, tree) != "tree":
        return None
    out = subprocess.run(["git", "--git-dir", clone_url, "ls-tree", "-r", "-z", tree],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    files = {}
    for record in filter(None, out.split("\0")):
        meta, path = record.split("\t", 1)
        mode, _, sha = meta.split()
        files[path] = (mode, sha)
    return files


_MODES = {"100644": "blob", "100755": "blob", "120000": "blob", "160000": "commit"}


def _apply_entry(clone_url: str, files: dict[str, tuple[str, str]], entry: object) -> str:
    """Set or delete one path of a tree being made; what GitHub would refuse, else ""."""
    if not isinstance(entry, dict):
        return "tree entries must be objects"
    path, mode, kind, sha = (entry.get(k) for k in ("path", "mode", "type", "sha"))
    if not isinstance(path, str) or not path or path.startswith("/") or path.endswith("/"):
        return f"tree.path {path!r} is invalid"
    if not isinstance(mode, str) or _MODES.get(mode) != kind:
        return f"tree.mode {mode!r} does not fit type {kind!r}"
    if "content" in entry and isinstance(entry["content"], str):
        sha = _git_bytes(clone_url, entry["content"].encode(), "hash-object", "-w", "--stdin")
    if sha is None:
        if files.pop(path, None) is None:
            return f"tree.path {path!r} cannot be deleted: it is not in the base tree"
        return ""
    if kind == "blob" and _kind(clone_url, sha) != "blob":
        return f"tree.sha {sha!r} is not a valid blob"
    if kind == "commit" and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40}", sha)):
        return f"tree.sha {sha!r} is not a commit id"
    files[path] = (mode, str(sha))
    return ""


def _write_tree(clone_url: str, files: Mapping[str, tuple[str, str]]) -> str | None:
    """The tree holding exactly `files`, written from a scratch index (None if git refuses)."""
    with tempfile.TemporaryDirectory(prefix="github-double-") as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        info = "".join(f"{mode} {sha}\t{path}\0" for path, (mode, sha) in sorted(files.items()))
        steps = [(["read-tree", "--empty"], ""), (["update-index", "-z", "--index-info"], info)]
        for args, data in [*steps, (["write-tree"], "")]:
            done = subprocess.run(["git", "--git-dir", clone_url, *args], input=data, env=env,
                                  capture_output=True, text=True)  # fmt: skip
            if done.returncode != 0:
                return None
        return done.stdout.strip()


def _error(message: str) -> Json:
    return {"message": message, "documentation_url": "https://docs.github.com/rest"}


def _custom(message: str) -> Json:
    return {"resource": "PullRequest", "code": "custom", "message": message}


def _invalid(resource: str, field_name: str, code: str) -> Json:
    errors = [{"resource": resource, "field": field_name, "code": code}]
    return {"message": "Validation Failed", "errors": errors}


def _handler_for(server: GitHubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            auth = self.headers.get("Authorization", "")
            status, payload = server.handle(self.command, self.path, auth, body)
            raw = payload if isinstance(payload, Raw) else None
            data = raw.body if raw else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header(
                "Content-Type", raw.content_type if raw else "application/json; charset=utf-8"
            )
            for name, value in (raw.headers if raw else {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def github_server() -> Iterator[GitHubServer]:
    """A started GitHub double; fails the test if codebot called an endpoint it does not speak."""
    with GitHubServer() as server:
        yield server
    assert not server.unexpected, f"requests the GitHub double does not serve: {server.unexpected}"
