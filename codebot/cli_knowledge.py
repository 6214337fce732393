"""The knowledge commands: learn, knowledge search (registered on `codebot.cli.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from codebot.cli import _echo, _settings, cli
from codebot.render import shown_path

if TYPE_CHECKING:
    from codebot.knowledge import Passage

_INDEX_HELP = "The index file (default: $CODEBOT_KNOWLEDGE_INDEX, else "
_INDEX_HELP += "~/.cache/codebot/knowledge.sqlite)."


def _index_option(fn: Any) -> Any:
    return click.option(
        "--index",
        "index_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help=_INDEX_HELP,
    )(fn)


@cli.command()
@click.argument("repository", metavar="OWNER/REPO")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="How many of the most recently updated closed pull requests to read.",
)
@_index_option
def learn(repository: str, limit: int, index_path: Path | None) -> None:
    """Keep the rules the team stated in OWNER/REPO's code reviews.

    Reads the review comments of its recently closed (merged or not) pull requests through
    the GitHub API ($GITHUB_TOKEN, $GITHUB_API_URL) and adds to the knowledge index those
    that state a rule or a preference ("please use", "we prefer", "always", "never",
    "avoid"...); thanks, LGTM and questions are left out. Later runs on the repository are
    shown the ones that bear on their task, with the comment's URL.
    """
    from codebot import learn as memory
    from codebot.forge import GitHubForge
    from codebot.knowledge import KnowledgeOptions, index_for

    options = KnowledgeOptions.of(_settings({}))
    index, problems = index_for(options, index_path)
    result = memory.learn(GitHubForge.from_env(), repository, index, limit)
    for line in (*problems, *result.index.warnings):
        _echo(f"codebot: {line}", err=True)
    r = result.index
    _echo(
        f"codebot: {result.comments} review comment(s) on {result.pulls} closed pull "
        f"request(s) of {repository}; {len(result.kept)} state a rule or a preference"
    )
    _echo(f"  index: {index.path or 'in memory'} ({r.indexed} added or changed, "
          f"{r.unchanged} unchanged, {r.embedded} embedded)")  # fmt: skip
    for comment in result.kept[:20]:
        _echo(f"  - {memory.rule_cue(comment.body)!r}: {comment.url}")


@cli.group()
def knowledge() -> None:
    """The team knowledge codebot shows the model: design notes, guides, past reviews."""


@knowledge.command("search")
@click.argument("query")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The git repository whose .codebot.yml `knowledge:` is read (at HEAD).",
)
@click.option("--limit", type=click.IntRange(1, 50), default=5, show_default=True)
@_index_option
def search(query: str, repo: Path, limit: int, index_path: Path | None) -> None:
    """Show what a run would be shown for QUERY, and why: the index is brought up to date
    with REPO's knowledge and the operator's (CODEBOT_KNOWLEDGE_DIRS, _REPOS), then each
    passage is listed with its score, its ranks and its source."""
    from dataclasses import replace

    from codebot import config as cfg
    from codebot import knowledge as kn
    from codebot.workspace import read_file_at

    root = repo.resolve()
    settings = cfg.with_repo_file(_settings({}), read_file_at(root, None, ".codebot.yml"))
    options = kn.KnowledgeOptions.of(settings)
    if index_path is not None:
        options = replace(options, index_path=index_path)
    found = kn.prepare(options, kn.RepoAt(root, "HEAD", str(root)))
    for note in found.notes:
        _echo(f"codebot: {note}", err=True)
    _echo(f"query terms: {', '.join(kn.terms(query)) or '(none)'}")
    passages = kn.rank(found, query, limit)
    if not passages:
        _echo("no passage matches")
    for number, passage in enumerate(passages, 1):
        _echo(_shown(number, passage))


def _shown(number: int, p: Passage) -> str:
    why = [f"BM25 rank {p.bm25_rank} ({p.bm25:.2f})" if p.bm25 is not None else "no BM25 match"]
    if p.cosine is not None:
        why.append(f"embeddings rank {p.dense_rank} (cosine {p.cosine:.3f})")
    text = "\n".join(f"   | {shown_path(line)}" for line in p.text.splitlines()[:12])
    heading = f" — {p.heading}" if p.heading else ""
    return f"{number}. {p.source}{heading}\n   score {p.score:.4f}: {'; '.join(why)}\n{text}"
