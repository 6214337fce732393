"""A local GitHub REST double: the endpoints codebot.forge uses, over a real socket.

PyGithub follows URLs it finds in responses, so every URL here points back to this server.
The double is strict: a request for an endpoint it does not speak is answered 404 *and*
recorded in `unexpected`, which fails the test at teardown. Longer than our usual module
because it is a whole fake service (state, routes, JSON shapes) that reads best in one place.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


@dataclass
class CommentRecord:
    repo: str
    issue_number: int
    id: int
    body: str
    author: str


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

    def protect(self, full_name: str, branch: str) -> None:
        repo = self.repos[full_name.lower()]
        repo.branches.add(branch)
        repo.protected.add(branch)

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
            (repo + r"/branches/(?P<branch>.+)/protection", "GET", self._get_protection),
            (repo + r"/branches/(?P<branch>.+)", "GET", self._get_branch),
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
        if repo is None or branch not in repo.branches:
            return 404, _error("Branch not found")
        api = f"{self.url}/repos/{repo.full_name}/branches/{branch}"
        return 200, {
            "name": branch,
            "protected": branch in repo.protected,
            "commit": {"sha": "0" * 40, "url": f"{self.url}/repos/{repo.full_name}/commits/0"},
            "protection_url": f"{api}/protection",
            "_links": {"self": api, "html": f"{self.base}/{repo.full_name}/tree/{branch}"},
        }

    def _get_protection(self, _: RecordedRequest, owner: str, name: str, branch: str) -> Response:
        repo = self._repo(owner, name)
        if repo is None or branch not in repo.branches:
            return 404, _error("Branch not found")
        if branch not in repo.protected:
            return 404, _error("Branch not protected")
        return 200, {"url": f"{self.url}/repos/{repo.full_name}/branches/{branch}/protection"}

    # --- state lookups ---------------------------------------------------------------------
    def _issue(self, repo: RepoRecord | None, number: int) -> IssueRecord | None:
        found = [i for i in self.issues if repo and i.repo == repo.full_name and i.number == number]
        return found[0] if found else None

    def _pull(self, repo: RepoRecord | None, number: int) -> PullRecord | None:
        found = [p for p in self.pulls if repo and p.repo == repo.full_name and p.number == number]
        return found[0] if found else None

    def _exists(self, repo: RepoRecord, number: int) -> bool:
        return self._issue(repo, number) is not None or self._pull(repo, number) is not None

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
            "head": {"ref": pull.head, "label": f"{owner}:{pull.head}", "sha": "0" * 40},
            "base": {"ref": pull.base, "label": f"{owner}:{pull.base}", "sha": "0" * 40},
            "labels": [self._label_json(repo, x) for x in pull.labels],
            "requested_reviewers": [self._user(r) for r in pull.requested_reviewers],
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
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
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
