"""The benchmark's oracle: an OpenAI-compatible chat server that always knows the answer.

`codebot bench --oracle` runs every task against it, so the figures measure the bot's
plumbing (context, edit parsing and applying, checks, the loop) with a model that cannot be
wrong about *what* to change. Its first answer for a task is the reference diff with every
hunk's line numbers drifted, as real models misnumber them; any later answer (once the
conversation holds a reply) is the exact diff. A task the oracle cannot solve is the bot's
failure, not the model's. `OracleServer(wrong_first=N)` is a weaker model for the ladder
benchmark: its first N answers misquote the code (edits the bot refuses), then as above.

Stdlib only, bound to 127.0.0.1, no state beyond the registered tasks: which answer a request
gets depends on the request alone, so replaying a conversation replays the answers.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from codebot.tokens import estimate_tokens

MODEL_NAME = "oracle"
DRIFT_LINES = 3  # how far the first answer's hunk headers are off
_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@(.*)$")


def drift(diff: str, lines: int = DRIFT_LINES) -> str:
    """The diff with every hunk header moved by `lines`; hunks of new files (`-0,0`) stay,
    since a file that does not exist yet has no line to drift from."""

    def moved(match: re.Match[str]) -> str:
        old, old_len, new, new_len, tail = match.groups()
        if int(old) == 0:
            return match.group(0)
        return f"@@ -{int(old) + lines}{old_len or ''} +{int(new) + lines}{new_len or ''} @@{tail}"

    return "\n".join(_HUNK.sub(moved, line) for line in diff.split("\n"))


def reply_text(title: str, diff: str) -> str:
    """An answer as a careful model writes it: one sentence, then the diff in a fence longer
    than any run of backticks inside it (CommonMark), so Markdown in the diff cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", diff)), default=0)
    fence = "`" * max(3, longest + 1)
    body = diff if diff.endswith("\n") else diff + "\n"
    return f"This is the reference change for: {title}\n\n{fence}diff\n{body}{fence}\n"


def answer(
    tasks: dict[str, str],
    messages: list[dict[str, Any]],
    wrong_first: int = 0,
    seed: int | None = None,
    right_seeds: frozenset[int] | None = None,
    applicable: bool = False,
) -> str | None:
    """The reply to a conversation: `wrong_first` wrong answers, then drifted, then exact;
    None when no registered task's title is in the conversation's first user message. With
    `right_seeds` (a model that is right in some samples only, for best-of-N), a request
    whose seed is among them gets the exact change and any other a wrong one: a misquote, or
    with `applicable` an edit that applies and fixes nothing (so its checks run, and fail)."""
    first_user = next((str(m.get("content", "")) for m in messages if m.get("role") == "user"), "")
    title = next((t for t in sorted(tasks, key=len, reverse=True) if t in first_user), None)
    if title is None:
        return None
    answered = sum(m.get("role") == "assistant" for m in messages)
    diff = tasks[title]
    if right_seeds is not None:
        if seed in right_seeds:
            return reply_text(title, diff)
        attempt = 100 * answered + (seed or 0) + 1
        if applicable and (futile := futile_text(title, diff, attempt)):
            return futile
        return wrong_text(title, diff, attempt)
    if answered < wrong_first:
        return wrong_text(title, diff, answered + 1)
    return reply_text(title, diff if answered > wrong_first else drift(diff))


def wrong_text(title: str, diff: str, attempt: int) -> str:
    """A wrong answer as a weak model writes one: an edit of the right file that quotes a
    line the file does not have, so the bot refuses it and nothing changes. Each attempt
    misquotes differently, so none is a resend of an earlier one."""
    path = next((line[6:].strip() for line in diff.split("\n") if line.startswith("+++ b/")), "x")
    return (
        f"I think this fixes: {title}\n\n{path}\n<<<<<<< SEARCH\n"
        f"# a line this file does not have ({attempt})\n=======\n# fixed\n>>>>>>> REPLACE\n"
    )


