"""`codebot setup [--check]`: make (or find) a repository's environment before any model is
asked, and with `--check` run its checks once on the base branch and say plainly whether
the environment works.

The same environment and the same diagnosis serve every run (codebot.environment,
codebot.diagnose); this is the way to see them, and to fill the cache, on their own.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from codebot import config as cfg
from codebot import environment
from codebot.checks import baseline_checks
from codebot.configure import detect_at
from codebot.detect import to_yaml
from codebot.diagnose import environment_problem
from codebot.errors import ConfigError
from codebot.records import CheckResult
from codebot.runner import Event
from codebot.sandbox import DockerSandbox, ping
from codebot.sandboxes import close_sandbox
from codebot.spec import TaskSpec, spec_from_data
from codebot.workspace import Workspace, read_file_at


@dataclass(frozen=True)
class EnvironmentReport:
    toolchain: str
    environment: environment.Environment
    checks: tuple[CheckResult, ...]
    problem: str | None
    detected: str  # what detection found, as a .codebot.yml fragment

    @property
    def works(self) -> bool:
        return self.environment.ready and self.problem is None


def check_environment(
    repo: Path, settings: cfg.Settings, *, run_checks: bool, on_event: Event
) -> EnvironmentReport:
    """Detect, build or find the environment, and (with `run_checks`) run the checks once."""
    found = detect_at(repo, None)
    settings = cfg.with_detected(settings, found)
    settings = cfg.with_repo_file(settings, read_file_at(repo, None, ".codebot.yml"))
    defaults = settings.spec_defaults
    if not defaults.get("test"):
        raise ConfigError(
            f"no test command for {repo}: neither .codebot.yml nor the repository's files name one",
            "add `spec: {test: <command>}` to .codebot.yml (`codebot detect` shows what it found)",
        )
    ping(settings.sandbox.image)  # no model is needed here
    fields = {"title": "Environment check", "description": "Run the checks on the base branch."}
    spec = spec_from_data({**defaults, **fields}, "codebot setup", {})
    run_id = time.strftime("setup-%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    ws = Workspace.create(repo, "setup-check", None, settings.git.branch_prefix)
    try:
        tracked = ws.tracked_files()
        env = environment.prepare(
            settings, spec, run_id, ws.read_base_file, tracked, ws.base_tree, on_event
        )
        checks: tuple[CheckResult, ...] = (env.setup,) if env.setup else ()
        problem = None
        if env.ready and run_checks:
            ran = _run_checks(settings, spec, ws, env, run_id)
            deps = {p: ws.read_base_file(p) or "" for p in environment.input_paths(tracked, "")}
            problem = environment_problem(ran, tracked, deps, strict=False)
            checks += ran
    finally:
        ws.cleanup()
    return EnvironmentReport(found.toolchain, env, checks, problem, to_yaml(found))


def _run_checks(
    settings: cfg.Settings,
    spec: TaskSpec,
    ws: Workspace,
    env: environment.Environment,
    run_id: str,
) -> tuple[CheckResult, ...]:
    sandbox = DockerSandbox.start(environment.sandbox_config(settings, env), run_id)
    try:
        environment.fill(sandbox, env, ws.path)
        checks, _ = baseline_checks(sandbox, spec, python_repo=ws.is_python())
    finally:
        close_sandbox(sandbox)
    return checks
