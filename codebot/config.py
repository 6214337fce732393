"""Settings as data: one frozen class per component, filled from env, .codebot.yml, flags.

Precedence, lowest first: built-in defaults, environment, the target repo's .codebot.yml,
command-line flags. The repo file is repository content, so it may only set what cannot hurt
the operator: it cannot choose the endpoint, see the API key, turn the network on, or lift
path protections. Those come from the environment or flags only.

About 450 lines: every setting, its environment variable and its check are on one
page, so the precedence (defaults, env, .codebot.yml, flags) is read in one place.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from codebot import ceiling
from codebot.ceiling import SandboxCeiling, bound
from codebot.detect import ROLES, Detection
from codebot.errors import ConfigError

DEFAULT_IMAGE = "codebot-sandbox:bookworm"
# The images sandbox/setup-host.sh builds, by toolchain; a repository may pick any of them.
TOOLCHAIN_IMAGES = ceiling.TOOLCHAIN_IMAGES
# Matched case-insensitively; `*` spans directories. The git files decide what a commit
# holds and how it is diffed, so the model may not change them either.
DEFAULT_PROTECTED: tuple[str, ...] = (
    ".github/workflows/**",
    ".github/actions/**",
    ".codebot.yml",
    ".gitignore",
    "*/.gitignore",
    ".gitattributes",
    "*/.gitattributes",
    ".gitmodules",
)
# Who may start the bot with a comment by default: people with write access to the repo.
TRUSTED_ASSOCIATIONS: tuple[str, ...] = ("OWNER", "MEMBER", "COLLABORATOR")


@dataclass(frozen=True)
class ModelConfig:
    name: str = ""
    base_url: str = ""
    api_key: str = field(default="", repr=False)
    timeout_s: float = 120.0
    max_retries: int = 3
    temperature: float = 0.0
    max_output_tokens: int = 4096
    price_input_per_mtok: float | None = None
    price_output_per_mtok: float | None = None


@dataclass(frozen=True)
class SandboxConfig:
    image: str = DEFAULT_IMAGE
    memory: str = "1g"
    cpus: float = 1.0
    pids: int = 256
    disk: str = "1g"
    tmp_size: str = "256m"
    network: bool = False
    user: str = "65534:65534"
    workdir: str = "/workspace"
    max_output_bytes: int = 2_000_000
    # A dependency builder's root filesystem is writable, so the setup step can install
    # outside the volumes (e.g. /opt/codebot-env) before the result is committed as an
    # image. Never for a run's sandbox: there the root stays read-only.
    writable_root: bool = False
    # A host CA bundle (e.g. /etc/ssl/certs/ca-certificates.crt) mounted read-only in the
    # sandbox: organisations' TLS-intercepting proxies sign with a CA only the host trusts.
    ca_bundle: str = ""


@dataclass(frozen=True)
class GitConfig:
    author_name: str = "codebot"
    author_email: str = "codebot@users.noreply.github.com"
    branch_prefix: str = "codebot/"
    # string.Template; $title, $summary, $run_id, $stop_reason are filled in.
    commit_template: str = (
        "$title\n\n$summary\n\nCodebot-Run: $run_id\nCodebot-Stop: $stop_reason\n"
    )
    protected_paths: tuple[str, ...] = DEFAULT_PROTECTED


@dataclass(frozen=True)
class GitHubConfig:
    """How runs on GitHub open PRs and who may start them."""

    draft: str = "auto"  # auto: draft unless all checks passed; always; never
    labels: tuple[str, ...] = ("codebot",)
    reviewers: tuple[str, ...] = ()
    allowed_associations: tuple[str, ...] = TRUSTED_ASSOCIATIONS
    trigger_label: str = "codebot"
    # Automatic follow-ups on a PR whose CI fails (codebot.ci_followup); 0 turns them off.
    ci_attempts: int = 2
    # Make the branch's commits through the GitHub API (signed by GitHub, so "verified")
    # instead of pushing them (codebot.gitapi). Environment only: not in .codebot.yml.
    commit_via_api: bool = False


@dataclass(frozen=True)
class KnowledgeConfig:
    """Where the team's written rules come from (codebot.knowledge). `paths` are the
    repository's own (`.codebot.yml` `knowledge:`, gitignore-style globs read at the base
    commit); `dirs` and `repos` are the operator's, which a repository can never set."""

    paths: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()  # CODEBOT_KNOWLEDGE_DIRS, `:`-separated local directories
    repos: tuple[str, ...] = ()  # CODEBOT_KNOWLEDGE_REPOS, `url@ref` entries (blank-separated)


