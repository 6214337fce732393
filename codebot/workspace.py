"""The isolated clone a run works in. The only module importing `git` (GitPython).

The user's repository is only ever read from, plus one ref written at the very end
(`publish_local`): its working tree, index and current branch are never touched.
A little over our usual length: the bundle helpers of the plan/publish split (`write_bundle`,
`from_bundle`, `new_changes`) and the commit reader of codebot.gitapi (`commits_since`) belong
with the other git calls, which may live nowhere else: that rule is why it is over 400
lines.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import git

from codebot.errors import WorkspaceError
from codebot.owner import owner, owner_gone

_PYTHON_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", "requirements.txt")


@dataclass(frozen=True)
class Change:
    """A path one commit adds, changes or deletes; `mode` is its new git mode (000000 when
    deleted, 120000 a symlink, whose target is `link`; 160000 a submodule)."""

    commit: str
    path: str
    mode: str
    link: str | None = None


@dataclass(frozen=True)
class FileAt:
    """A path as one commit left it: `mode` and blob `sha` (a submodule's commit for 160000)
    with the blob's bytes in `data`; deleted, `sha` and `data` are None and `mode` the old."""

    path: str
    mode: str
    sha: str | None
    data: bytes | None


@dataclass(frozen=True)
class LocalCommit:
    """A commit of the branch with the trees it goes from and to, and the paths it changed."""

    sha: str
    message: str
    tree: str
    parent_tree: str
    files: tuple[FileAt, ...]


@dataclass
class Workspace:
    """`source` is the user's repo path or the remote URL (never with credentials in it);
    `base_commit` is what the branch's whole change is measured against."""

    source: str
    path: Path
    branch: str
    base_ref: str
    base_commit: str
    _repo: git.Repo
    _auth: dict[str, str] = field(default_factory=dict, repr=False)
    _base_files: frozenset[str] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, source: Path, slug: str, base: str | None, prefix: str) -> Workspace:
        """Clone `source` at `base` (default: its HEAD) into a temp dir on a new branch."""
        src = _open(source)
        base_ref = base or _head_name(src)
        try:
            base_commit = src.commit(base_ref).hexsha
        except (git.BadName, ValueError):
            raise WorkspaceError(
                f"base `{base_ref}` is not a branch or commit in {source}",
                "fix `base:` in the spec or fetch that branch",
            ) from None
        branch = _free_branch_name(src, f"{prefix}{slug}")
        path = _new_clone_dir()
        try:
            repo = git.Repo.clone_from(str(src.working_dir), path, no_checkout=True)
            repo.git.checkout("-b", branch, base_commit)
        except git.GitCommandError as exc:
            _remove_clone_dir(path)
            raise WorkspaceError(
                f"cannot clone {source}: {_stderr(exc)}", "check the repo"
            ) from None
        return cls(str(src.working_dir), path, branch, base_ref, base_commit, repo)

    @classmethod
    def clone(cls, url: str, branch: str, base: str, token: str | None = None) -> Workspace:
        """Clone a remote. An existing `branch` there is continued (follow-ups add commits on
        top); otherwise it starts from `base`. The token reaches git only through the
        environment of each call: never argv, never .git/config."""
        auth = _auth_env(url, token)
        path = _new_clone_dir()
        try:
            repo = git.Repo.clone_from(url, path, env=auth, no_checkout=True)
            remote = {ref.remote_head for ref in repo.remotes.origin.refs}
            if base not in remote:
                raise WorkspaceError(f"branch `{base}` does not exist on {_display(url)}", "")
            if branch in remote:
                repo.git.checkout("-b", branch, f"origin/{branch}")
                base_commit = repo.git.merge_base(f"origin/{base}", branch)
            else:
                repo.git.checkout("-b", branch, f"origin/{base}")
                base_commit = repo.head.commit.hexsha
        except git.GitCommandError as exc:
            _remove_clone_dir(path)
            raise WorkspaceError(
                f"cannot clone {_display(url)}: {_stderr(exc)}",
                "check the repository URL, the network and the token's access",
            ) from None
        except WorkspaceError:
            _remove_clone_dir(path)
            raise
        return cls(_display(url), path, branch, base, base_commit, repo, auth)

    @classmethod
    def from_bundle(
        cls, url: str, bundle: Path, branch: str, base: str, base_commit: str, token: str | None
    ) -> Workspace:
        """A clone of the remote plus local `branch` at the tip `bundle` holds for it: what
        `codebot publish` checks, then pushes. Nothing is checked out."""
        auth = _auth_env(url, token)
        path = _new_clone_dir()
        try:
            repo = git.Repo.clone_from(url, path, env=auth, no_checkout=True)
            repo.git.bundle("verify", str(bundle))
            repo.git.fetch("--no-tags", str(bundle), f"refs/heads/{branch}:refs/heads/{branch}")
        except git.GitCommandError as exc:
            _remove_clone_dir(path)
            raise WorkspaceError(
                f"cannot take branch {branch} from {bundle.name} into a clone of "
                f"{_display(url)}: {_stderr(exc)}",
                "the bundle must hold that branch and need only commits the remote has",
            ) from None
        return cls(_display(url), path, branch, base, base_commit, repo, auth)

    def write_bundle(self, path: Path) -> bool:
        """The branch's commits beyond the base, as a git bundle another job can check and
        push; False (and no file) when there are none."""
        with _git("writing the bundle"):
            if self._repo.commit(self.branch).hexsha == self.base_commit:
                return False
            self._repo.git.bundle("create", str(path), f"{self.base_commit}..{self.branch}")
        return True

    def commit_of(self, ref: str) -> str | None:
        """The commit `ref` names in this clone (e.g. `origin/main`), or None."""
        try:
            return str(self._repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}"))
        except git.GitCommandError:
            return None

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether `older` is `newer` or in its history (False when either is unknown)."""
        try:
            self._repo.git.merge_base("--is-ancestor", older, newer)
        except git.GitCommandError:
            return False
        return True

    def new_changes(self, known: Sequence[str]) -> list[Change]:
        """Each path added, changed or deleted by the branch's commits that none of the refs
        `known` holds, with symlink targets: what a push of the branch brings to them."""
        changes = []
        with _git("listing the commits to push"):
            shas = self._repo.git.rev_list("--reverse", self.branch, "--not", *known)
            for sha in shas.split():
                raw = self._repo.git.diff_tree(
                    "-r", "-z", "-m", "--no-renames", "--no-commit-id", sha
                )
                fields = raw.split("\0")
                for meta, path in zip(fields[0::2], fields[1::2], strict=False):
                    mode, blob = meta.split()[1], meta.split()[3]
                    link = None
                    if mode == "120000":
                        data = self._repo.git.cat_file("blob", blob, stdout_as_string=False)
                        link = bytes(data).decode("utf-8", errors="replace")
                    changes.append(Change(sha, path, mode, link))
        return changes

    def commits_since(self, since: str) -> list[LocalCommit]:
        """The branch's commits after `since`, oldest first and along first parents, each with
        every path it changed against its first parent: what another host needs to make the
        same commits again (codebot.gitapi)."""
        found = []
        with _git("reading the commits to send"):
            shas = self._repo.git.rev_list("--reverse", "--first-parent", f"{since}..{self.branch}")
            for sha in shas.split():
                commit = self._repo.commit(sha)
                parent = commit.parents[0]
                raw = self._repo.git.diff_tree("-r", "-z", "--no-renames", parent.hexsha, sha)
                fields = raw.split("\0")
                files = tuple(
                    self._file_at(meta.split(), path)
                    for meta, path in zip(fields[0::2], fields[1::2], strict=False)
                )
                message = commit.message
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                found.append(LocalCommit(sha, text, commit.tree.hexsha, parent.tree.hexsha, files))
        return found

    def _file_at(self, meta: list[str], path: str) -> FileAt:
        """One `diff-tree` record (`:old_mode new_mode old_sha new_sha status`) and its path."""
        if meta[4] == "D":
            return FileAt(path, meta[0].lstrip(":"), None, None)
        mode, sha = meta[1], meta[3]
        data = None if mode == "160000" else self._repo.odb.stream(bytes.fromhex(sha)).read()
        return FileAt(path, mode, sha, data)

    def push(self) -> None:
        """Push the branch without force: if it moved on the remote, nothing is pushed."""
        refspec = f"{self.branch}:refs/heads/{self.branch}"
        try:
            self._repo.git.push("--porcelain", "origin", refspec, env=self._auth or None)
        except git.GitCommandError as exc:
            text = _stderr(exc)
            # --porcelain reports a rejected ref on stdout, the hints go to stderr.
            said = f"{exc.stdout or ''} {text}"
            if "non-fast-forward" in said or "fetch first" in said or "[rejected]" in said:
                raise WorkspaceError(
                    f"the branch {self.branch} moved on the remote while codebot worked "
                    "(another run or a person pushed); nothing was pushed",
                    "run again to continue from the new tip",
                ) from None
            unreachable = any(sign in text for sign in _UNREACHABLE)
            raise WorkspaceError(
                f"cannot push {self.branch} to {self.source}: {text}",
                "check the repository URL, the network and the token's access"
                if unreachable
                else "check the token's contents:write permission and branch protection rules",
            ) from None

    def tracked_files(self) -> list[str]:
        with _git("listing the tracked files"):
            return [p for p in self._repo.git.ls_files("-z").split("\0") if p]

    def base_files(self) -> frozenset[str]:
        """Every file of the base commit (what "an existing file" means to the edit rules);
        listed once, as the base commit never changes."""
        if self._base_files is None:
            with _git("listing the files of the base commit"):
                out = self._repo.git.ls_tree("-r", "-z", "--name-only", self.base_commit)
            self._base_files = frozenset(p for p in out.split("\0") if p)
        return self._base_files

    def read_base_file(self, relpath: str) -> str | None:
        """A file as it is at the base commit (not as the model may have edited it)."""
        with _git(f"reading {relpath} at the base commit"):
            try:
                blob = self._repo.commit(self.base_commit).tree[relpath]
            except KeyError:
                return None
            data: bytes = blob.data_stream.read()
        return data.decode("utf-8", errors="replace")

    def ahead_of_base(self) -> bool:
        """The branch already holds commits beyond the base (a PR codebot continues)."""
        with _git("reading the branch head"):
            return bool(self._repo.head.commit.hexsha != self.base_commit)

    @contextlib.contextmanager
    def base_tree(self) -> Iterator[Path]:
        """The base commit's files, checked out in a temp dir while the block runs."""
        top = Path(tempfile.mkdtemp(prefix="codebot-base-"))
        tree = top / "tree"
        try:
            with _git("checking out the base commit"):
                self._repo.git.worktree("add", "--detach", str(tree), self.base_commit)
            yield tree
        finally:
            with contextlib.suppress(git.GitCommandError):
                self._repo.git.worktree("remove", "--force", str(tree))
            shutil.rmtree(top, ignore_errors=True)

    @contextlib.contextmanager
    def staged_tree(self) -> Iterator[Path]:
        """What the next commit holds, checked out fresh (as a clone would have it) into a
        temp dir while the block runs."""
        top = Path(tempfile.mkdtemp(prefix="codebot-staged-"))
        try:
            with _git("checking out the staged tree"):
                self._repo.git.checkout_index("--all", f"--prefix={top}/tree/")
            (top / "tree").mkdir(exist_ok=True)
            yield top / "tree"
        finally:
            shutil.rmtree(top, ignore_errors=True)

    def staged_deletions(self) -> list[str]:
        """Files of the base commit that the next commit no longer has."""
        with _git("listing the files deleted since the base"):
            out = self._repo.git.diff(
                "--cached", "--name-only", "--no-renames", "--diff-filter=D", "-z", self.base_commit
            )
        return sorted(p for p in out.split("\0") if p)

    def staged_tree_id(self) -> str:
        """Git's id of the tree the index holds: equal ids, equal bytes."""
        with _git("reading the staged tree"):
            return str(self._repo.git.write_tree())

    def has_staged_change(self) -> bool:
        """Whether a commit now would change anything (the index differs from HEAD)."""
        with _git("comparing the index with HEAD"):
            return bool(self._repo.git.diff("--cached", "--name-only", "HEAD"))

    def deleted_since_base(self) -> list[str]:
        """Committed files of the base that the branch head no longer has."""
        with _git("listing the files deleted since the base"):
            out = self._repo.git.diff(
                "--name-only", "--no-renames", "--diff-filter=D", "-z", self.base_commit, "HEAD"
            )
        return sorted(p for p in out.split("\0") if p)

    def is_python(self) -> bool:
        files = self.tracked_files()
        return any(f.endswith(".py") for f in files) or any(m in files for m in _PYTHON_MARKERS)

    def stage(self, paths: Sequence[str]) -> None:
        """Put exactly these paths' bytes into git's index, as the sandbox got them: no
        .gitignore, .gitattributes filter or end-of-line conversion can make the commit
        differ from what was tested. A path no longer in the tree leaves the index."""
        files = [p for p in paths if (self.path / p).is_file() and not (self.path / p).is_symlink()]
        gone = [p for p in paths if not os.path.lexists(self.path / p)]
        with _git("staging the changes"):
            if files:
                out = self._repo.git.hash_object("-w", "--no-filters", "--", *files)
                infos = [
                    arg
                    for path, sha in zip(files, out.split(), strict=True)
                    for arg in ("--cacheinfo", f"{_mode(self.path / path)},{sha},{path}")
                ]
                self._repo.git.update_index("--add", *infos)
            if gone:
                self._repo.git.update_index("--force-remove", "--", *gone)

    def staged_files(self) -> list[str]:
        """Paths the index holds differently from the base commit (new and deleted too)."""
        with _git("listing the changed files"):
            out = self._repo.git.diff("--cached", "--name-only", "-z", self.base_commit)
        return sorted(p for p in out.split("\0") if p)

    def staged_diff(self) -> str:
        """The patch from the base commit to the index."""
        with _git("writing the patch"):
            # As text whatever the attributes say (`-diff`, textconv): a reviewer sees it all.
            text: str = self._repo.git.diff(
                "--cached", "--no-color", "--no-ext-diff", "--text", "--no-textconv",
                self.base_commit,
            )  # fmt: skip
        return text + "\n" if text else ""

    def commit(self, message: str, author_name: str, author_email: str) -> str | None:
        """One squashed commit of everything staged beyond HEAD; None when nothing is."""
        with _git("committing"):
            if not self._repo.git.diff("--cached", "--name-only", "HEAD"):
                return None
            actor = git.Actor(author_name, author_email)
            commit = self._repo.index.commit(
                message, author=actor, committer=actor, skip_hooks=True
            )
        return commit.hexsha

    def publish_local(self) -> None:
        """Copy the branch into the user's repository as a ref; nothing else changes there."""
        src = git.Repo(self.source)
        try:
            src.git.fetch(str(self.path), f"{self.branch}:{self.branch}")
        except git.GitCommandError as exc:
            raise WorkspaceError(
                f"cannot create branch {self.branch} in {self.source}: {_stderr(exc)}",
                "delete or rename the existing branch and run again",
            ) from None

    def cleanup(self) -> None:
        with contextlib.suppress(git.GitError, OSError):
            self._repo.close()
        _remove_clone_dir(self.path)


