"""The issue-to-PR world the GitHub tests start from: `octo-org/hello-app` on the GitHub
double with the example repository as its remote, issue #42 opened by a member and
labelled `codebot`; the forge on it (no pacing, no retries: the double answers at once),
and the publish job's environment (the write token, and no model key anywhere). A test
module that needs another world defines its own `hub`."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebot.forge import ClientOptions, GitHubForge
from tests.support.github_server import GitHubServer

REPO = "octo-org/hello-app"
ISSUE_BODY = """parse_duration("1h30m") raises KeyError and "abc" returns 0.

- [ ] minutes are supported
- [ ] malformed input raises ValueError
"""


@pytest.fixture
def hub(github_server: GitHubServer, remote: Path) -> GitHubServer:
    github_server.add_repo(REPO, default_branch="main", clone_url=str(remote))
    github_server.add_issue(
        REPO, 42, "Support minutes in parse_duration", ISSUE_BODY, labels=["codebot"],
        author="alice", author_association="MEMBER",
    )  # fmt: skip
    return github_server


@pytest.fixture
def forge(hub: GitHubServer) -> GitHubForge:
    return GitHubForge(hub.token, hub.url, ClientOptions(False, 0, 0))


@pytest.fixture
def writer_env(hub: GitHubServer) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root",
            "GITHUB_TOKEN": hub.token, "GITHUB_API_URL": hub.url}  # fmt: skip