@dataclass(frozen=True)
class Settings:
    model: ModelConfig = field(default_factory=ModelConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    git: GitConfig = field(default_factory=GitConfig)
    github: GitHubConfig = field(default_factory=GitHubConfig)
    # Operator overrides of every spec's limits (flags, action inputs).
    max_iterations: int | None = None
    max_cost_usd: float | None = None
    max_minutes: float | None = None
    candidates: int = 1  # replies asked per iteration, best-of-N (codebot.candidates)
    # Where candidates come from: "samples" of the rung that takes the iteration, or "rungs":
    # one from each rung not spent from it on (codebot.ladder).
    candidates_from: str = "samples"
    # The verification checked beside each iteration's own checks (codebot.speculate): "auto"
    # (when the machine has more than one core), "on" or "off".
    verify_ahead: str = "auto"
    # How many candidates are checked at once, each in a place of its own (codebot.lanes).
    candidate_workers: int = field(default_factory=lambda: default_workers())
    runs_dir: Path = Path(".codebot/runs")
    context_tokens: int = 12_000
    # Globs of files the model is never shown unasked (on top of the built-in noise list).
    context_exclude: tuple[str, ...] = ()
    feedback_tokens: int = 2_000
    spec_defaults: dict[str, Any] = field(default_factory=dict)
    ceiling: SandboxCeiling = field(default_factory=SandboxCeiling)
    env_keep: int = 10  # cached environment images kept (codebot.environment)
    detected_setup: str = ""  # the install step detection found (not one a person wrote)
    detected_lint: str = ""  # likewise the lint command
    # What was changed from what was asked (e.g. a sandbox value lowered to the ceiling).
    notes: tuple[str, ...] = ()
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)


# Keys a repository's .codebot.yml may set, per section.
_REPO_KEYS: dict[str, set[str]] = {
    "sandbox": {"image", "memory", "cpus", "pids", "disk", "tmp_size"},
    "git": {"author_name", "author_email", "commit_template"},
    "context": {"tokens", "exclude"},
    "github": {"draft", "labels", "reviewers", "ci_attempts"},
}
# Spec fields a repository may default (commands run inside the sandbox only).
_SPEC_DEFAULT_KEYS = {
    "test",
    "setup",
    "setup_timeout",
    "build",
    "lint",
    "max_iterations",
    "timeout",
    "budget",
    "files",
    "tests",
}


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    model = ModelConfig(
        name=env.get("CODEBOT_MODEL", ""),
        base_url=env.get("OPENAI_BASE_URL", ""),
        api_key=env.get("OPENAI_API_KEY", ""),
        timeout_s=_num(env, "CODEBOT_MODEL_TIMEOUT", 120.0),
        max_retries=int(_num(env, "CODEBOT_MODEL_RETRIES", 3)),
        price_input_per_mtok=_opt_num(env, "CODEBOT_PRICE_INPUT"),
        price_output_per_mtok=_opt_num(env, "CODEBOT_PRICE_OUTPUT"),
    )
    sandbox = SandboxConfig(
        image=env.get("CODEBOT_SANDBOX_IMAGE", DEFAULT_IMAGE),
        network=env.get("CODEBOT_SANDBOX_NETWORK", "") == "1",
        ca_bundle=env.get("CODEBOT_SANDBOX_CA_BUNDLE", ""),
    )
    protected = DEFAULT_PROTECTED
    if env.get("CODEBOT_ALLOW_WORKFLOW_EDITS", "") == "1":
        protected = tuple(p for p in protected if not p.startswith(".github/workflows"))
    git = GitConfig(
        author_name=env.get("CODEBOT_AUTHOR_NAME", GitConfig.author_name),
        author_email=env.get("CODEBOT_AUTHOR_EMAIL", GitConfig.author_email),
        protected_paths=protected,
    )
    github = GitHubConfig(
        draft=_choice(env, "CODEBOT_DRAFT", ("auto", "always", "never"), "auto"),
        commit_via_api=_choice(env, "CODEBOT_COMMIT_VIA_API", ("0", "1"), "0") == "1",
        trigger_label=env.get("CODEBOT_LABEL") or GitHubConfig.trigger_label,
        allowed_associations=tuple(
            a.strip().upper()
            for a in env.get("CODEBOT_ALLOWED_ASSOCIATIONS", ",".join(TRUSTED_ASSOCIATIONS)).split(
                ","
            )
            if a.strip()
        ),
    )
    iterations = env.get("CODEBOT_MAX_ITERATIONS")
    return Settings(
        model=model,
        sandbox=sandbox,
        git=git,
        github=github,
        max_iterations=int(_num(env, "CODEBOT_MAX_ITERATIONS", 0)) if iterations else None,
        max_cost_usd=_opt_num(env, "CODEBOT_MAX_COST_USD"),
        max_minutes=_opt_num(env, "CODEBOT_MAX_MINUTES"),
        candidates=_candidates(_num(env, "CODEBOT_CANDIDATES", 1), "CODEBOT_CANDIDATES"),
        candidates_from=_choice(env, "CODEBOT_CANDIDATES_FROM", CANDIDATE_SOURCES, "samples"),
        verify_ahead=_choice(env, "CODEBOT_VERIFY_AHEAD", ("auto", "on", "off"), "auto"),
        candidate_workers=_candidates(
            _num(env, "CODEBOT_CANDIDATE_WORKERS", default_workers()),
            "CODEBOT_CANDIDATE_WORKERS",
            "candidates checked at once",
        ),
        ceiling=SandboxCeiling.from_env(env),
        env_keep=max(1, int(_num(env, "CODEBOT_ENV_KEEP", 10))),
        knowledge=KnowledgeConfig(
            dirs=tuple(d for d in env.get("CODEBOT_KNOWLEDGE_DIRS", "").split(":") if d.strip()),
            repos=tuple(env.get("CODEBOT_KNOWLEDGE_REPOS", "").replace(",", " ").split()),
        ),
    )


