"""`codebot publish DIR`: the half of a split run that may write (gh-aw's "safe outputs").

The plan job (`--artifact DIR`) held the model key and ran model-written code with a read-only
token, and left DIR. This job holds the write token and no model key, and trusts nothing in
DIR: every file must match the manifest and its size cap, the branch must be codebot's and
fast-forward from the remote's base, no new commit may touch a protected path or link out of
the tree, and every text is redacted and neutralised again. Only then does it push (never
forced), open or update the PR as a one-job run does, and comment; a follow-up asked for in a
review comment gets its reply in that comment's thread, linking the commit now on the branch.

Longer than our usual module: the artifact's format and every rule that checks it read best
on one page, where a file the format gains cannot miss its rule.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from codebot import config as cfg
from codebot import gitapi, pr_history, prose
from codebot.edits.paths import refuse_control, refuse_path
from codebot.errors import CodebotError, ConfigError, ForgeError, WorkspaceError
from codebot.events import load_event
from codebot.protocols import Forge
from codebot.records import PullInfo, RepoInfo
from codebot.redact import Redactor
from codebot.workspace import Change, Workspace

FORMAT = "codebot-plan/1"
# Where the final comment names the PR: the plan cannot know its number before it exists.
PULL_PLACEHOLDER = "{pull_request}"
# Where a review thread's reply names the commit: through the API, GitHub makes it on publish.
COMMIT_PLACEHOLDER = "{commit}"
MANIFEST, PLAN, BODY, BUNDLE, RUN, REPLY = (
    "manifest.json", "plan.json", "pr-body.md", "branch.bundle", "run.json", "reply.md",
)  # fmt: skip
KB, MB = 1024, 1024 * 1024
COMMENT_LIMIT = 16 * KB
LIMITS = {
    MANIFEST: 64 * KB, PLAN: 64 * KB, BODY: 64 * KB, BUNDLE: 50 * MB, RUN: 20 * MB,
    REPLY: COMMENT_LIMIT,
}  # fmt: skip
_COMMENT = re.compile(r"comment-[1-3]\.md")
_SHA = re.compile(r"[0-9a-f]{40}")
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_BRANCH = re.compile(r"(?!.*(?:\.\.|//|@\{))[A-Za-z0-9][A-Za-z0-9._/-]{0,199}(?<![./])(?<!\.lock)")
_DETAILS = re.compile(r"<details><summary>([^<>]*)</summary>")
_SUB = re.compile(r"<sub>([^<>]*)</sub>")
_NOTHING_PUSHED = "nothing was pushed or posted; run codebot again for a new plan"


@dataclass(frozen=True)
class ReviewThread:
    """The review comment (`id`, on pull request `pull`) that asked for a follow-up: the
    reply goes into its thread."""

    id: int
    pull: int


@dataclass(frozen=True)
class Plan:
    """What the plan job asks for. `branch` is empty when there is nothing to push (a
    refusal, an error, nothing to change): then only the comments are posted."""

    repo: str
    number: int  # the issue or PR the comments go to; 0: none
    branch: str = ""
    base_branch: str = ""
    base_commit: str = ""
    head_commit: str = ""
    closes: int | None = None
    title: str = ""
    draft: bool = False
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    stop_reason: str = ""
    run_id: str = ""
    cost_usd: float | None = None
    review_comment: ReviewThread | None = None
    body: str = ""  # pr-body.md
    comments: tuple[str, ...] = ()  # comment-N.md, posted in order
    reply: str = ""  # reply.md, with review_comment only: the answer posted in its thread


@dataclass(frozen=True)
class Published:
    """What `codebot publish` did; the stop reason and cost are the planned run's.
    `head_commit` is the branch's commit on GitHub now (GitHub's own when it made it through
    the API), empty when nothing was pushed."""

    stop_reason: str
    cost_usd: float | None
    pull: PullInfo | None
    comments: int
    head_commit: str = ""


# --- the plan job's side ---------------------------------------------------------------------
def new_directory(path: Path) -> Path:
    """Where a plan goes: absent or empty, so no stale file can ride along with it."""
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(f"artifact directory {path} is not empty", "pass a new or empty one")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_artifact(
    directory: Path, plan: Plan, ws: Workspace | None = None, run_json: Path | None = None
) -> None:
    """The files, then the manifest (size and sha256 of each), written last so a plan cut
    short has none and is never published."""
    if plan.branch and (ws is None or not ws.write_bundle(directory / BUNDLE)):
        raise ConfigError(f"the plan for {plan.branch} has no commit to bundle", "")
    names = [f"comment-{i}.md" for i in range(1, len(plan.comments) + 1)]
    texts = {
        **({BODY: plan.body} if plan.branch else {}),
        **({REPLY: plan.reply} if plan.review_comment else {}),
        **dict(zip(names, plan.comments, strict=True)),
    }
    for name, text in texts.items():
        (directory / name).write_bytes(text.encode("utf-8"))
    data = {"format": FORMAT, **asdict(plan), "comments": names}
    del data["body"], data["reply"]
    (directory / PLAN).write_bytes(json.dumps(data, indent=2).encode("utf-8"))
    if run_json is not None:
        shutil.copyfile(run_json, directory / RUN)
    files = {
        p.name: {"sha256": _sha256(p), "size": p.stat().st_size}
        for p in sorted(directory.iterdir())
        if p.name != MANIFEST
    }
    manifest = json.dumps({"format": FORMAT, "files": files}, indent=2)
    (directory / MANIFEST).write_bytes(manifest.encode("utf-8"))


# --- reading it back -------------------------------------------------------------------------
def read_artifact(directory: Path) -> tuple[Plan, Path | None]:
    """The plan and its bundle, once every file matches the manifest and its size cap."""
    listed = _manifest(directory)
    for path in sorted(directory.iterdir()):
        if path.name != MANIFEST and path.name not in listed:
            raise _refused(path.name, "is not listed in manifest.json")
    for name, entry in listed.items():
        _check_file(directory / name, entry)
    data = _json(directory / PLAN)
    known = {"format", *Plan.__dataclass_fields__} - {"body", "reply"}
    if data.get("format") != FORMAT or set(data) != known:
        raise _refused(PLAN, f"must hold exactly the keys of {FORMAT}: {', '.join(sorted(known))}")
    values = {key: _field(data, key) for key in known - {"format", "comments", "review_comment"}}
    comments = tuple(_comment(directory, name, listed) for name in _field(data, "comments"))
    thread = _thread(data["review_comment"], values["number"])
    has_change = bool(values["branch"])
    for name in (BUNDLE, BODY):
        if (name in listed) != has_change:
            raise _refused(name, "goes with a branch to push, and only with one")
    if (REPLY in listed) != (thread is not None):
        raise _refused(REPLY, "goes with a `review_comment` to answer, and only with one")
    body = _text(directory / BODY) if has_change else ""
    reply = _comment(directory, REPLY, listed) if thread is not None else ""
    plan = Plan(**values, review_comment=thread, body=body, comments=comments, reply=reply)
    return plan, (directory / BUNDLE if has_change else None)


_FIELDS: dict[str, tuple[type, ...]] = {
    "repo": (str,), "number": (int,), "branch": (str,), "base_branch": (str,),
    "base_commit": (str,), "head_commit": (str,), "closes": (int, type(None)), "title": (str,),
    "draft": (bool,), "labels": (list,), "reviewers": (list,), "stop_reason": (str,),
    "run_id": (str,), "cost_usd": (float, int, type(None)), "comments": (list,),
}  # fmt: skip


def _field(data: dict[str, Any], key: str) -> Any:
    """One plan.json value of its exact type (`True` is no number); lists hold strings."""
    value = data[key]
    ok = type(value) in _FIELDS[key]
    if isinstance(value, list):
        ok = ok and all(isinstance(v, str) for v in value)
        value = tuple(value)
    if not ok:
        kinds = " or ".join("null" if t is type(None) else t.__name__ for t in _FIELDS[key])
        raise _refused(PLAN, f"`{key}` must be {kinds}")
    return value


def _thread(value: Any, number: int) -> ReviewThread | None:
    """The review comment a plan answers: two whole ids, on the PR its comments go to."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or set(value) != {"id", "pull"}
        or not all(type(value[key]) is int and value[key] > 0 for key in ("id", "pull"))
    ):
        rule = '`review_comment` must be null or {"id": N, "pull": N}, whole numbers above 0'
        raise _refused(PLAN, rule)
    if value["pull"] != number:
        rule = f"`review_comment` is on #{value['pull']}, not on #{number} the plan reports to"
        raise _refused(PLAN, rule)
    return ReviewThread(value["id"], value["pull"])


