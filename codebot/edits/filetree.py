"""`FileTree`: the real `Worktree`, the run's files on disk as the loop reads and edits them.

One object holds the tree's root, its protected globs and its test policy, so the loop cannot
apply an edit without the path and test rules, nor read a file the model must not see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codebot.edits.apply import apply_edits
from codebot.records import Edit, EditOutcome
from codebot.spec import TestsPolicy


@dataclass(frozen=True)
class FileTree:
    """A directory (the clone's work tree, or a test's temp dir), its protected globs, and what
    the model may do to tests; `base_files` (tracked at the base commit) are the "existing" ones."""

    root: Path
    protected: tuple[str, ...]
    tests: TestsPolicy = "may_add"
    base_files: frozenset[str] = frozenset()

    def apply(self, edits: Sequence[Edit]) -> tuple[EditOutcome, ...]:
        """Apply in order, refusing unsafe or protected paths and changes the test policy
        forbids; one outcome per edit."""
        return apply_edits(self.root, edits, self.protected, self.tests, self.base_files)

    def read(self, path: str) -> str | None:
        """A regular file's text (undecodable bytes replaced, as it is only shown to the model);
        None if absent, a link, or outside the root, so nothing outside the repo leaks."""
        full = self._regular_file(path)
        if full is None:
            return None
        try:
            return full.read_text(encoding="utf-8", errors="replace")
        except OSError:  # removed or made unreadable since the check: as good as absent
            return None

    def snapshot(self, paths: Sequence[str]) -> dict[str, bytes | None]:
        """The bytes of each of `paths` (None when not a regular file in the tree)."""
        saved: dict[str, bytes | None] = {}
        for path in paths:
            full = self._regular_file(path)
            saved[path] = full.read_bytes() if full is not None else None
        return saved

    def restore(self, saved: Mapping[str, bytes | None]) -> None:
        """Each path back as `snapshot` saw it; only paths inside the root are touched."""
        root = self.root.resolve()
        for path, data in saved.items():
            full = self.root / path
            if not full.resolve().is_relative_to(root):
                continue
            if data is None:
                if full.is_file() or full.is_symlink():
                    full.unlink()
                continue
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_bytes(data)

    def exists(self, path: str) -> bool:
        """Whether `path` is a regular file in the tree now, by the same rule as `read`."""
        return self._regular_file(path) is not None

    def _regular_file(self, path: str) -> Path | None:
        full = self.root / path
        if (
            full.is_file()
            and not full.is_symlink()
            and full.resolve().is_relative_to(self.root.resolve())
        ):
            return full
        return None
