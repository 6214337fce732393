"""Files synced into the sandbox go with the next command, in its exec (codebot.tree.script),
unless they are many, a read or a root command comes first, or the script cannot run; in
every case the workspace ends up holding exactly the files as they were when synced. In the
real engine, watched through its events."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest

from codebot.sandbox import DockerSandbox
from codebot.sandbox.steps import SYNC_LIMIT
from tests.test_sandbox import write_tree

pytestmark = pytest.mark.docker


@pytest.fixture
def workspace(shared_sandbox: DockerSandbox) -> DockerSandbox:
    assert (
        shared_sandbox.run("chmod -R u+w . 2>/dev/null; find . -mindepth 1 -delete", 10).exit_code
        == 0
    )
    return shared_sandbox


class Engine:
    """Counts the engine's execs and archive copies into one container from now on."""

    def __init__(self, client: docker.DockerClient, container: str) -> None:
        self._client, self._container = client, container
        self._since = time.time()

    def count(self) -> dict[str, int]:
        events = self._client.events(
            since=self._since, until=time.time() + 1, decode=True,
            filters={"container": self._container},
        )  # fmt: skip
        kinds = [e.get("Action", "").split(":")[0] for e in events]
        return {k: kinds.count(k) for k in ("exec_create", "extract-to-dir")}


def test_changed_files_go_with_the_next_command(
    workspace: DockerSandbox, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    root = write_tree(tmp_path, {"calc.py": "old\n", "run.sh": "echo hi\n"})
    workspace.sync(root)
    assert workspace.run("true", 10).exit_code == 0
    (root / "calc.py").write_text("new\n")
    (root / "run.sh").chmod(0o755)
    write_tree(root, {"pkg/deep/mod.py": "", "o'dd name.py": "x = 1\n"})
    engine = Engine(docker_client, workspace.name)

    workspace.sync(root, ["calc.py", "run.sh", "pkg/deep/mod.py", "o'dd name.py"])
    ran = workspace.run("cat calc.py 'o'\\''dd name.py'; ./run.sh; wc -c < pkg/deep/mod.py", 10)

    assert (ran.exit_code, ran.output) == (0, "new\nx = 1\nhi\n0\n")
    assert engine.count() == {"exec_create": 1, "extract-to-dir": 0}


def test_a_link_planted_at_a_synced_path_is_replaced_not_written_through(
    workspace: DockerSandbox, tmp_path: Path
) -> None:
    root = write_tree(tmp_path, {"calc.py": "def add(a, b):\n    return a + b\n"})
    workspace.run("echo kept > /tmp/target; ln -s /tmp/target calc.py; mkdir dir; ln -s dir d", 10)
    write_tree(root, {"d": "now a file\n"})

    workspace.sync(root, ["calc.py", "d"])
    ran = workspace.run("test -h calc.py || test -h d || echo no-links; cat /tmp/target d", 10)

    assert ran.output == "no-links\nkept\nnow a file\n"


def test_files_are_sent_as_they_were_when_synced(workspace: DockerSandbox, tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"a.py": "synced\n", "b.py": "b\n"})
    workspace.sync(root, ["a.py", "b.py"])
    (root / "a.py").write_text("changed after\n")
    (root / "b.py").unlink()

    assert workspace.read_file("a.py", 100) == b"synced\n"  # a read sends them first
    assert workspace.run("cat b.py", 10).output == "b\n"


def test_syncs_before_a_command_all_go_with_it_in_order(
    workspace: DockerSandbox, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    root = write_tree(tmp_path, {"a.py": "first\n", "b.py": "b\n", "gone.py": "g\n"})
    workspace.sync(root)
    assert workspace.run("true", 10).exit_code == 0
    engine = Engine(docker_client, workspace.name)

    (root / "a.py").write_text("second\n")
    (root / "gone.py").unlink()
    workspace.sync(root, ["a.py", "gone.py"])  # e.g. an iteration's edits, no command after
    (root / "a.py").write_text("third\n")
    (root / "c.py").write_text("c\n")
    workspace.sync(root, ["a.py", "c.py"])  # the next iteration's
    ran = workspace.run("cat a.py b.py c.py; test -e gone.py || echo no-gone", 10)

    assert (ran.exit_code, ran.output) == (0, "third\nb\nc\nno-gone\n")
    assert engine.count() == {"exec_create": 1, "extract-to-dir": 0}


def test_waiting_syncs_a_read_sends_first_go_as_archives_in_order(
    workspace: DockerSandbox, tmp_path: Path
) -> None:
    root = write_tree(tmp_path, {"a.py": "first\n"})
    workspace.sync(root, ["a.py"])
    (root / "a.py").write_text("second\n")
    workspace.sync(root, ["a.py"])

    assert workspace.read_file("a.py", 100) == b"second\n"


def test_a_sync_the_script_cannot_do_is_copied_as_an_archive(
    workspace: DockerSandbox, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    root = write_tree(tmp_path, {"locked/f.py": "old\n"})
    workspace.sync(root)
    workspace.run("chmod 555 locked", 10)  # the sandbox user cannot replace f.py in it now
    (root / "locked/f.py").write_text("new\n")
    engine = Engine(docker_client, workspace.name)

    workspace.sync(root, ["locked/f.py"])
    ran = workspace.run("echo ran; cat locked/f.py", 10)

    assert (ran.exit_code, ran.output) == (0, "ran\nnew\n")  # the command ran once, after
    assert engine.count()["extract-to-dir"] == 1


def test_many_files_go_as_an_archive_at_once(
    workspace: DockerSandbox, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    root = write_tree(tmp_path, {"big.bin": "x" * SYNC_LIMIT})
    engine = Engine(docker_client, workspace.name)

    workspace.sync(root, ["big.bin"])

    assert engine.count()["extract-to-dir"] == 1
    assert workspace.run("wc -c < big.bin", 10).output == f"{SYNC_LIMIT}\n"


def test_names_that_look_like_options_are_synced_as_names(
    workspace: DockerSandbox, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    root = write_tree(tmp_path, {"-R": "r\n", "--help.py": "h\n", "-d/--x": "x\n"})
    (root / "-R").chmod(0o755)
    engine = Engine(docker_client, workspace.name)

    workspace.sync(root, ["-R", "--help.py", "-d/--x"])
    ran = workspace.run("cat -- -R --help.py -d/--x; test -x ./-R && echo exec", 10)

    assert (ran.exit_code, ran.output) == (0, "r\nh\nx\nexec\n")
    assert engine.count() == {"exec_create": 1, "extract-to-dir": 0}
