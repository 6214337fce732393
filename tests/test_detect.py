"""Zero-config detection: sample repositories in, commands with their file:line reasons out."""

import os
import textwrap

import yaml

from codebot.config import Settings, with_repo_file
from codebot.detect import Detection, Found, detect, needs_text, to_yaml, wanted
from tests.support.git_repos import git, make_repo
from tests.test_end_to_end import codebot


def text(block):
    return textwrap.dedent(block).lstrip("\n")


def where(found):
    return f"{found.file}:{found.line}"


def line_at(files, found):
    """The line a reason points at, to show it holds what the reason says."""
    return files[found.file].splitlines()[found.line - 1]


PYPROJECT_PYTEST = {
    "pyproject.toml": text("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "duration"
        version = "0.1.0"
        dependencies = ["attrs"]

        [project.optional-dependencies]
        test = ["pytest>=8", "pytest-cov"]

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        """),
    "src/duration.py": "def parse(text): ...\n",
    "tests/test_duration.py": "def test_parse(): ...\n",
}

SETUP_CFG_TOX = {
    "setup.cfg": text("""
        [metadata]
        name = clock

        [options]
        packages = find:

        [flake8]
        max-line-length = 100
        """),
    "tox.ini": text("""
        [tox]
        envlist = py311, lint

        [testenv]
        deps =
            pytest
            -r{toxinidir}/requirements.txt
        commands = pytest {posargs} tests

        [testenv:lint]
        skip_install = true
        deps = flake8
        commands = flake8 src
        """),
    "requirements.txt": "tzdata==2024.1\n",
    "tests/test_clock.py": "def test_tick(): ...\n",
}

REQUIREMENTS_DEV = {
    "requirements.txt": "requests==2.32.3\n",
    "requirements-dev.txt": "-r requirements.txt\npytest==8.3.3\n",
    "app.py": "import requests\n",
    "test_app.py": "def test_app(): ...\n",
}

NPM = {
    "package.json": text("""
        {
          "name": "web",
          "version": "1.0.0",
          "scripts": {
            "build": "tsc -p .",
            "lint": "eslint .",
            "test": "jest"
          },
          "devDependencies": {"jest": "^29.7.0"}
        }
        """),
    "package-lock.json": '{"lockfileVersion": 3}\n',
    "src/index.test.js": "test('x', () => {})\n",
}

YARN = {
    "package.json": text("""
        {
          "name": "ui",
          "scripts": {
            "test": "vitest run",
            "build": "vite build"
          }
        }
        """),
    "yarn.lock": "# yarn lockfile v1\n",
}

GO_MODULE = {
    "go.mod": "module example.com/clock\n\ngo 1.22\n\nrequire github.com/google/go-cmp v0.6.0\n",
    "clock.go": "package clock\n",
    "clock_test.go": "package clock\n",
}

MAKEFILE = {
    "Makefile": text("""
        .PHONY: test lint build

        build:
        \tpython3 -m compileall -q src

        lint:
        \truff check src

        check: lint test

        test:
        \tpython3 -m unittest discover -s tests
        """),
    "requirements.txt": "attrs==24.2.0\n",
    "src/meter.py": "",
    "tests/test_meter.py": "",
}

CI_ONLY = {
    ".github/workflows/ci.yml": text("""
        name: ci
        on: [push, pull_request]
        jobs:
          test:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: actions/setup-python@v5
                with: {python-version: "3.12"}
              - name: Install
                run: |
                  python -m pip install --upgrade pip
                  pip install -r ci/requirements.txt
              - name: Integration
                env:
                  API_KEY: ${{ secrets.API_KEY }}
                run: python -m pytest -q integration
              - name: Lint
                run: ruff check src tests
              - name: Test
                run: python -m pytest -q tests
              - name: Publish docs
                run: make build
          deploy:
            needs: test
            runs-on: ubuntu-latest
            steps:
              - run: npm run build
              - run: twine upload dist/*
        """),
    "src/clock.py": "",
    "tests/test_clock.py": "",
}

POLYGLOT = {
    "pyproject.toml": text("""
        [project]
        name = "api"
        version = "0.1.0"

        [tool.pytest.ini_options]
        addopts = "-q"
        """),
    "package.json": '{\n  "scripts": {\n    "test": "jest"\n  }\n}\n',
    "package-lock.json": "{}\n",
}

RUST = {
    "Cargo.toml": text("""
        [package]
        name = "clock"
        version = "0.1.0"
        edition = "2021"

        [dependencies]
        chrono = "0.4"
        """),
    "src/lib.rs": "",
}


# --- the sample repositories ---------------------------------------------------------------


def test_pyproject_with_pytest_installs_the_test_extra_and_runs_pytest():
    d = detect(PYPROJECT_PYTEST)
    assert d.toolchain == "python" and d.image is None
    assert d.setup == Found(
        "python3 -m pip install -e '.[test]'",
        "pyproject.toml",
        11,
        "the `test` extra of [project.optional-dependencies] holds the test dependencies",
    )
    assert d.test == Found(
        "python3 -m pytest -q",
        "pyproject.toml",
        13,
        "pytest is configured ([tool.pytest.ini_options])",
    )
    assert d.build is None and d.lint is None


def test_tox_envs_give_their_commands_without_running_tox():
    d = detect(SETUP_CFG_TOX)
    assert d.toolchain == "python"
    assert (d.test.command, where(d.test)) == ("python3 -m pytest tests", "tox.ini:8")
    assert d.test.why == "the tox env `testenv` runs it"
    assert line_at(SETUP_CFG_TOX, d.test) == "commands = pytest {posargs} tests"
    assert (d.lint.command, where(d.lint)) == ("python3 -m flake8 src", "tox.ini:13")
    assert d.setup.command == ("python3 -m pip install -e . pytest -r requirements.txt flake8")
    assert where(d.setup) == "tox.ini:5"


def test_requirements_dev_is_installed_and_its_pytest_runs_the_tests():
    d = detect(REQUIREMENTS_DEV)
    assert d.toolchain == "python"
    assert d.setup == Found(
        "python3 -m pip install -r requirements-dev.txt",
        "requirements-dev.txt",
        1,
        "`requirements-dev.txt` lists the test dependencies",
    )
    assert (d.test.command, where(d.test)) == ("python3 -m pytest -q", "requirements-dev.txt:2")
    assert d.test.why == "pytest is a declared dependency"


def test_npm_project_runs_its_scripts_after_npm_ci():
    d = detect(NPM)
    assert d.toolchain == "node" and d.image == "codebot-sandbox:node"
    assert d.setup == Found("npm ci", "package-lock.json", 1, "the lockfile pins the dependencies")
    assert (d.build.command, where(d.build)) == ("npm run build", "package.json:5")
    assert (d.lint.command, where(d.lint)) == ("npm run lint", "package.json:6")
    assert (d.test.command, where(d.test)) == ("npm test", "package.json:7")
    assert d.test.why == "package.json has a `test` script"
    assert line_at(NPM, d.test).strip() == '"test": "jest"'


def test_yarn_project_uses_yarn_and_its_frozen_lockfile():
    d = detect(YARN)
    assert d.setup.command == "yarn install --frozen-lockfile"
    assert (d.test.command, where(d.test)) == ("yarn test", "package.json:4")
    assert (d.build.command, where(d.build)) == ("yarn run build", "package.json:5")
    assert d.lint is None


def test_go_module_downloads_once_then_builds_vets_and_tests_offline():
    d = detect(GO_MODULE)
    assert d.toolchain == "go" and d.image == "codebot-sandbox:go"
    assert (d.setup.command, where(d.setup)) == ("go mod download", "go.mod:5")
    assert (d.build.command, where(d.build)) == ("go build ./...", "go.mod:1")
    assert (d.lint.command, where(d.lint)) == ("go vet ./...", "go.mod:1")
    assert (d.test.command, where(d.test)) == ("go test ./...", "go.mod:1")


def test_makefile_targets_outrank_what_a_tests_directory_implies():
    d = detect(MAKEFILE)
    assert d.toolchain == "python"
    assert (d.test.command, where(d.test)) == ("make test", "Makefile:11")
    assert d.test.why == "the Makefile has a `test` target"
    assert line_at(MAKEFILE, d.test) == "test:"
    assert (d.lint.command, where(d.lint)) == ("make lint", "Makefile:6")
    assert (d.build.command, where(d.build)) == ("make build", "Makefile:3")
    assert (d.setup.command, where(d.setup)) == (
        "python3 -m pip install -r requirements.txt",
        "requirements.txt:1",
    )


def test_makefile_check_target_stands_in_for_a_missing_test_target():
    d = detect({"Makefile": "all:\n\tcc main.c\n\ncheck: all\n\t./run-tests\n"})
    assert d.toolchain == "unknown"
    assert (d.test.command, where(d.test)) == ("make check", "Makefile:4")


def test_ci_steps_give_the_commands_and_deploy_and_secret_steps_are_ignored():
    d = detect(CI_ONLY)
    ci = ".github/workflows/ci.yml"
    assert d.toolchain == "python"
    assert d.setup == Found(
        "python3 -m pip install -r ci/requirements.txt", ci, 13, "the CI job `test` runs it"
    )
    assert line_at(CI_ONLY, d.setup).strip() == "pip install -r ci/requirements.txt"
    assert (d.lint.command, where(d.lint)) == ("ruff check src tests", f"{ci}:19")
    assert (d.test.command, where(d.test)) == ("python3 -m pytest -q tests", f"{ci}:21")
    assert line_at(CI_ONLY, d.test).strip() == "run: python -m pytest -q tests"
    assert d.build is None  # `make build` publishes docs, `npm run build` is in the deploy job


def test_ci_outranks_the_files_it_would_otherwise_be_guessed_from():
    files = {**PYPROJECT_PYTEST, **CI_ONLY}
    assert detect(files).test.command == "python3 -m pytest -q tests"


def test_a_tox_step_in_ci_becomes_the_tox_envs_own_commands():
    workflow = "jobs:\n  t:\n    steps:\n      - run: pip install tox\n      - run: tox -e py\n"
    d = detect({**SETUP_CFG_TOX, ".github/workflows/tests.yml": workflow})
    assert (d.test.command, where(d.test)) == ("python3 -m pytest tests", "tox.ini:8")
    assert d.test.why == (
        "the tox env `testenv` runs it, as the CI does through `tox -e py` "
        "(`.github/workflows/tests.yml:5`: the CI job `t` runs it)"
    )
    assert (d.setup.command, where(d.setup)) == (
        "python3 -m pip install -e . pytest -r requirements.txt flake8",
        "tox.ini:5",
    )


def test_ci_working_directory_keeps_the_command_in_its_directory():
    workflow = text("""
        jobs:
          web:
            steps:
              - run: npm ci
                working-directory: web
              - run: npm test
                working-directory: web
        """)
    d = detect({".github/workflows/web.yml": workflow})
    assert d.toolchain == "node"
    assert (d.setup.command, d.test.command) == ("(cd web && npm ci)", "(cd web && npm test)")


def test_python_and_node_together_are_polyglot_and_run_both():
    d = detect(POLYGLOT)
    assert d.toolchain == "polyglot" and d.image == "codebot-sandbox:polyglot"
    assert d.setup.command == "python3 -m pip install -e . && npm ci"
    assert d.test.command == "python3 -m pytest -q && npm test"
    assert where(d.test) == "pyproject.toml:5"
    assert d.test.why == (
        "pytest is configured ([tool.pytest.ini_options]); "
        "`npm test` from `package.json:3`: package.json has a `test` script"
    )


def test_rust_crate_fetches_once_then_tests_offline():
    d = detect(RUST)
    assert d.toolchain == "rust" and d.image is None
    assert (d.setup.command, where(d.setup)) == ("cargo fetch", "Cargo.toml:6")
    assert (d.test.command, where(d.test)) == ("cargo test --offline", "Cargo.toml:1")
    assert d.build.command == "cargo build --offline"


def test_empty_repository_is_unknown_and_finds_nothing():
    d = detect({"README.md": "# notes\n"})
    assert d == Detection("unknown")


def test_nox_sessions_give_their_run_and_install_calls():
    noxfile = text("""
        import nox

        @nox.session(python=["3.11", "3.12"])
        def tests(session):
            session.install("-e", ".[test]")
            session.run("pytest", "-q", *session.posargs)

        @nox.session(name="lint")
        def style(session):
            session.install("ruff")
            session.run("ruff", "check", ".")
        """)
    d = detect({"noxfile.py": noxfile, "setup.py": "from setuptools import setup\nsetup()\n"})
    assert (d.test.command, where(d.test)) == ("python3 -m pytest -q", "noxfile.py:6")
    assert (d.lint.command, where(d.lint)) == ("ruff check .", "noxfile.py:11")
    assert d.setup.command == "python3 -m pip install -e '.[test]' ruff"


def test_a_tests_directory_alone_means_pytest():
    d = detect({"setup.py": "from setuptools import setup\nsetup()\n", "tests/test_a.py": ""})
    assert (d.test.command, where(d.test)) == ("python3 -m pytest -q", "tests/test_a.py:1")
    assert d.setup.command == "python3 -m pip install -e ."


def test_npm_init_placeholder_test_script_is_no_test():
    placeholder = '{"scripts": {"test": "echo \\"Error: no test specified\\" && exit 1"}}'
    assert detect({"package.json": placeholder}).test is None


def test_python_lint_is_left_to_codebot_unless_a_linter_is_configured():
    assert detect(REQUIREMENTS_DEV).lint is None
    ruff = {**REQUIREMENTS_DEV, "pyproject.toml": "[tool.ruff]\nline-length = 100\n"}
    assert (detect(ruff).lint.command, where(detect(ruff).lint)) == (
        "ruff check .",
        "pyproject.toml:1",
    )


# --- which files detection reads -----------------------------------------------------------


def test_wanted_picks_build_files_workflows_and_one_test_file_of_each_kind():
    paths = [
        "README.md", "pyproject.toml", "requirements-dev.txt", "docs/requirements.txt",
        ".github/workflows/ci.yml", ".github/dependabot.yml", "src/app.py", "tests/test_a.py",
        "tests/test_b.py", "pkg/x_test.go", "web/a.test.js", "package-lock.json", "Makefile",
    ]  # fmt: skip
    assert wanted(paths) == [
        "pyproject.toml", "requirements-dev.txt", ".github/workflows/ci.yml",
        "package-lock.json", "Makefile", "tests/test_a.py", "pkg/x_test.go", "web/a.test.js",
    ]  # fmt: skip


def test_lockfiles_and_test_files_are_needed_by_name_only():
    assert not needs_text("package-lock.json") and not needs_text("tests/test_a.py")
    assert needs_text("package.json") and needs_text(".github/workflows/ci.yml")


# --- the .codebot.yml fragment -------------------------------------------------------------


def test_yaml_fragment_loads_as_the_detected_spec_with_a_reason_per_value():
    out = to_yaml(detect(PYPROJECT_PYTEST))
    assert yaml.safe_load(out) == {
        "spec": {"setup": "python3 -m pip install -e '.[test]'", "test": "python3 -m pytest -q"}
    }
    assert "  # `pyproject.toml:11`: the `test` extra" in out
    assert "  # lint: no linter configured" in out and "sandbox:" not in out


def test_yaml_fragment_is_accepted_as_a_codebot_yml():
    settings = with_repo_file(Settings(), to_yaml(detect(REQUIREMENTS_DEV)))
    assert settings.spec_defaults == {
        "setup": "python3 -m pip install -r requirements-dev.txt",
        "test": "python3 -m pytest -q",
    }


def test_yaml_fragment_names_the_sandbox_image_for_node_go_and_polyglot():
    for files, image in ((NPM, "node"), (GO_MODULE, "go"), (POLYGLOT, "polyglot")):
        loaded = yaml.safe_load(to_yaml(detect(files)))
        assert loaded["sandbox"] == {"image": f"codebot-sandbox:{image}"}


def test_yaml_values_and_comments_survive_any_text():
    tricky = Found("echo 'a: b' # not a comment", "odd\nname: x", 3, "why\r\n- y")
    out = to_yaml(Detection("python", test=tricky))
    assert yaml.safe_load(out) == {"spec": {"test": "echo 'a: b' # not a comment"}}


def test_yaml_for_an_unknown_repository_says_what_to_write():
    out = to_yaml(detect({}))
    assert yaml.safe_load(out) is None
    assert "found nothing to run" in out and "test: <required" in out


# --- the command ---------------------------------------------------------------------------


def test_detect_command_prints_the_fragment_from_the_committed_files(tmp_path):
    repo = make_repo(tmp_path / "repo", PYPROJECT_PYTEST)
    (repo / "package.json").write_text('{"scripts": {"test": "jest"}}')  # never committed
    before = git(repo, "status", "--porcelain")
    result = codebot(["detect", "--repo", str(repo)], {"PATH": os.environ["PATH"]}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# codebot detect: toolchain python (pyproject.toml)\n")
    assert yaml.safe_load(result.stdout)["spec"]["setup"] == "python3 -m pip install -e '.[test]'"
    assert git(repo, "status", "--porcelain") == before


def test_detect_command_on_a_directory_that_is_no_repository_fails_in_one_line(tmp_path):
    result = codebot(["detect", "--repo", str(tmp_path)], {"PATH": os.environ["PATH"]}, tmp_path)
    assert result.returncode == 5
    errors = [line for line in result.stderr.splitlines() if line.startswith("codebot: error:")]
    assert errors == [
        f"codebot: error: {tmp_path} is not a git repository — pass --repo PATH pointing at a "
        "git work tree"
    ]
