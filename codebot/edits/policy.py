"""Test integrity: the model must make the code pass the tests, never make the tests pass.

"Green by cheating" (editing an assertion, deleting a test, a skip marker, a conftest hook, an
`addopts` that deselects) is refused here, before anything is written, so a run can only turn
green by changing the code under test. The operator may loosen it with `tests: may_edit`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from codebot.edits.paths import normalise
from codebot.edits.testconfig import CONFIG_FILES, refuse_config_change
from codebot.spec import TestsPolicy

_TEST_DIRS = frozenset({"test", "tests", "testing", "__tests__", "spec"})
_JS_EXTENSIONS = ("js", "jsx", "ts", "tsx", "mjs", "cjs")
_TEST_NAMES = (
    *("test_*.py", "*_test.py", "tests.py", "conftest.py", "*_test.go"),
    *(f"*.{kind}.{ext}" for kind in ("test", "spec") for ext in _JS_EXTENSIONS),
)
_MARKER = re.compile(
    "|".join(
        (
            r"\bmark\s*\.\s*(?:skip|skipif|xfail)\b",  # @pytest.mark.skip, pytestmark = ...
            r"\bpytest\s*\.\s*(?:skip|xfail|importorskip)\s*\(",
            r"\bfrom\s+(?:pytest|unittest)\b.*\bimport\b.*\b(?:skip|xfail|importorskip)\b",
            r"\bunittest\s*\.\s*skip|\bskipIf\b|\bskipUnless\b|\bexpectedFailure\b",
            r"\bskipTest\s*\(|\bSkipTest\b|\b__test__\s*=\s*False\b",
            r"\b(?:it|describe|test)\s*\.\s*skip\s*\(|\bx(?:it|describe)\s*\(",  # JavaScript
            r"\bt\.Skip(?:Now|f)?\s*\(",  # Go
        )
    )
)
MAX_SHOWN_MARKER = 80  # characters of the offending line quoted back to the model


def is_test_path(path: str) -> bool:
    """Whether `path` is a test file by the common conventions of any language (case-blind,
    as the file system may be): a tests/spec directory, or a test file name."""
    *dirs, name = path.replace("\\", "/").casefold().split("/")
    if any(part in _TEST_DIRS for part in dirs):
        return True
    return any(fnmatchcase(name, pattern) for pattern in _TEST_NAMES)


@dataclass(frozen=True)
class IntegrityRules:
    """One run's policy and the files tracked at its base commit, which make a file "existing"."""

    policy: TestsPolicy = "may_add"
    base_files: frozenset[str] = frozenset()

    @classmethod
    def of(cls, policy: TestsPolicy, base_files: Iterable[str]) -> IntegrityRules:
        """Base paths normalised and case-folded once, so membership is one lookup per edit."""
        return cls(policy, frozenset(_key(path) for path in base_files))

    def refuse_target(self, rel: str, delete: bool) -> str | None:
        """Why `rel` may not be touched at all under this policy, whatever the edit says."""
        if self.policy == "may_edit":
            return None
        name = rel.rsplit("/", 1)[-1]
        if name.casefold() in CONFIG_FILES:
            instead = (
                "define any fixture you need inside your new test file instead"
                if name.casefold() == "conftest.py" and self.policy == "may_add"
                else "leave test configuration alone and fix the code under test"
            )
            return (
                f"refused: {rel} is test configuration ({name}); creating, changing or deleting "
                f"it could make tests pass without fixing the code, so {instead}"
            )
        if not is_test_path(rel):
            return None
        if self.policy == "frozen":
            return (
                f"refused: {rel} is a test file and tests are frozen for this run "
                "(tests: frozen): no test file may be created, changed or deleted; "
                "change the code under test only"
            )
        if _key(rel) in self.base_files:
            verb = "delete" if delete else "change"
            return (
                f"refused: {rel} is an existing test file; the task is to make the code pass its "
                f"tests, not to {verb} them (tests: may_add lets you add new test files only)"
            )
        return None

    def refuse_change(self, rel: str, before: str, after: str | None) -> str | None:
        """Why turning `before` into `after` (None: deleted) is cheating, judged on the whole
        file, so a fuzzy match or a moved line cannot slip a marker past the check."""
        if self.policy == "may_edit":
            return None
        added = _added_marker(before, after or "")
        if added:
            return (
                f"refused: it adds a skip/xfail marker (`{added}`) to {rel}; "
                "fix the code under test instead"
            )
        return refuse_config_change(rel, before, after or "")


def _key(path: str) -> str:
    return normalise(path).casefold()


def _added_marker(before: str, after: str) -> str | None:
    """The first marker line `after` has more often than `before` (stripped, so reindenting
    or moving an existing marker adds nothing), shortened for the refusal."""
    old = Counter(line.strip() for line in before.splitlines() if _MARKER.search(line))
    new = Counter(line.strip() for line in after.splitlines() if _MARKER.search(line))
    line = next(iter(new - old), None)
    if line is None or len(line) <= MAX_SHOWN_MARKER:
        return line
    return line[: MAX_SHOWN_MARKER - 3] + "..."
