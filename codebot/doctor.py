"""`codebot doctor`: is this machine ready for a run, and if not, what fixes it.

Small probes look at the world (the Docker engine, the model endpoint, the repository,
GitHub) and return plain facts; pure functions turn the facts into one `Finding` per line,
each failure with its fix. Every probe catches the failures it can meet and says them as
facts, so one broken part never hides the others. The probes reuse the modules a run uses
(codebot.sandbox, codebot.llm, codebot.workspace), so a finding says what a run would meet.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from codebot import config as cfg
from codebot.errors import CodebotError

Status = Literal["ok", "warn", "fail", "skip"]
SETUP_FIX = "build it offline with `bash sandbox/setup-host.sh`"
PROBE_TIMEOUT_S = 15.0  # an endpoint that does not answer in this is as good as down here
_ASK = "Reply with the single word OK."


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]

    @property
    def failed(self) -> bool:
        return any(f.status == "fail" for f in self.findings)

    def as_json(self) -> dict[str, Any]:
        return {"ok": not self.failed, "checks": [asdict(f) for f in self.findings]}


# --- facts, as the probes found them ------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    """The Docker engine: its version, which of the images asked about it holds, and the
    cached environments (count, bytes). `error`/`fix` when it cannot be reached."""

    version: str = ""
    images: Mapping[str, bool] | None = None
    env_images: int = 0
    env_bytes: int = 0
    error: str = ""
    fix: str = ""


@dataclass(frozen=True)
class Endpoint:
    """The model endpoint: what `GET /models` listed (None: no listing there) or why it
    failed, and the tiny request's cost or failure."""

    url: str
    models: tuple[str, ...] | None = None
    listing_error: CodebotError | None = None
    answered: bool = False
    tokens: int = 0
    cost_usd: float | None = None
    reply_error: CodebotError | None = None


@dataclass(frozen=True)
class Repo:
    """The repository `--repo` names: readable by git (else `error`), its origin remote,
    and the image its toolchain needs (None: the operator's default)."""

    path: Path
    error: CodebotError | None = None
    files: int = 0
    remote: str = ""
    image: str | None = None


@dataclass(frozen=True)
class GitHub:
    """What the GitHub API said about GITHUB_TOKEN: its login and classic scopes (None: not
    listed, as for fine-grained and app tokens), its push permission on the repository."""

    api: str
    repo: str
    login: str = ""
    scopes: tuple[str, ...] | None = None
    push: bool | None = None
    refused: str = ""
    unreachable: str = ""


# --- the checks: pure -----------------------------------------------------------------------


def engine_findings(engine: Engine, base: str, needed: str | None) -> list[Finding]:
    """The engine, the base image, the toolchain images (a failure only when the
    repository needs one), and the environment cache."""
    if engine.error:
        cause = Finding("docker", "fail", engine.error, engine.fix)
        skipped = "not checked: the Docker engine is not reachable"
        return [cause, *(Finding(n, "skip", skipped) for n in ("images", "toolchains", "cache"))]
    images = engine.images or {}
    found = [Finding("docker", "ok", f"Docker engine {engine.version} reachable")]
    if images.get(base):
        found.append(Finding("images", "ok", f"sandbox image {base} present"))
    else:
        found.append(Finding("images", "fail", f"sandbox image {base} is missing", SETUP_FIX))
    tools = sorted(ref for ref in cfg.TOOLCHAIN_IMAGES.values() if ref != base)
    missing = [ref for ref in tools if not images.get(ref)]
    if not missing:
        found.append(Finding("toolchains", "ok", f"{', '.join(tools)} present"))
    else:
        status: Status = "fail" if needed in missing else "warn"
        why = f"; this repository needs {needed}" if needed in missing else ""
        found.append(
            Finding("toolchains", status, f"missing: {', '.join(missing)}{why}", SETUP_FIX)
        )
    found.append(
        Finding(
            "cache",
            "ok",
            f"{engine.env_images} cached environment image(s) (codebot-env), "
            f"{_size(engine.env_bytes)} beyond the images they start from; the newest "
            "CODEBOT_ENV_KEEP (default 10) are kept",
        )
    )
    return found


def _size(count: int) -> str:
    if count < 1000:
        return f"{count} bytes"
    scaled, unit = count / 1000, "kB"
    for bigger in ("MB", "GB"):
        if scaled < 1000:
            break
        scaled, unit = scaled / 1000, bigger
    return f"{scaled:.1f} {unit}"


