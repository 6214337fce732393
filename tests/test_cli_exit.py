"""The `codebot` program's way out (`codebot.cli.run`): the interpreter's teardown is skipped,
nothing else is. Each test runs a real Python process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from codebot.cli import _status


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_piped_output_is_flushed_before_the_process_ends(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "codebot", "--version"], capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0
    assert done.stdout.startswith("codebot, version ")


def test_an_error_keeps_its_exit_status_and_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "codebot", "dry-run", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert done.returncode == 5, done.stderr  # codebot's status for a bad repository
    assert "is not a git repository" in done.stderr


def test_threads_are_joined_and_exit_handlers_run_before_the_end(tmp_path: Path) -> None:
    done = _python(
        """
        import atexit, pathlib, sys, threading, time
        from codebot import cli

        def late():
            time.sleep(0.3)
            pathlib.Path("thread-done").write_text("yes")

        threading.Thread(target=late).start()  # not a daemon: a normal exit waits for it
        atexit.register(lambda: pathlib.Path("atexit-ran").write_text("yes"))
        sys.argv = ["codebot", "--version"]
        cli.run()
        """,
        tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "thread-done").read_text() == "yes"
    assert (tmp_path / "atexit-ran").read_text() == "yes"


def test_a_bug_still_ends_with_its_traceback(tmp_path: Path) -> None:
    done = _python(
        """
        import sys
        from codebot import cli

        def broken():
            raise RuntimeError("a bug")

        cli.main = broken
        cli.run()
        """,
        tmp_path,
    )

    assert done.returncode == 1
    assert "RuntimeError: a bug" in done.stderr


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), (256 + 4, 4)])
def test_exit_codes_map_as_sys_exit_does(code: object, status: int) -> None:
    assert _status(code) == status


def test_a_message_as_exit_code_is_printed_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert _status("stopped: no spec") == 1
    assert capsys.readouterr().err == "stopped: no spec\n"