def _manifest(directory: Path) -> dict[str, dict[str, Any]]:
    data = _json(directory / MANIFEST)
    files = data.get("files")
    if data.get("format") != FORMAT or not isinstance(files, dict):
        raise _refused(MANIFEST, f"is not a {FORMAT} manifest")
    for name, entry in files.items():
        if not (name in LIMITS or _COMMENT.fullmatch(name)) or name == MANIFEST:
            raise _refused(str(name), "is not a file a plan may hold")
        sha, size = (entry.get(k) if isinstance(entry, dict) else None for k in ("sha256", "size"))
        if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha) and type(size) is int):
            raise _refused(MANIFEST, f"the entry of {name} needs a sha256 and a size")
    return files


def _check_file(path: Path, entry: dict[str, Any]) -> None:
    """Present, a regular file, within its cap, and the very bytes the manifest names."""
    if path.is_symlink() or not path.is_file():
        raise _refused(path.name, "is listed in manifest.json but is not a file in the artifact")
    size, limit = path.stat().st_size, LIMITS.get(path.name, COMMENT_LIMIT)
    if size > limit:
        raise _refused(path.name, f"is {size} bytes, over the {limit}-byte limit")
    if size != entry["size"] or _sha256(path) != entry["sha256"]:
        raise _refused(
            path.name,
            "does not match its sha256 and size in manifest.json (changed after the plan)",
        )