@contextlib.contextmanager
def _git(
    action: str, fix: str = "the isolated clone is damaged; start the run again"
) -> Iterator[None]:
    """The one place the remaining git errors become WorkspaceErrors: no GitCommandError
    leaves this module as a traceback."""
    try:
        yield
    except git.GitCommandError as exc:
        raise WorkspaceError(f"git failed while {action}: {_stderr(exc)}", fix) from None
    except (git.GitError, ValueError, OSError) as exc:
        raise WorkspaceError(f"git failed while {action}: {exc}", fix) from None


def _mode(path: Path) -> str:
    return "100755" if path.stat().st_mode & 0o100 else "100644"


def _auth_env(url: str, token: str | None) -> dict[str, str]:
    env = {"GIT_TERMINAL_PROMPT": "0"}
    if token and urlsplit(url).scheme in ("http", "https"):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.extraHeader",
            GIT_CONFIG_VALUE_0=f"AUTHORIZATION: basic {basic}",
        )
    return env


def _display(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    if parts.scheme and parts.hostname and (parts.username or parts.password):
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return url


def _open(source: Path) -> git.Repo:
    try:
        repo = git.Repo(source, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise WorkspaceError(
            f"{source} is not a git repository", "pass --repo PATH pointing at a git work tree"
        ) from None
    if repo.bare or not repo.working_dir:
        raise WorkspaceError(f"{source} is a bare repository", "pass a repository with a work tree")
    if not repo.head.is_valid():
        raise _unreadable_head(repo, source)
    return repo


def _unreadable_head(repo: git.Repo, source: Path) -> WorkspaceError:
    """HEAD cannot be read: an empty repository, or one git refuses to touch because another
    user owns it (a CI container running as root on a checkout a runner user made), which
    GitPython reports as an invalid HEAD too."""
    try:
        repo.git.rev_parse("--git-dir")
    except git.GitCommandError as exc:
        if "dubious ownership" in _stderr(exc):
            top = shlex.quote(str(repo.working_dir))
            return WorkspaceError(
                f'git refuses to read {source}: it is owned by another user ("dubious ownership")',
                f"if you trust it, run `git config --global --add safe.directory {top}`",
            )
    return WorkspaceError(f"{source} has no commits yet", "commit something first")


def _head_name(repo: git.Repo) -> str:
    return "HEAD" if repo.head.is_detached else repo.active_branch.name


def _free_branch_name(repo: git.Repo, wanted: str) -> str:
    existing = {h.name for h in repo.heads}
    if wanted not in existing:
        return wanted
    n = 2
    while f"{wanted}-{n}" in existing:
        n += 1
    return f"{wanted}-{n}"


# What git says when it never reached the remote (as opposed to being refused by it).
_UNREACHABLE = (
    "Could not read from remote repository",
    "unable to access",
    "does not appear to be a git repository",
    "Could not resolve host",
    "Failed to connect",
)


_CLONE_DIR_PREFIX = "codebot-ws-"


def _new_clone_dir() -> Path:
    """`<tmp>/codebot-ws-XXXX/repo` for a clone, its parent marked with this process as the
    owner. First removes the clone dirs of ended processes: a run killed outright (SIGKILL)
    cannot remove its own."""
    for top in Path(tempfile.gettempdir()).glob(_CLONE_DIR_PREFIX + "*"):
        try:
            gone = owner_gone((top / "owner").read_text(encoding="utf-8"))
        except OSError:
            continue  # not one of ours, or being made right now
        if gone:
            shutil.rmtree(top, ignore_errors=True)
    top = Path(tempfile.mkdtemp(prefix=_CLONE_DIR_PREFIX))
    (top / "owner").write_text(owner(), encoding="utf-8")
    return top / "repo"


def _remove_clone_dir(path: Path) -> None:
    top = path.parent if path.parent.name.startswith(_CLONE_DIR_PREFIX) else path
    shutil.rmtree(top, ignore_errors=True)


def _stderr(exc: git.GitCommandError) -> str:
    """git's complaint on one line, without the progress lines that name the temp clone."""
    lines = str(exc.stderr or exc).strip().removeprefix("stderr: ").strip("' ").splitlines()
    return " ".join(line.strip() for line in lines if not line.startswith("Cloning into"))


def read_file_at(source: Path, ref: str | None, relpath: str) -> str | None:
    """A file's content at `ref` (default HEAD) in `source`, without touching its work tree."""
    repo = _open(source)
    try:
        blob = repo.commit(ref or "HEAD").tree[relpath]
    except (KeyError, git.BadName, ValueError):
        return None
    data: bytes = blob.data_stream.read()
    return data.decode("utf-8", errors="replace")


def tracked_files_at(source: Path, ref: str | None = None) -> list[str]:
    """The paths committed at `ref` (default HEAD) in `source`, without touching its work tree."""
    repo = _open(source)
    with _git(f"listing the files at {ref or 'HEAD'}", "check that the ref exists in the repo"):
        out = repo.git.ls_tree("-r", "-z", "--name-only", ref or "HEAD")
    return [p for p in out.split("\0") if p]


def origin_url(path: str) -> str:
    """The `origin` remote's URL of the repository at `path`; "" when it has none (or
    `path` is not a local repository)."""
    try:
        return str(git.Repo(path).remotes.origin.url)
    except (git.exc.GitError, AttributeError, ValueError, OSError):
        return ""


def remote_branches(url: str, token: str | None = None) -> list[str]:
    """Branch names on a remote, without cloning it."""
    try:
        out = str(git.cmd.Git().ls_remote("--heads", url, env=_auth_env(url, token)))
    except git.GitCommandError as exc:
        raise WorkspaceError(
            f"cannot list branches of {_display(url)}: {_stderr(exc)}",
            "check the repository URL, the network and the token's access",
        ) from None
    return [line.split("refs/heads/", 1)[1] for line in out.splitlines() if "refs/heads/" in line]
