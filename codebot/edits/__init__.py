"""The model's edits: parse the reply (`parse`, with `fences` and `udiff`), check the paths
(`paths`) and the test policy (`policy`, `testconfig`), apply them (`apply`, matching with
`match`), and `FileTree`, the real `Worktree` the loop edits through. Import from here, not the
modules."""

from codebot.edits.apply import apply_edits
from codebot.edits.filetree import FileTree
from codebot.edits.match import FUZZY_MIN_RATIO
from codebot.edits.parse import ParsedReply, parse_edits
from codebot.edits.paths import refuse_path
from codebot.edits.policy import is_test_path
from codebot.spec import TestsPolicy

__all__ = [
    "FUZZY_MIN_RATIO",
    "FileTree",
    "ParsedReply",
    "TestsPolicy",
    "apply_edits",
    "is_test_path",
    "parse_edits",
    "refuse_path",
]