def _json(path: Path) -> dict[str, Any]:
    if path.is_symlink() or not path.is_file() or path.stat().st_size > LIMITS[path.name]:
        raise _refused(path.name, f"is missing or over {LIMITS[path.name]} bytes")
    try:
        data = json.loads(path.read_bytes())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise _refused(path.name, "is not a JSON object")
    return data


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise _refused(path.name, "is not UTF-8 text") from None


def _comment(directory: Path, name: str, listed: Mapping[str, object]) -> str:
    if not (_COMMENT.fullmatch(name) or name == REPLY) or name not in listed:
        raise _refused(PLAN, f"comment `{name}` is not a comment-N.md file of the manifest")
    text = _text(directory / name)
    if not text.strip():
        raise _refused(name, "is empty")
    return text


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(MB), b""):
            digest.update(block)
    return digest.hexdigest()


def _refused(name: str, rule: str, error: type[CodebotError] = ConfigError) -> CodebotError:
    return error(f"artifact {name}: {rule}", _NOTHING_PUSHED)


# --- the rules ---------------------------------------------------------------------------------
def check_target(plan: Plan, settings: cfg.Settings, env: Mapping[str, str]) -> None:
    """The rules that need no clone: which repository, which issue, which branch."""
    here = env.get("GITHUB_REPOSITORY", "")
    if not _REPO.fullmatch(plan.repo) or (here and here.casefold() != plan.repo.casefold()):
        raise _refused(PLAN, f"repository {plan.repo!r} is not this workflow's ({here or 'any'})")
    event, review = _event_target(env)
    if plan.number < 0 or (event is not None and plan.number != event):
        raise _refused(PLAN, f"#{plan.number} is not the issue or PR of this event (#{event})")
    thread = plan.review_comment
    if thread is not None and env.get("GITHUB_EVENT_PATH") and thread.id != review:
        said = f"review comment {review}" if review else "no review comment"
        raise _refused(PLAN, f"`review_comment` {thread.id} is not this event's ({said})")
    if not plan.branch:
        return
    prefix = settings.git.branch_prefix
    if not (plan.branch.startswith(prefix) and _BRANCH.fullmatch(plan.branch)):
        raise _refused(PLAN, f"branch {plan.branch!r} is not one of codebot's {prefix}* branches")
    if not (_SHA.fullmatch(plan.base_commit) and _SHA.fullmatch(plan.head_commit)):
        raise _refused(PLAN, "`base_commit` and `head_commit` must be full commit ids")
    named = re.search(r"issue-(\d+)-", plan.branch)
    if plan.closes is not None and (named is None or int(named[1]) != plan.closes):
        raise _refused(PLAN, f"`closes` #{plan.closes} is not the issue its branch is for")
    if not prose.inline(plan.title):
        raise _refused(PLAN, "the pull request needs a title")


