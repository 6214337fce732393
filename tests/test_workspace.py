import shutil
import subprocess
import sys
import tempfile

import pytest

from codebot.errors import WorkspaceError
from codebot.owner import owner
from codebot.workspace import Workspace, read_file_at
from tests.support.git_repos import git, make_repo, snapshot


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", {"a.py": "x = 1\n", "lib/b.py": "y = 2\n"})


def test_clone_is_isolated_and_on_a_new_branch(repo):
    ws = Workspace.create(repo, "fix-x", None, "codebot/")
    try:
        assert ws.path != repo
        assert ws.branch == "codebot/fix-x"
        assert ws.base_ref == "main"
        assert sorted(ws.tracked_files()) == ["a.py", "lib/b.py"]
    finally:
        ws.cleanup()
    assert not ws.path.exists()


def test_edits_and_commit_never_touch_the_users_repo(repo):
    before = snapshot(repo)
    ws = Workspace.create(repo, "fix-x", None, "codebot/")
    try:
        (ws.path / "a.py").write_text("x = 2\n")
        (ws.path / "new.py").write_text("z = 3\n")
        ws.stage(["a.py", "new.py"])
        assert ws.staged_files() == ["a.py", "new.py"]
        assert ws.commit("Change x", "bot", "bot@localhost")
    finally:
        ws.cleanup()
    assert snapshot(repo) == before
    assert "codebot/fix-x" not in git(repo, "branch", "--list")


def test_publish_local_adds_only_the_branch(repo):
    before = snapshot(repo)
    ws = Workspace.create(repo, "fix-x", None, "codebot/")
    try:
        (ws.path / "a.py").write_text("x = 2\n")
        ws.stage(["a.py"])
        sha = ws.commit("Change x", "bot", "bot@localhost")
        ws.publish_local()
    finally:
        ws.cleanup()
    assert snapshot(repo) == before
    assert git(repo, "rev-parse", "codebot/fix-x") == sha
    assert git(repo, "log", "-1", "--format=%an <%ae>|%s", "codebot/fix-x") == (
        "bot <bot@localhost>|Change x"
    )


def test_existing_branch_name_gets_a_suffix(repo):
    git(repo, "branch", "codebot/fix-x")
    ws = Workspace.create(repo, "fix-x", None, "codebot/")
    ws.cleanup()
    assert ws.branch == "codebot/fix-x-2"


def test_commit_with_no_change_returns_none(repo):
    ws = Workspace.create(repo, "fix-x", None, "codebot/")
    try:
        assert ws.commit("nothing", "bot", "bot@localhost") is None
    finally:
        ws.cleanup()


def test_diff_shows_the_patch_against_base(repo):
    ws = Workspace.create(repo, "fix-x", None, "codebot/")
    try:
        (ws.path / "lib/b.py").unlink()
        ws.stage(["lib/b.py"])
        patch = ws.staged_diff()
    finally:
        ws.cleanup()
    assert "deleted file mode" in patch and "-y = 2" in patch


def test_reading_the_staged_change_does_not_stage_anything(repo):
    ws = Workspace.create(repo, "fix-x", None, "codebot/")
    try:
        (ws.path / "a.py").write_text("x = 2\n")
        assert (ws.staged_files(), ws.staged_diff()) == ([], "")
        assert ws.commit("nothing staged", "bot", "bot@localhost") is None
    finally:
        ws.cleanup()


def test_a_git_failure_in_the_clone_is_a_workspace_error_not_a_traceback(repo):
    ws = Workspace.create(repo, "fix-x", None, "codebot/")
    try:
        shutil.rmtree(ws.path / ".git" / "objects")
        with pytest.raises(WorkspaceError, match="git failed while listing the tracked files"):
            ws.tracked_files()
    finally:
        ws.cleanup()


def test_base_can_be_another_branch(repo):
    git(repo, "checkout", "-q", "-b", "dev")
    (repo / "a.py").write_text("x = 99\n")
    git(repo, "commit", "-qam", "dev change")
    git(repo, "checkout", "-q", "main")
    ws = Workspace.create(repo, "t", "dev", "codebot/")
    try:
        assert (ws.path / "a.py").read_text() == "x = 99\n"
        assert ws.base_ref == "dev"
    finally:
        ws.cleanup()


