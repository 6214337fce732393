"""The toolchain images (sandbox/build-toolchain-images.sh) as the sandbox runs them: a Node
project's `node --test` and a Go module's `go test ./...` pass or fail with the code, with no
network, a read-only root and HOME=/tmp; every image keeps the base's user, layout and tools.

One sandbox per image for the whole module, started on first use: each test only runs
commands in it, on projects that no test changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from codebot.config import SandboxConfig
from codebot.records import ExecResult
from codebot.sandbox import DockerSandbox
from tests.support.docker_fixtures import remove_leftovers, sandbox_leftovers

pytestmark = pytest.mark.docker

TOOLCHAINS = ("node", "go", "polyglot")
SETUP_HINT = "run `bash sandbox/setup-host.sh` (builds every missing toolchain image)"
TIMEOUT_S = 120

NODE_TEST = """\
const test = require("node:test");
const assert = require("node:assert");
const { add } = require("../add.js");

test("adds", () => {
  assert.strictEqual(add(2, 3), 5);
});
"""
GO_TEST = """\
package add

import "testing"

func TestAdd(t *testing.T) {
	if got := Add(2, 3); got != 5 {
		t.Fatalf("Add(2, 3) = %d, want 5", got)
	}
}
"""
# net/http over loopback: links the parts of the standard library that use cgo by default.
GO_NET_TEST = """\
package serve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestServesOverLoopback(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "hi")
	}))
	defer server.Close()
	response, err := http.Get(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(response.Body)
	if string(body) != "hi" {
		t.Fatalf("body %q", body)
	}
}
"""


def node_project(name: str, body: str) -> dict[str, str]:
    return {
        f"{name}/package.json": f'{{"name": "{name}", "version": "1.0.0", '
        '"scripts": {"test": "node --test"}}\n',
        f"{name}/add.js": f"exports.add = (a, b) => {body};\n",
        f"{name}/test/add.test.js": NODE_TEST,
    }


def go_module(name: str, files: dict[str, str]) -> dict[str, str]:
    return {
        f"{name}/go.mod": f"module example.com/{name}\n\ngo 1.19\n",
        **{f"{name}/{file}": text for file, text in files.items()},
    }


GO_ADD = "package add\n\nfunc Add(a, b int) int { return %s }\n"
PROJECTS = {
    **node_project("node-pass", "a + b"),
    **node_project("node-fail", "a - b"),
    **go_module("go-pass", {"add.go": GO_ADD % "a + b", "add_test.go": GO_TEST}),
    **go_module("go-fail", {"add.go": GO_ADD % "a - b", "add_test.go": GO_TEST}),
    **go_module("go-net", {"serve_test.go": GO_NET_TEST}),
}


def toolchain_image(base_image: str, toolchain: str) -> str:
    """`<repository of the base image>:<toolchain>`, as the builder tags it."""
    repository, _, tag = base_image.rpartition(":")
    if not repository or "/" in tag:  # no tag: the colon was a registry's port
        repository = base_image
    return f"{repository}:{toolchain}"


@pytest.fixture(scope="session")
def toolchain_images(docker_client: docker.DockerClient, sandbox_image: str) -> dict[str, str]:
    """Each toolchain's image; a missing one fails the test with the command that builds it."""
    images = {name: toolchain_image(sandbox_image, name) for name in TOOLCHAINS}
    missing = []
    for image in images.values():
        try:
            docker_client.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    if missing:
        pytest.fail(f"toolchain image(s) {', '.join(missing)} missing; {SETUP_HINT}", pytrace=False)
    return images


@pytest.fixture(scope="module")
def sandbox_for(
    docker_client: docker.DockerClient,
    toolchain_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], DockerSandbox]]:
    """The module's sandbox of a toolchain's image, started (with the projects in its
    workspace) on first use; all must leave nothing behind when closed."""
    projects = tmp_path_factory.mktemp("projects")
    for rel, text in PROJECTS.items():
        (projects / rel).parent.mkdir(parents=True, exist_ok=True)
        (projects / rel).write_text(text)
    started: dict[str, DockerSandbox] = {}

    def sandbox_for(toolchain: str) -> DockerSandbox:
        if toolchain not in started:
            config = SandboxConfig(image=toolchain_images[toolchain])
            sandbox = DockerSandbox.start(config, f"test-{uuid.uuid4().hex[:12]}")
            started[toolchain] = sandbox
            sandbox.sync(Path(projects))
        return started[toolchain]

    try:
        yield sandbox_for
        for sandbox in started.values():
            sandbox.close()
            assert sandbox_leftovers(docker_client, sandbox.run_id) == []
    finally:
        for sandbox in started.values():
            remove_leftovers(docker_client, sandbox.run_id)