def endpoint_findings(model: cfg.ModelConfig, facts: Endpoint | CodebotError) -> list[Finding]:
    """The endpoint answers, the model is listed, the key buys a reply (and what it cost).
    `facts` is the configuration error instead when no endpoint or model is set."""
    if isinstance(facts, CodebotError):
        first = Finding("endpoint", "fail", facts.cause, facts.fix)
        return [first, *(Finding(n, "skip", "not checked") for n in ("model", "request"))]
    if facts.listing_error is not None:
        err = facts.listing_error
        found = [Finding("endpoint", "fail", err.cause, err.fix)]
        found.append(Finding("model", "skip", "not checked"))
    else:
        listing = " (it lists no models)" if facts.models is None else ""
        found = [Finding("endpoint", "ok", f"{facts.url} answers{listing}")]
        found.append(_listed(model.name, facts.models))
    if facts.reply_error is not None:
        error = facts.reply_error
        found.append(Finding("request", "fail", error.cause, error.fix))
    elif not facts.answered:
        found.append(Finding("request", "skip", "not tried: the endpoint failed above"))
    else:
        found.append(Finding("request", "ok", f"the key is accepted: {_cost(model, facts)}"))
    return found


def _listed(name: str, models: tuple[str, ...] | None) -> Finding:
    if models is None:
        return Finding("model", "skip", f"{name}: the endpoint has no model listing to look in")
    if name in models:
        return Finding("model", "ok", f"{name} is listed")
    listed = ", ".join(models[:8]) + (", ..." if len(models) > 8 else "")
    return Finding(
        "model", "warn", f"{name} is not listed (the endpoint lists: {listed or 'none'})",
        "set CODEBOT_MODEL or --model to one of them (an Azure deployment name is fine)",
    )  # fmt: skip


def _cost(model: cfg.ModelConfig, facts: Endpoint) -> str:
    said = f"a {facts.tokens}-token request"
    if facts.cost_usd is None:
        return (
            f"{said}, cost unknown (no price for {model.name}: set CODEBOT_PRICE_INPUT and "
            "CODEBOT_PRICE_OUTPUT, USD per million tokens)"
        )
    return f"{said} cost ${facts.cost_usd:.6f}"


def repo_findings(repo: Repo | None, git_version: str, author: str) -> list[Finding]:
    """git itself and the identity codebot commits with; the repository readable by git."""
    if not git_version:
        return [Finding("git", "fail", "git is not installed", "install git (apt-get install git)")]
    found = [Finding("git", "ok", f"{git_version}; codebot commits as {author}")]
    if repo is None:
        found.append(Finding("repo", "skip", "not in a git repository (pass --repo PATH)"))
    elif repo.error is not None:
        found.append(Finding("repo", "fail", repo.error.cause, repo.error.fix))
    else:
        found.append(Finding("repo", "ok", f"{repo.path}: {repo.files} committed file(s)"))
    return found


def github_findings(facts: GitHub | None, why_not: str) -> list[Finding]:
    """The token's scopes and its push access, when there is a token and a GitHub remote."""
    if facts is None:
        return [Finding("github", "skip", why_not)]
    if facts.unreachable:
        said = f"cannot reach {facts.api} ({facts.unreachable}): the token was not checked"
        return [Finding("github", "skip", said)]
    if facts.refused:
        fix = "create a token with contents, pull requests and issues write access"
        return [Finding("github", "fail", f"GITHUB_TOKEN refused: {facts.refused}", fix)]
    need = "contents, pull requests and issues: write"
    if facts.scopes is None:
        scopes = f"scopes not listed (a fine-grained or app token: it needs {need})"
    else:
        scopes = f"scopes: {', '.join(facts.scopes) or 'none'}"
        if not {"repo", "public_repo"} & set(facts.scopes):
            fix = "add the `repo` scope (or `public_repo` for a public repository)"
            return [Finding("github", "fail", f"token of {facts.login}: {scopes}", fix)]
    if facts.push is False:
        fix = f"give {facts.login} write access to {facts.repo}, or use another token"
        return [Finding("github", "fail", f"{facts.login} cannot push to {facts.repo}", fix)]
    return [Finding("github", "ok", f"token of {facts.login} reaches {facts.repo}; {scopes}")]


# --- the probes -----------------------------------------------------------------------------


def probe_engine(images: Sequence[str]) -> Engine:
    from codebot.environment import ENV_LABEL
    from codebot.sandbox.engine import connect, translated

    try:
        client = connect()
        try:
            with translated(""):
                version = str(client.version().get("Version", "?"))
                present = {ref: bool(client.api.images(name=ref)) for ref in images}
                every = client.api.df().get("Images") or []
        finally:
            client.close()
    except CodebotError as exc:
        return Engine(error=exc.cause, fix=exc.fix)
    cached = [i for i in every if ENV_LABEL in (i.get("Labels") or {})]
    # Each shares its toolchain image's layers; what it adds is what the cache costs.
    own = sum(max(0, int(i.get("Size") or 0) - int(i.get("SharedSize") or 0)) for i in cached)
    return Engine(version, present, len(cached), own)


