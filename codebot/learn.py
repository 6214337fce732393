"""Review memory: the rules a team states in code review, kept in the knowledge index.

`codebot learn OWNER/REPO` reads the review comments of recently closed pull requests and
keeps those that state a rule or a preference, each as one passage under its URL. Which
comments state one is decided by their wording, a heuristic (`rule_cue`):

- a statement (a sentence not ending in `?`) with normative wording: always, never, must,
  should, don't / do not, avoid, prefer, "please use", "instead of", "rather than",
  "make sure", "convention"...;
- or a statement that starts with an imperative: Use, Avoid, Prefer, Keep, Never, Always,
  Don't, Make sure, Ensure, Stick to, Follow, Name, Put, Move, Rename.

Quoted lines (`> ...`) and code blocks are not read as the comment's own words, and comments
by bots are skipped. So thanks, "LGTM", approvals and questions ("should we use X?") are
dropped. Comments are added, never pruned: a later `learn` with a smaller --limit does not
forget what an earlier one kept; an edited comment is indexed again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from codebot.knowledge_index import Index, SyncReport
from codebot.knowledge_sources import SourceFile, SourceSet
from codebot.protocols import Forge, PastReviewComment
from codebot.text import clip

MAX_NOTE_CHARS = 2_000
_FENCED = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[ \t]*$", re.MULTILINE | re.DOTALL)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_NORMATIVE = re.compile(
    r"\b(always|never|must(?:n't| not)?|should(?:n't| not)?(?! (?:work|be fine|be ok|pass)\b)|"
    r"don't|do not|avoid|"
    r"(?:we |i )?prefer(?:red|ably)?|please (?:use|don't|do not|avoid|keep|add|remove|make|"
    r"stick|follow|put|move|rename|name|prefer)|instead of|rather than|make sure|"
    r"convention|house style)\b",
    re.IGNORECASE,
)
_IMPERATIVE = re.compile(
    r"^(use|avoid|prefer|keep|never|always|don't|do not|make sure|ensure|stick to|follow|"
    r"name|put|move|rename)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class LearnReport:
    """What `learn` read and kept; `index` says what updating the index did."""

    pulls: int
    comments: int
    kept: tuple[PastReviewComment, ...]
    index: SyncReport


def rule_cue(body: str) -> str | None:
    """The wording that makes `body` a rule or a preference (lowercased), None when it
    states none."""
    for sentence in _SENTENCE.split(_own_words(body)):
        said = sentence.strip().strip("*_").strip()
        if not said or said.endswith("?"):
            continue
        found = _IMPERATIVE.match(said) or _NORMATIVE.search(said)
        if found:
            return found.group(0).lower()
    return None


def _own_words(body: str) -> str:
    """The comment without quoted lines and code blocks (suggestions included)."""
    text = _FENCED.sub("\n", body.replace("\r\n", "\n"))
    return "\n".join(line for line in text.split("\n") if not line.lstrip().startswith(">"))


def keeps(comment: PastReviewComment) -> bool:
    return not comment.author.endswith("[bot]") and rule_cue(comment.body) is not None


def origin(full_name: str) -> str:
    """The index origin of a repository's review memory."""
    return f"reviews:{full_name}"


def notes(full_name: str, comments: Sequence[PastReviewComment]) -> SourceSet:
    """The kept comments as index sources: one passage each, found at its URL."""
    files = tuple(_note(c) for c in comments)
    return SourceSet(origin(full_name), "", "`codebot learn`", files, prune=False)


def _note(comment: PastReviewComment) -> SourceFile:
    body = clip(comment.body.strip(), MAX_NOTE_CHARS)
    state = "merged" if comment.merged else "closed"
    where = f" on {comment.path}" if comment.path else ""
    heading = f"Review comment{where} (pull request #{comment.pull}, {state})"
    stamp = hashlib.sha256(f"{heading}\0{body}".encode()).hexdigest()[:32]
    return SourceFile(comment.url, stamp, lambda: body, "note", heading)


def learn(forge: Forge, full_name: str, index: Index, limit: int = 50) -> LearnReport:
    """Read the review comments of the `limit` most recently closed pull requests of
    `full_name` and add those that state rules to `index`."""
    comments = forge.past_review_comments(full_name, limit)
    kept = tuple(c for c in comments if keeps(c) and c.url)
    report = index.sync(notes(full_name, kept))
    return LearnReport(len({c.pull for c in comments}), len(comments), kept, report)