def _event_target(env: Mapping[str, str]) -> tuple[int | None, int | None]:
    """The issue or PR of the Actions event this job runs for (the plan job had the same),
    and the review comment that is the event, if it is one."""
    if not env.get("GITHUB_EVENT_PATH"):
        return None, None
    name, payload = load_event(env)
    comment = payload.get("comment")
    review = None
    if name == "pull_request_review_comment" and isinstance(comment, dict):
        review = comment.get("id") if type(comment.get("id")) is int else None
    for key in ("issue", "pull_request"):
        found = payload.get(key)
        if isinstance(found, dict) and type(found.get("number")) is int:
            return int(found["number"]), review
    return None, review


def _check_thread(forge: Forge, plan: Plan, settings: cfg.Settings) -> None:
    """The review thread a reply goes to is on the open PR this plan updates (or, with
    nothing to push, on one of codebot's). That the comment is on that PR, the forge checks
    when replying: before anything is posted there."""
    thread = plan.review_comment
    if thread is None:
        return
    pull = forge.pull(plan.repo, thread.pull)
    prefix = settings.git.branch_prefix
    ours = pull.head == plan.branch if plan.branch else pull.head.startswith(prefix)
    if pull.state != "open" or not ours:
        branch = plan.branch or f"a {prefix}* branch"
        rule = f"`review_comment` is on #{thread.pull}, not the open pull request of {branch}"
        raise _refused(PLAN, rule)


def _check_branch(forge: Forge, repo: RepoInfo, plan: Plan) -> None:
    if plan.branch == repo.default_branch:
        raise _refused(PLAN, f"branch {plan.branch!r} is the default branch")
    if plan.base_branch != repo.default_branch:
        raise _refused(PLAN, f"base {plan.base_branch!r} is not the default branch")
    if forge.is_protected(repo.full_name, plan.branch):
        raise _refused(PLAN, f"branch {plan.branch} of {repo.full_name} is protected")


def _check_history(ws: Workspace, plan: Plan, repo: RepoInfo, via_api: bool) -> list[str]:
    """Base on the remote's base branch, tip as stated, and a fast-forward of the remote
    branch when it exists, so the push never needs force; returns those remote refs. Through
    the API, a remote branch GitHub made from this plan before is not in its history:
    codebot.gitapi tells it from a moved branch (and refuses that the same way)."""
    base, head, short = f"origin/{repo.default_branch}", plan.branch, plan.base_commit[:12]
    if not ws.is_ancestor(plan.base_commit, base):
        rule = f"base {short} is not the remote's {repo.default_branch} or an ancestor of it"
        raise _refused(PLAN, rule, ForgeError)
    if ws.commit_of(head) != plan.head_commit:
        raise _refused(BUNDLE, f"the tip of {head} is not the head_commit plan.json names")
    if not ws.is_ancestor(plan.base_commit, head):
        raise _refused(BUNDLE, f"{head} does not descend from its base {short}")
    remote = f"origin/{head}"
    if ws.commit_of(remote) is None:
        return [base]
    if not ws.is_ancestor(remote, head) and not via_api:
        rule = f"{head} on the remote is not in the planned history; codebot never force-pushes"
        raise _refused(BUNDLE, rule, ForgeError)
    return [base, remote]