def probe_endpoint(model: cfg.ModelConfig) -> Endpoint:
    """`GET /models`, then one request of a few tokens (none when the endpoint failed)."""
    from codebot.llm import OpenAIModel
    from codebot.records import Message

    quick = replace(model, max_retries=0, timeout_s=min(model.timeout_s, PROBE_TIMEOUT_S))
    client = OpenAIModel(replace(quick, max_output_tokens=16))
    facts = Endpoint(client.url)
    try:
        listed = client.models()
    except CodebotError as exc:
        return replace(facts, listing_error=exc)
    facts = replace(facts, models=None if listed is None else tuple(listed))
    try:
        reply = client.complete([Message("user", _ASK)])
    except CodebotError as exc:
        return replace(facts, reply_error=exc)
    return replace(facts, answered=True, tokens=reply.usage.total_tokens, cost_usd=reply.cost_usd)


def probe_repo(path: Path) -> Repo:
    from codebot.configure import detect_at
    from codebot.workspace import tracked_files_at

    try:
        files = tracked_files_at(path)
        image = detect_at(path, None).image
    except CodebotError as exc:
        return Repo(path, error=exc)
    return Repo(path, files=len(files), remote=_git("-C", str(path), "remote", "get-url", "origin"),
                image=image)  # fmt: skip


def git_version() -> str:
    return _git("--version")


def _git(*args: str) -> str:
    """One read-only git command's output, "" when it fails or git is missing."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def github_repo(remote: str, env: Mapping[str, str]) -> str | None:
    """`owner/name` when `remote` is on GitHub (github.com, or the host GITHUB_SERVER_URL
    or GITHUB_API_URL names, as on GitHub Enterprise), else None."""
    if "://" not in remote and ":" in remote:  # scp-like: git@github.com:owner/name.git
        host, _, path = remote.partition("@")[2].partition(":")
    else:
        parts = urlsplit(remote)
        host, path = parts.netloc.rpartition("@")[2], parts.path
    hosts = {"github.com"} | {
        urlsplit(env[k]).netloc for k in ("GITHUB_SERVER_URL", "GITHUB_API_URL") if env.get(k)
    }
    names = path.strip("/").removesuffix(".git").split("/")
    return "/".join(names[-2:]) if host in hosts and len(names) >= 2 else None


def probe_github(token: str, api: str, repo: str) -> GitHub:
    """Two GETs: `/user` (the login and, for classic tokens, `X-OAuth-Scopes`) and the
    repository (its `permissions`)."""
    facts = GitHub(api.rstrip("/"), repo)
    try:
        user, headers = _get(f"{facts.api}/user", token)
        scopes = headers.get("X-OAuth-Scopes")
        found = (
            tuple(s.strip() for s in scopes.split(",") if s.strip()) if scopes is not None else None
        )
        facts = replace(facts, login=str(user.get("login", "?")), scopes=found)
        info, _ = _get(f"{facts.api}/repos/{repo}", token)
    except urllib.error.HTTPError as exc:
        return replace(facts, refused=f"{exc.code} {exc.reason} at {exc.url}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        said = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        return replace(facts, unreachable=str(said))
    permissions = info.get("permissions")
    push = permissions.get("push") if isinstance(permissions, dict) else None
    return replace(facts, push=push if isinstance(push, bool) else None)


def _get(url: str, token: str) -> tuple[dict[str, Any], Mapping[str, str]]:
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}
    )
    with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as answer:
        data = json.loads(answer.read() or b"{}")
        return (data if isinstance(data, dict) else {}), answer.headers


# --- all of it ------------------------------------------------------------------------------


def examine(settings: cfg.Settings, env: Mapping[str, str], repo: Path | None) -> Report:
    """Every check, in the order a run meets them. `repo` None: the current directory, if
    it is a repository (a check that is skipped otherwise)."""
    checked = _repo_at(repo)
    base = settings.sandbox.image
    wanted = sorted({base, *cfg.TOOLCHAIN_IMAGES.values()})
    needed = checked.image if checked and not checked.error else None
    try:
        endpoint: Endpoint | CodebotError = probe_endpoint(cfg.require_model(settings))
    except CodebotError as exc:  # nothing to ask: says which variable to set
        endpoint = exc
    git = settings.git
    findings = [
        *engine_findings(probe_engine(wanted), base, needed),
        *endpoint_findings(settings.model, endpoint),
        *repo_findings(checked, git_version(), f"{git.author_name} <{git.author_email}>"),
        *github_findings(*_github(checked, env)),
    ]
    return Report(tuple(findings))


def _repo_at(repo: Path | None) -> Repo | None:
    if repo is not None:
        return probe_repo(repo.resolve())
    here = Path.cwd()
    top = next((d for d in (here, *here.parents) if (d / ".git").exists()), None)
    return probe_repo(top) if top else None


def _github(repo: Repo | None, env: Mapping[str, str]) -> tuple[GitHub | None, str]:
    from codebot.forge import DEFAULT_API_URL

    token = env.get("GITHUB_TOKEN", "")
    if not token:
        return None, "GITHUB_TOKEN is not set (only `issue`, `run`, `action` and `publish` need it)"
    name = github_repo(repo.remote, env) if repo and repo.remote else None
    if name is None:
        return None, "the repository has no GitHub remote `origin` to check the token against"
    return probe_github(token, env.get("GITHUB_API_URL") or DEFAULT_API_URL, name), ""