def run(sandbox: DockerSandbox, command: str) -> ExecResult:
    result = sandbox.run(command, TIMEOUT_S)
    assert not result.timed_out, result.output
    return result


@pytest.mark.parametrize("toolchain", ["node", "polyglot"])
def test_node_test_passes_on_a_passing_project(
    sandbox_for: Callable[[str], DockerSandbox], toolchain: str
) -> None:
    result = run(sandbox_for(toolchain), "cd node-pass && node --test")
    assert result.exit_code == 0, result.output
    assert "# pass 1" in result.output


@pytest.mark.parametrize("toolchain", ["node", "polyglot"])
def test_node_test_fails_on_a_failing_project(
    sandbox_for: Callable[[str], DockerSandbox], toolchain: str
) -> None:
    result = run(sandbox_for(toolchain), "cd node-fail && node --test")
    assert result.exit_code == 1, result.output
    assert "# fail 1" in result.output


@pytest.mark.parametrize("toolchain", ["node", "polyglot"])
def test_npm_test_runs_the_package_test_script(
    sandbox_for: Callable[[str], DockerSandbox], toolchain: str
) -> None:
    result = run(sandbox_for(toolchain), "cd node-pass && npm test")
    assert result.exit_code == 0, result.output
    assert "# pass 1" in result.output


@pytest.mark.parametrize("toolchain", ["go", "polyglot"])
def test_go_test_passes_on_a_passing_module(
    sandbox_for: Callable[[str], DockerSandbox], toolchain: str
) -> None:
    result = run(sandbox_for(toolchain), "cd go-pass && go test ./...")
    assert result.exit_code == 0, result.output
    assert "ok  \texample.com/go-pass" in result.output


@pytest.mark.parametrize("toolchain", ["go", "polyglot"])
def test_go_test_fails_on_a_failing_module(
    sandbox_for: Callable[[str], DockerSandbox], toolchain: str
) -> None:
    result = run(sandbox_for(toolchain), "cd go-fail && go test ./...")
    assert result.exit_code == 1, result.output
    assert "Add(2, 3) = -1, want 5" in result.output


@pytest.mark.parametrize("toolchain", ["go", "polyglot"])
def test_go_test_links_net_packages_with_no_c_compiler(
    sandbox_for: Callable[[str], DockerSandbox], toolchain: str
) -> None:
    result = run(sandbox_for(toolchain), "cd go-net && go test ./...")
    assert result.exit_code == 0, result.output


def test_polyglot_image_has_python_node_npm_go_and_ruff(
    sandbox_for: Callable[[str], DockerSandbox],
) -> None:
    tools = ["python3 --version", "node --version", "npm --version", "go version", "ruff --version"]
    result = run(sandbox_for("polyglot"), " && ".join(tools))
    assert result.exit_code == 0, result.output
    for expected in ("Python 3.", "v18.", "go1.", "ruff "):
        assert expected in result.output


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_image_keeps_python_pytest_git_and_ruff(
    sandbox_for: Callable[[str], DockerSandbox], toolchain: str
) -> None:
    command = "python3 -m pytest --version && git --version && ruff --version"
    result = run(sandbox_for(toolchain), command)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_image_runs_as_65534_with_a_writable_workspace(
    sandbox_for: Callable[[str], DockerSandbox], toolchain: str
) -> None:
    command = "id -u; id -g; stat -c %u:%g /home/sandbox; touch probe && rm probe"
    result = run(sandbox_for(toolchain), command)
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["65534", "65534", "65534:65534"]


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_image_sandbox_has_only_loopback(
    sandbox_for: Callable[[str], DockerSandbox], toolchain: str
) -> None:
    result = run(sandbox_for(toolchain), "ls /sys/class/net")
    assert result.output.split() == ["lo"]


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_image_config_is_the_base_images_plus_toolchain_variables(
    docker_client: docker.DockerClient,
    sandbox_image: str,
    toolchain_images: dict[str, str],
    toolchain: str,
) -> None:
    base = docker_client.images.get(sandbox_image).attrs["Config"]
    config = docker_client.images.get(toolchain_images[toolchain]).attrs["Config"]
    for key in ("User", "WorkingDir", "Cmd", "Entrypoint"):
        assert config.get(key) == base.get(key), key
    assert set(base["Env"]) <= set(config["Env"])
    added = {line.partition("=")[0] for line in set(config["Env"]) - set(base["Env"])}
    expected = {
        "node": {"npm_config_cache"},
        "go": {"GOCACHE", "GOPATH"},
        "polyglot": {"npm_config_cache", "GOCACHE", "GOPATH"},
    }[toolchain]
    assert expected <= added