def with_repo_file(settings: Settings, text: str | None, path: str = ".codebot.yml") -> Settings:
    """Apply a repository's .codebot.yml (its text, None when absent) on top of `settings`."""
    if text is None:
        return settings
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})", "fix or remove the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a YAML mapping", "see README 'Configuration'")
    allowed = set(_REPO_KEYS) | {"spec", "protected_paths", "knowledge"}
    for key in data:
        if key not in allowed:
            raise ConfigError(
                f"{path}: unknown or not allowed key `{key}`",
                f"allowed: {', '.join(sorted(allowed))}; endpoint and secrets come from env/flags",
            )
    sandbox, notes = settings.sandbox, settings.notes
    if data.get("sandbox"):
        asked = _section(settings.sandbox, data, "sandbox", path)
        sandbox, lowered = bound(asked, settings.sandbox, settings.ceiling, path)
        notes = (*notes, *lowered)
    git = _section(settings.git, data, "git", path)
    extra = data.get("protected_paths", [])
    if not isinstance(extra, list) or not all(isinstance(p, str) for p in extra):
        raise ConfigError(f"{path}: `protected_paths` must be a list of globs", "")
    git = replace(git, protected_paths=(*git.protected_paths, *extra))
    github = _section(settings.github, data, "github", path)
    if github.draft not in ("auto", "always", "never"):
        raise ConfigError(f"{path}: `github.draft` must be auto, always or never", "")
    context = data.get("context", {}) or {}
    _check_keys(context, "context", path)
    spec_defaults = data.get("spec", {}) or {}
    if not isinstance(spec_defaults, dict):
        raise ConfigError(f"{path}: `spec` must be a mapping of spec defaults", "")
    for key in spec_defaults:
        if key not in _SPEC_DEFAULT_KEYS:
            raise ConfigError(
                f"{path}: `spec.{key}` cannot be set per repository",
                f"allowed: {', '.join(sorted(_SPEC_DEFAULT_KEYS))}",
            )
    knowledge = replace(settings.knowledge, paths=_knowledge_paths(data.get("knowledge"), path))
    return replace(
        settings,
        knowledge=knowledge,
        sandbox=sandbox,
        notes=notes,
        git=git,
        github=github,
        context_tokens=int(context.get("tokens", settings.context_tokens)),
        context_exclude=(*settings.context_exclude, *_globs(context.get("exclude", []), path)),
        spec_defaults={**settings.spec_defaults, **spec_defaults},
    )


def with_detected(settings: Settings, found: Detection) -> Settings:
    """What detection found in the repository (codebot.detect), as the lowest-precedence spec
    defaults and the toolchain's image: the repo's .codebot.yml and the spec still win. A
    detected install step is remembered as such: without the network it is used only when
    its environment is already cached (codebot.environment)."""
    defaults: dict[str, Any] = {}
    for role in ROLES:
        hit = getattr(found, role)
        if hit is None:
            continue
        defaults[role] = hit.command
    sandbox = settings.sandbox
    if found.image and sandbox.image == DEFAULT_IMAGE:
        sandbox = replace(sandbox, image=found.image)
    return replace(
        settings,
        sandbox=sandbox,
        spec_defaults={**defaults, **settings.spec_defaults},
        detected_setup=found.setup.command if found.setup else "",
        detected_lint=found.lint.command if found.lint else "",
    )


def detected_notes(spec: Any, found: Detection) -> tuple[str, ...]:
    """A note for each command the spec got from detection, saying where it was found."""
    notes = []
    for role in ROLES:
        hit = getattr(found, role)
        if hit is not None and getattr(spec, role, None) == hit.command:
            notes.append(f"{role} `{hit.command}` detected: {hit.reason}")
    return tuple(notes)