def _check_changes(ws: Workspace, known: list[str], protected: tuple[str, ...]) -> None:
    """No commit the push adds to the base and the PR's branch (`known`) touches a protected
    or unsafe path, adds a submodule, or links out of the tree."""
    with tempfile.TemporaryDirectory(prefix="codebot-paths-") as empty:
        for change in ws.new_changes(known):
            why = refuse_path(Path(empty), change.path, protected) or _refuse_kind(change)
            if why:
                raise _refused(
                    BUNDLE, f"commit {change.commit[:12]}: {why.removeprefix('refused: ')}"
                )


def _refuse_kind(change: Change) -> str | None:
    if change.mode == "160000":
        return f"adds a submodule at {change.path}"
    if change.link is None:
        return None
    inside = posixpath.normpath(posixpath.join(posixpath.dirname(change.path), change.link))
    parts = inside.split("/")
    if change.link.startswith("/") or parts[0] == ".." or refuse_control(change.link):
        return f"adds a symlink {change.path} pointing outside the tree ({change.link!r})"
    if any(p.casefold() == ".git" for p in parts):
        return f"adds a symlink {change.path} into git's own data ({change.link!r})"
    return None


def _check_config(plan: Plan, settings: cfg.Settings) -> None:
    """Labels and reviewers are the configured ones (env and the base's .codebot.yml)."""
    for key, asked, configured in (
        ("labels", plan.labels, settings.github.labels),
        ("reviewers", plan.reviewers, settings.github.reviewers),
    ):
        if tuple(asked) != tuple(configured):
            raise _refused(PLAN, f"`{key}` {list(asked)} are not the configured {list(configured)}")


# --- texts -------------------------------------------------------------------------------------
def safe_body(body: str, closes: int | None, redact: Callable[[str], str]) -> str:
    """The body as codebot's renderer makes it: all neutralised again but codebot's own lines
    whose markup acts (`<details>`/`<sub>` tags, `Closes #N` of the branch's issue, and the
    run history on the last line, read back and written afresh)."""
    text = redact(body)
    lines, neutral = text.split("\n"), prose.neutralise(text).split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    out = []
    for i, (line, safe) in enumerate(zip(lines, neutral, strict=True)):
        own = (_history(line) if i == last else None) or _own_markup(line, closes)
        out.append(safe if own is None else own)
    return "\n".join(out)


def _own_markup(line: str, closes: int | None) -> str | None:
    if line == "</details>" or (closes is not None and line == f"Closes #{closes}"):
        return line
    for pattern, template in (
        (_DETAILS, "<details><summary>{}</summary>"),
        (_SUB, "<sub>{}</sub>"),
    ):
        found = pattern.fullmatch(line)
        if found:
            return template.format(prose.neutralise(found[1]))
    return None


def _history(line: str) -> str | None:
    runs = pr_history.earlier_runs(line)
    return pr_history.render(runs[:-1], runs[-1])[-1] if runs else None


