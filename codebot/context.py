"""What the model sees: the file list, the files that matter most, within a token budget.

Order of priority: files the spec names, files named in the failing output, files whose name
the task text mentions, then the remaining small source files. Deterministic for a given tree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from codebot import prompts
from codebot.records import EditOutcome
from codebot.spec import TaskSpec
from codebot.tokens import estimate_tokens

MAX_TREE_ENTRIES = 400
MAX_FILE_BYTES = 60_000
# Anything a model could read as the wrapper's tag: any case, blanks on either side of `/`.
_TAG = re.compile(r"(?i)<\s*/?\s*untrusted")
SOURCE_SUFFIXES = {".py", ".pyi", ".toml", ".cfg", ".ini", ".txt", ".md", ".yml", ".yaml", ".json"}


@dataclass(frozen=True)
class Context:
    tree: tuple[str, ...]
    tree_omitted: int
    files: tuple[tuple[str, str], ...]
    omitted: tuple[str, ...]


def gather(
    root: Path, tracked: Sequence[str], spec: TaskSpec, failure_text: str, budget_tokens: int
) -> Context:
    tree = tuple(sorted(tracked)[:MAX_TREE_ENTRIES])
    budget = budget_tokens - estimate_tokens("\n".join(tree))
    files: list[tuple[str, str]] = []
    omitted: list[str] = []
    for path in _candidates(tracked, spec, failure_text):
        text = _read_text(root / path)
        if text is None:
            continue
        cost = estimate_tokens(text) + 20
        if cost > budget:
            omitted.append(path)
            continue
        files.append((path, text))
        budget -= cost
    return Context(tree, max(0, len(tracked) - len(tree)), tuple(files), tuple(omitted))


def _candidates(tracked: Sequence[str], spec: TaskSpec, failure_text: str) -> list[str]:
    known = set(tracked)
    task_text = f"{spec.title}\n{spec.description}\n" + "\n".join(spec.acceptance)
    ordered: list[str] = [f for f in spec.files if f in known]
    ordered += mentioned_paths(failure_text, tracked)
    ordered += [f for f in sorted(tracked) if _named_in(f, task_text)]
    ordered += [f for f in sorted(tracked) if PurePosixPath(f).suffix == ".py"]
    ordered += [f for f in sorted(tracked) if PurePosixPath(f).suffix in SOURCE_SUFFIXES]
    return list(dict.fromkeys(ordered))


def mentioned_paths(text: str, tracked: Sequence[str]) -> list[str]:
    """Tracked files named in `text` (tracebacks, lint output), in order of first mention."""
    found: dict[str, int] = {}
    for path in tracked:
        pos = text.find(path)
        if pos >= 0:
            found[path] = pos
    return sorted(found, key=lambda p: found[p])


def _named_in(path: str, text: str) -> bool:
    p = PurePosixPath(path)
    return bool(re.search(rf"\b{re.escape(p.name)}\b|\b{re.escape(p.stem)}\(", text))


def _read_text(path: Path) -> str | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def system_prompt() -> str:
    return prompts.text("system.md")


def untrusted(text: str) -> str:
    """Neutralise anything in untrusted text that could close the <untrusted> wrapper."""
    return _TAG.sub(lambda m: "&lt;" + m.group(0)[1:], text)


def shown_path(path: str) -> str:
    """A file name as the model may see it: control and format characters (newlines, escape
    sequences, bidi overrides) spelled out as escapes, so a name cannot forge lines."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if unicodedata.category(ch) in ("Cc", "Cf")
        else ch
        for ch in path
    )


def _names(paths: Sequence[str]) -> list[str]:
    return [untrusted(shown_path(p)) for p in paths]


def check_output(text: str) -> str:
    """Check output for the model: written by the repository's code, so untrusted too."""
    if not text:
        return ""
    body = untrusted(text if text.endswith("\n") else text + "\n")
    return '<untrusted source="check output">\n' + body + "</untrusted>\n"


def render_files(files: Sequence[tuple[str, str]]) -> str:
    if not files:
        return ""
    parts = []
    for path, text in files:
        fence = "`" * max(3, _longest_backtick_run(text) + 1)
        body = text if text.endswith("\n") or not text else text + "\n"
        parts.append(f"{_names([path])[0]}\n{fence}\n{untrusted(body)}{fence}\n")
    return '<untrusted source="repository">\n' + "\n".join(parts) + "</untrusted>\n"


def _longest_backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)


def render_task(spec: TaskSpec, ctx: Context, baseline: str) -> str:
    acceptance = "".join(f"\n- {untrusted(a)}" for a in spec.acceptance)
    note = (
        f", first {len(ctx.tree)} of {len(ctx.tree) + ctx.tree_omitted}" if ctx.tree_omitted else ""
    )
    files = render_files(ctx.files)
    if ctx.omitted:
        files += f"\n(Not shown for space: {', '.join(_names(ctx.omitted))}.)\n"
    return prompts.render(
        "task.md",
        source=untrusted(spec.source or "spec"),
        title=untrusted(spec.title),
        description=untrusted(spec.description.strip()),
        acceptance=("\nAcceptance criteria:" + acceptance) if acceptance else "",
        tree_note=note,
        tree="\n".join(_names(ctx.tree)),
        files=files or "(none)\n",
        baseline=baseline,
    )


def render_feedback(
    iteration: int,
    max_iterations: int,
    outcomes: Sequence[EditOutcome],
    checks: str,
    files: Sequence[tuple[str, str]],
) -> str:
    edits = "\n".join(
        f"- block {o.block} ({_names([o.path])[0]}): {o.status}. {untrusted(o.detail)}"
        for o in outcomes
    )
    if edits:  # a refusal quotes the file's closest lines: repository content
        edits = f'<untrusted source="edit results">\n{edits}\n</untrusted>'

    shown = ""
    if files:
        shown = "Current content of the files you changed:\n\n" + render_files(files) + "\n"
    return prompts.render(
        "feedback.md",
        iteration=iteration,
        max_iterations=max_iterations,
        edits=(edits + "\n") if edits else "",
        checks=checks + ("\n" if checks else ""),
        files=shown,
    )