_COMMENT = {".py": "#", ".sh": "#", ".rb": "#", ".toml": "#", ".yaml": "#", ".yml": "#"}


def futile_text(title: str, diff: str, attempt: int) -> str | None:
    """A wrong answer that applies: a comment added after the longest line the reference's
    first hunk of a changed file keeps or removes (one the file has), fixing nothing. None
    when the diff has no such line."""
    path, old = "", list[str]()
    for line in diff.split("\n"):
        if (line.startswith("--- ") or line.startswith("@@")) and path and old:
            break  # the first hunk of a changed file is read
        if line.startswith("--- "):
            path = "" if line.strip() == "--- /dev/null" else line[6:].strip()
        elif path and line[:1] in (" ", "-") and not line.startswith("--- "):
            old.append(line[1:])
    quoted = max((x for x in old if x.strip()), key=len, default="")
    if not path or not quoted:
        return None
    mark = _COMMENT.get(Path(path).suffix, "//")
    indent = quoted[: len(quoted) - len(quoted.lstrip())]
    return (
        f"I think this fixes: {title}\n\n{path}\n<<<<<<< SEARCH\n{quoted}\n=======\n{quoted}\n"
        f"{indent}{mark} checked ({attempt})\n>>>>>>> REPLACE\n"
    )


class OracleServer:
    """`POST /v1/chat/completions` answers from the registered tasks; `GET /v1/models`
    lists the oracle. Every response closes its connection."""

    def __init__(
        self,
        wrong_first: int = 0,
        right_seeds: frozenset[int] | None = None,
        applicable: bool = False,
    ) -> None:
        self.tasks: dict[str, str] = {}
        self.wrong_first = wrong_first
        self.right_seeds = right_seeds
        self.applicable = applicable
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the oracle server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def register(self, title: str, reference_diff: str) -> None:
        """Answer conversations about the task titled `title` with this diff."""
        with self._lock:
            self.tasks[title] = reference_diff

    def start(self) -> OracleServer:
        handler = type("OracleHandler", (_Handler,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OracleServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reply(self, messages: list[dict[str, Any]], seed: int | None = None) -> str | None:
        with self._lock:
            tasks = dict(self.tasks)
        return answer(tasks, messages, self.wrong_first, seed, self.right_seeds, self.applicable)


class JsonHandler(BaseHTTPRequestHandler):
    """A scripted OpenAI-compatible endpoint's replies: JSON, one request per connection, and
    no retry asked for a request that was wrong (also the peers benchmark's model server)."""

    protocol_version = "HTTP/1.1"

    def send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("connection", "close")
            if status != 200:  # a wrong request stays wrong: the SDK must not repeat it
                self.send_header("x-should-retry", "false")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up; nothing left to tell it
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the benches report from the run records, not from a request log


class _Handler(JsonHandler):
    owner: OracleServer

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]})
        else:
            self.send_json(404, _error(f"unknown path {self.path}"))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if self.path.rstrip("/") != "/v1/chat/completions" or not isinstance(body, dict):
            self.send_json(404, _error(f"unknown path or body: {self.path}"))
            return
        messages = [m for m in body.get("messages", []) if isinstance(m, dict)]
        seed = body.get("seed")
        text = self.owner.reply(messages, seed if isinstance(seed, int) else None)
        if text is None:
            # 422, not 404: the SDK error then quotes this message, which says what is wrong.
            self.send_json(422, _error("the oracle knows no task whose title is in this prompt"))
            return
        self.send_json(200, _completion(text, messages, str(body.get("model", MODEL_NAME))))


def _completion(text: str, messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
    prompt = estimate_tokens("".join(str(m.get("content", "")) for m in messages))
    completion = estimate_tokens(text)
    return {
        "id": f"chatcmpl-oracle-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "oracle_error", "code": None}}