def test_unknown_base_names_it(repo):
    with pytest.raises(WorkspaceError, match="base `nope`"):
        Workspace.create(repo, "t", "nope", "codebot/")


def test_not_a_repository_is_a_clear_error(tmp_path):
    with pytest.raises(WorkspaceError, match="is not a git repository"):
        Workspace.create(tmp_path, "t", None, "codebot/")


def test_uncommitted_user_changes_are_neither_used_nor_touched(repo):
    (repo / "a.py").write_text("x = 'dirty'\n")
    ws = Workspace.create(repo, "t", None, "codebot/")
    try:
        assert (ws.path / "a.py").read_text() == "x = 1\n"
    finally:
        ws.cleanup()
    assert (repo / "a.py").read_text() == "x = 'dirty'\n"


def test_read_file_at_reads_committed_content_only(repo):
    (repo / ".codebot.yml").write_text("uncommitted: true\n")
    assert read_file_at(repo, None, "a.py") == "x = 1\n"
    assert read_file_at(repo, None, ".codebot.yml") is None


def test_cleanup_removes_the_whole_temp_dir(tmp_path):
    repo = make_repo(tmp_path / "user", {"a.py": "x = 1\n"})
    ws = Workspace.create(repo, "t", None, "codebot/")
    top = ws.path.parent
    assert top.name.startswith("codebot-ws-") and (top / "owner").is_file()
    ws.cleanup()
    assert not top.exists()


def test_clone_dirs_of_ended_processes_are_removed_when_a_workspace_is_made(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_owner = owner(child.pid)
    child.wait()
    dirs = {}
    for name, text in (("dead", dead_owner), ("live", owner()), ("unmarked", None)):
        dirs[name] = tmp_path / "tmp" / f"codebot-ws-{name}"
        (dirs[name] / "repo").mkdir(parents=True)
        if text is not None:
            (dirs[name] / "owner").write_text(text)
    repo = make_repo(tmp_path / "user", {"a.py": "x = 1\n"})

    ws = Workspace.create(repo, "t", None, "codebot/")
    try:
        assert ws.path.is_relative_to(tmp_path / "tmp")
        assert [n for n, d in dirs.items() if d.exists()] == ["live", "unmarked"]
    finally:
        ws.cleanup()


def test_staging_commits_the_bytes_as_they_are_past_ignore_rules_and_filters(tmp_path):
    files = {"a.py": "x = 1\n", ".gitignore": "hidden_*.py\n", ".gitattributes": "*.py ident\n"}
    repo = make_repo(tmp_path / "repo", files)
    ws = Workspace.create(repo, "fix-x", None, "codebot/")
    try:
        (ws.path / "a.py").write_text("x = 2  # $Id$\n")
        (ws.path / "hidden_impl.py").write_text("y = 1\n")
        ws.stage(["a.py", "hidden_impl.py"])
        sha = ws.commit("Change x", "bot", "bot@localhost")
        ws.publish_local()
    finally:
        ws.cleanup()
    assert git(repo, "cat-file", "-p", f"{sha}:a.py") == "x = 2  # $Id$"
    assert git(repo, "cat-file", "-p", f"{sha}:hidden_impl.py") == "y = 1"


def test_the_staged_tree_is_checked_out_fresh_with_deletions_listed(repo):
    ws = Workspace.create(repo, "fix-x", None, "codebot/")
    try:
        (ws.path / "lib/b.py").unlink()
        (ws.path / "c.py").write_text("z = 3\n")
        ws.stage(["lib/b.py", "c.py"])
        with ws.staged_tree() as tree:
            found = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
        assert found == ["a.py", "c.py"] and ws.staged_deletions() == ["lib/b.py"]
        assert ws.has_staged_change() and ws.base_files() == {"a.py", "lib/b.py"}
    finally:
        ws.cleanup()