# --- publishing --------------------------------------------------------------------------------
def publish(
    directory: Path,
    forge: Forge,
    settings: cfg.Settings,
    env: Mapping[str, str],
    on_event: Callable[[str], None] = lambda _: None,
) -> Published:
    """Check the artifact in `directory`; only then push, open or update the PR, comment.
    A repeat of a publish that already went through changes nothing and says nothing."""
    plan, bundle = read_artifact(directory)
    check_target(plan, settings, env)
    _check_thread(forge, plan, settings)
    redact = Redactor.from_env(env, [settings.model.api_key])
    done = _Delivered(None, True)
    if bundle is not None:
        try:
            done = _deliver(forge, plan, bundle, settings, env, redact, on_event)
        except CodebotError as exc:
            failed = f"⚠️ codebot did not publish its change: {exc.one_line()}"
            _say(forge, plan, redact, failed)
            with contextlib.suppress(CodebotError):  # the error in flight is the one to raise
                _answer(forge, plan, redact, failed)
            raise
    said = plan.comments if done.fresh else ()
    for text in said:
        _say(forge, plan, redact, text, done.pull)
    if done.fresh:
        _answer(forge, plan, redact, plan.reply, done.commit)
    return Published(plan.stop_reason, plan.cost_usd, done.pull, len(said), done.head)


@dataclass(frozen=True)
class _Delivered:
    """The PR after the push; `fresh` False when the remote and the PR already were exactly
    this; `head` the commit on the branch, `commit` its link for a reply."""

    pull: PullInfo | None
    fresh: bool
    head: str = ""
    commit: str = ""


def commit_link(repo_url: str, sha: str) -> str:
    """A commit as a reply names it: `abc1234 (https://github.com/o/r/commit/<sha>)`."""
    return f"{sha[:7]} ({repo_url}/commit/{sha})"


def _deliver(
    forge: Forge,
    plan: Plan,
    bundle: Path,
    settings: cfg.Settings,
    env: Mapping[str, str],
    redact: Redactor,
    on_event: Callable[[str], None],
) -> _Delivered:
    """Push the checked branch and open or update its PR, as a one-job run does."""
    repo = forge.repo(plan.repo)
    _check_branch(forge, repo, plan)
    token, url = env.get("GITHUB_TOKEN"), repo.clone_url
    try:
        ws = Workspace.from_bundle(
            url, bundle, plan.branch, repo.default_branch, plan.base_commit, token
        )
    except WorkspaceError as exc:
        raise _refused(BUNDLE, exc.cause) from None
    try:
        via_api = settings.github.commit_via_api
        known = _check_history(ws, plan, repo, via_api)
        settings = cfg.with_repo_file(settings, ws.read_base_file(".codebot.yml"))
        _check_config(plan, settings)
        _check_changes(ws, known, settings.git.protected_paths)
        title, body = prose.inline(redact(plan.title)), safe_body(plan.body, plan.closes, redact)
        same_body = forge.open_pr_body(plan.repo, plan.branch) == body
        sent = gitapi.send_branch(forge, plan.repo, ws, via_api)
        on_event(sent.how)
        policy = settings.github.draft
        pull = forge.open_or_update_pr(
            plan.repo,
            head=plan.branch,
            base=repo.default_branch,
            title=title,
            body=body,
            draft=plan.draft if policy == "auto" else policy == "always",
            labels=settings.github.labels,
            reviewers=settings.github.reviewers,
        )
        fresh = sent.fresh or not same_body
        return _Delivered(pull, fresh, sent.head, commit_link(repo.url, sent.head))
    finally:
        ws.cleanup()


def _say(
    forge: Forge, plan: Plan, redact: Redactor, text: str, pull: PullInfo | None = None
) -> None:
    if plan.number:
        where = f"#{pull.number}" if pull is not None else "(no pull request)"
        safe = prose.neutralise(redact(text)).replace(PULL_PLACEHOLDER, where)
        forge.comment(plan.repo, plan.number, safe)


def _answer(forge: Forge, plan: Plan, redact: Redactor, text: str, commit: str = "") -> None:
    """Reply in the thread of the review comment the plan answers, if it answers one."""
    thread = plan.review_comment
    if thread is not None and text:
        safe = prose.neutralise(redact(text)).replace(COMMIT_PLACEHOLDER, commit)
        forge.reply_to_review_comment(plan.repo, thread.pull, thread.id, safe)
