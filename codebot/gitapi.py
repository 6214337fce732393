"""How a branch's new commits reach GitHub: `git push`, or made again through the Git Data API.

Organisations whose rulesets require signed commits refuse a push of codebot's unsigned
commits. A commit GitHub makes itself through the API, for a GitHub App token, is signed by
GitHub and shows as verified; so with `commit_via_api` each local commit is made again there
(blobs, a tree on its parent's tree, a commit with GitHub as author) and the branch is created
or fast-forwarded to the last one. Never forced: a branch that moved is the same error as a
rejected push. Each tree GitHub makes must be the very tree git made locally (same id), so
the commit on GitHub holds exactly the bytes, modes and links the sandbox tested.
"""

from __future__ import annotations

from dataclasses import dataclass

from codebot.errors import ForgeError, WorkspaceError
from codebot.protocols import BranchHead, Forge, MadeCommit, TreeEntry
from codebot.workspace import LocalCommit, Workspace

VIA_API = "committed through the GitHub API"


@dataclass(frozen=True)
class Sent:
    """The branch on GitHub after sending it: `head` is its commit there (not the local one
    when GitHub made it), `fresh` False when GitHub already held exactly this, `how` what
    happened, for the run record and the log."""

    head: str
    fresh: bool
    how: str


def send_branch(forge: Forge, full_name: str, ws: Workspace, via_api: bool) -> Sent:
    """Put the workspace's branch on GitHub, pushed or made through the API, never forced."""
    if via_api:
        return commit_via_api(forge, full_name, ws)
    tip = ws.commit_of(ws.branch) or ""
    there = ws.commit_of(f"origin/{ws.branch}") == tip
    ws.push()
    return Sent(tip, not there, f"pushed {ws.branch}")


def commit_via_api(forge: Forge, full_name: str, ws: Workspace) -> Sent:
    """Make the branch's commits beyond GitHub's head of it (or beyond the base when GitHub
    has no such branch) again through the API, then create or fast-forward the branch."""
    head = forge.branch_head(full_name, ws.branch)
    if head is not None and not ws.is_ancestor(head.sha, ws.branch):
        return _already_there(head, ws)
    since = head.sha if head is not None else ws.base_commit
    commits = ws.commits_since(since)
    if head is not None and not commits:
        return Sent(head.sha, False, f"{VIA_API}: nothing new for {ws.branch}")
    made: list[MadeCommit] = []
    blobs: dict[str, str] = {}  # local blob id -> GitHub's (they must be the same)
    for commit in commits:
        made.append(_make(forge, full_name, commit, made[-1].sha if made else since, blobs))
    parent = made[-1].sha if made else since
    if head is None:
        moved = not forge.create_ref(full_name, ws.branch, parent)
    else:
        moved = not forge.update_ref(full_name, ws.branch, parent)
    if moved:
        raise _moved(ws.branch)
    return Sent(parent, True, _how(made))


def _already_there(head: BranchHead, ws: Workspace) -> Sent:
    """GitHub's head is not in the local history: the same change made through the API
    before (a publish run again) if it holds the very tree of the local tip; else the branch
    moved, and nothing is made."""
    planned = ws.commits_since(ws.base_commit)
    if planned and planned[-1].tree == head.tree:
        return Sent(head.sha, False, f"{VIA_API}: {ws.branch} already holds this change")
    raise _moved(ws.branch)


def _make(
    forge: Forge, full_name: str, commit: LocalCommit, parent: str, blobs: dict[str, str]
) -> MadeCommit:
    """One local commit made again on GitHub on top of `parent` (whose tree is the local
    parent's); `blobs` remembers what was stored already."""
    entries = []
    for f in commit.files:
        if f.data is not None and f.sha is not None and f.sha not in blobs:
            blobs[f.sha] = forge.create_blob(full_name, f.data)
            if blobs[f.sha] != f.sha:
                raise _differs(f"file {f.path}", commit.sha)
        entries.append(TreeEntry(f.path, f.mode, f.sha))
    tree = forge.create_tree(full_name, commit.parent_tree, entries) if entries else commit.tree
    if tree != commit.tree:
        raise _differs("the tree", commit.sha)
    return forge.create_commit(full_name, commit.message, tree, [parent])


def _how(made: list[MadeCommit]) -> str:
    refused = sorted({m.reason or "no reason given" for m in made if not m.verified})
    if refused:
        return f"{VIA_API} (not verified: {', '.join(refused)})"
    return f"{VIA_API} (verified)"


def _moved(branch: str) -> WorkspaceError:
    """The error a rejected push gives, so a caller cannot tell the two ways apart."""
    return WorkspaceError(
        f"the branch {branch} moved on the remote while codebot worked "
        "(another run or a person pushed); nothing was pushed",
        "run again to continue from the new tip",
    )


def _differs(what: str, commit: str) -> ForgeError:
    return ForgeError(
        f"GitHub stored {what} of commit {commit[:12]} differently from git; "
        "the branch was left as it was",
        "push instead (unset CODEBOT_COMMIT_VIA_API) and report this",
    )
