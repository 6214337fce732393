"""Text from the model or an issue, made safe to show on GitHub.

Whatever a model writes or an issue author types ends up in the PR body (and the commit
message). Shown raw it could hide the rest of the body, or plant a run history, in an HTML
comment; ping people and teams with @-mentions; close unrelated issues through a closing
keyword when the PR merges; or break a table. Callers redact secrets *before* using these:
escaping changes the text, and a changed secret no longer matches the redactor.

Each defusing inserts one U+200B ZERO WIDTH SPACE (`MARK`) and changes nothing else: it is
invisible, works the same in prose, in code spans and in plain-text commit messages (an HTML
entity would show as `&lt;` in the last two), and is how Dependabot and Renovate keep their
mentions and issue references inert on GitHub.
"""

from __future__ import annotations

import re

MARK = "\u200b"

# `<` that would start a tag, an HTML comment, a declaration or a processing instruction,
# and the end of a comment: `<!--x-->` becomes `<\u200b!--x--\u200b>`.
_HTML = re.compile(r"<(?=[A-Za-z/!?])|(?<=--)>")
# `@user` and `@org/team` (GitHub ignores `@` after a letter or digit, as in an e-mail address).
_MENTION = re.compile(r"(?<![A-Za-z0-9])@(?=[A-Za-z0-9])")
# A closing keyword followed, perhaps after `:`, spaces or emphasis, by an issue reference
# (`#12`, `owner/repo#9`, `GH-3` or an issue URL). The mark goes after the keyword's first
# letter: a pattern like `fixes\W+#12` would still match a mark placed after the word.
_CLOSING = re.compile(
    r"(?<![A-Za-z0-9])(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)(?![A-Za-z0-9])"
    r"(?=[^A-Za-z0-9#]{0,12}(?:#\d|[\w.-]+/[\w.-]+#\d|GH-\d|https?://))",
    re.IGNORECASE,
)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def neutralise(text: str) -> str:
    """`text` with HTML comments and tags, mentions and closing keywords defused and lone
    surrogates replaced; line structure is kept. Applying it twice changes nothing more."""
    text = well_formed(text)
    text = _HTML.sub(lambda m: m[0] + MARK if m[0] == "<" else MARK + m[0], text)
    text = _MENTION.sub("@" + MARK, text)
    return _CLOSING.sub(lambda m: m[0][0] + MARK + m[0][1:], text)


def well_formed(text: str) -> str:
    """Lone surrogates (JSON allows `"\\ud800"`) replaced by U+FFFD: they cannot be encoded
    as UTF-8, so they would crash the next request that carries them, or a file write."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def inline(text: str) -> str:
    """Neutralised text on one line, for a heading, list item or sentence."""
    return " ".join(neutralise(text).split())


def cell(text: str) -> str:
    """Neutralised text that stays inside its table cell. GFM splits a row at every `|` not
    directly after a backslash, before any inline parsing, so `\\|` is always one pipe."""
    return inline(text).replace("|", "\\|")


def code_cell(text: str) -> str:
    """Text as a code span inside a table cell: a fence longer than any backtick run in it,
    so the text cannot close the span early, and pipes escaped (GFM unescapes them there)."""
    body = _LINE_BREAK.sub(" ", neutralise(text)).replace("|", "\\|")
    if not body.strip():
        return ""
    fence = "`" * (max((len(run) for run in re.findall("`+", body)), default=0) + 1)
    if body.startswith("`") or body.endswith("`"):
        body = f" {body} "
    return f"{fence}{body}{fence}"


def quoted(text: str) -> list[str]:
    """Neutralised multi-line text as a blockquote: any block it opens (an unclosed `~~~`
    code fence, say) ends with the quote instead of swallowing the rest of the body."""
    return [f"> {line}".rstrip() for line in _LINE_BREAK.split(neutralise(text).strip())]