def with_flags(settings: Settings, **flags: Any) -> Settings:
    """Apply command-line flags; None means 'not given'."""
    model = settings.model
    for name, attr in (("model", "name"), ("base_url", "base_url"), ("api_key", "api_key")):
        if flags.get(name) is not None:
            model = replace(model, **{attr: flags[name]})
    out = replace(settings, model=model)
    if flags.get("runs_dir") is not None:
        out = replace(out, runs_dir=Path(flags["runs_dir"]))
    if flags.get("max_iterations") is not None:
        out = replace(out, max_iterations=flags["max_iterations"])
    if flags.get("image") is not None:
        out = replace(out, sandbox=replace(out.sandbox, image=flags["image"]))
    if flags.get("candidates") is not None:
        out = replace(out, candidates=_candidates(flags["candidates"], "--candidates"))
    if flags.get("candidates_from") is not None:
        out = replace(out, candidates_from=flags["candidates_from"])
    if flags.get("candidate_workers") is not None:
        workers = _candidates(
            flags["candidate_workers"], "--candidate-workers", "candidates checked at once"
        )
        out = replace(out, candidate_workers=workers)
    return out


MAX_CANDIDATES = 8
CANDIDATE_SOURCES = ("samples", "rungs")


def default_workers() -> int:
    """Candidates checked at once unless told: one per core (each runs the repo's checks in
    a container of its own), at most MAX_CANDIDATES."""
    return max(1, min(MAX_CANDIDATES, os.cpu_count() or 1))


def _candidates(value: float, name: str, what: str = "candidates") -> int:
    """Best-of-N's N (or its worker limit): a whole number from 1 to MAX_CANDIDATES."""
    if value != int(value) or not 1 <= value <= MAX_CANDIDATES:
        raise ConfigError(
            f"{name}={value:g} is not a number of {what}",
            f"use a whole number from 1 to {MAX_CANDIDATES}",
        )
    return int(value)


def require_model(settings: Settings) -> ModelConfig:
    """The model settings a run needs, or a ConfigError saying how to provide them."""
    m = settings.model
    if not m.base_url and not m.api_key:
        raise ConfigError(
            "no LLM endpoint configured",
            "set OPENAI_BASE_URL (and OPENAI_API_KEY if it needs one) or pass --base-url; "
            "any OpenAI-compatible server works (OpenAI, Azure, vLLM, Ollama, llama.cpp)",
        )
    if not m.name:
        raise ConfigError("no model name configured", "set CODEBOT_MODEL or pass --model")
    return m


def _section(current: Any, data: dict[str, Any], name: str, path: str) -> Any:
    values = data.get(name, {}) or {}
    _check_keys(values, name, path)
    types = {f.name: f.type for f in dataclasses.fields(current)}
    for key, value in values.items():
        expected = type(getattr(current, key))
        if expected is float and isinstance(value, int):
            value = float(value)
        if expected is tuple and isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = tuple(value)
        if not isinstance(value, expected):
            raise ConfigError(
                f"{path}: `{name}.{key}` must be {expected.__name__} (got {value!r})",
                f"see {types[key]} in README 'Configuration'",
            )
        current = replace(current, **{key: value})
    return current


def _globs(values: Any, path: str) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{path}: `context.exclude` must be a list of globs", "")
    return tuple(values)


def _knowledge_paths(values: Any, path: str) -> tuple[str, ...]:
    """The repository's knowledge globs: inside the repository, since they are its content."""
    if values is None:
        return ()
    if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
        raise ConfigError(
            f"{path}: `knowledge` must be a list of paths or globs", "e.g. [docs/**/*.md, adr/]"
        )
    for value in values:
        if value.startswith("/") or ".." in value.split("/"):
            raise ConfigError(
                f"{path}: `knowledge` entry `{value}` points outside the repository",
                "name paths relative to the repository root",
            )
    return tuple(values)


def _check_keys(values: Any, name: str, path: str) -> None:
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: `{name}` must be a mapping", "")
    for key in values:
        if key not in _REPO_KEYS[name]:
            raise ConfigError(
                f"{path}: `{name}.{key}` cannot be set in .codebot.yml",
                f"allowed: {', '.join(sorted(_REPO_KEYS[name]))}",
            )


def _num(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a number", f"set {key} to a number") from None


def _choice(env: Mapping[str, str], key: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(key) or default
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not allowed", f"use one of: {', '.join(choices)}")
    return value


def _opt_num(env: Mapping[str, str], key: str) -> float | None:
    return _num(env, key, 0.0) if env.get(key) else None


def run_sandbox(settings: Settings, image: str) -> SandboxConfig:
    """How a run's (or its verification's) sandbox is made from `image`: with no network and
    no CA bundle, whatever a setup builder had."""
    return replace(settings.sandbox, image=image, network=False, ca_bundle="")
