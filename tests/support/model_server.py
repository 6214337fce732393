"""A scripted OpenAI-compatible chat server on 127.0.0.1, and the `model_server` fixture.

Tests script what each request gets back (a reply, or a fault as a `Turn`) and then read
what the client sent. It is strict: a request beyond the script gets HTTP 500 and is kept in
`unscripted`, and `assert_done()` (run by the fixture after every test) fails on it, or on
scripted turns the code never asked for. `POST /v1/embeddings` is answered by the server's
`embed` function when a test gives it one (`hashed_embedding` is a deterministic stand-in for
a real model), and is unscripted otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest

__all__ = ["RecordedRequest", "ScriptedModelServer", "Turn", "hashed_embedding", "model_server"]

Embed = Callable[[str], list[float]]
_WORDS = re.compile(r"[a-z0-9]+")
_FUNCTION_WORDS = frozenset(
    ("the", "and", "for", "are", "not", "but", "with", "from", "that", "this", "into", "when")
)


def hashed_embedding(text: str, dims: int = 256) -> list[float]:
    """A deterministic stand-in for an embeddings model: the words of `text` (three letters
    or more, a few function words left out) and their character trigrams, feature-hashed
    (blake2b, signed) into `dims` buckets. Texts sharing words or word parts
    ("money"/"monetary") come out near; it knows no synonyms."""
    vector = [0.0] * dims
    for word in _WORDS.findall(text.lower()):
        if len(word) < 3 or word in _FUNCTION_WORDS:
            continue
        padded = f"<{word}>"
        features = [word] * 2 + [padded[i : i + 3] for i in range(len(padded) - 2)]
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % dims
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    return vector


@dataclass(frozen=True)
class Turn:
    """What one request gets back. Build it with the class methods; a plain string in
    `script()` is shorthand for `Turn.reply(text)`."""

    status: int = 200
    text: str | None = None
    usage: tuple[int, int] | None = None
    with_usage: bool = True
    body: bytes | None = None
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False
    seed: int | None = None  # answers only a request with this seed (None: any request)

    @classmethod
    def reply(
        cls,
        text: str,
        *,
        usage: tuple[int, int] | None = None,
        with_usage: bool = True,
        delay_s: float = 0.0,
        seed: int | None = None,
    ) -> Turn:
        """A normal completion. `usage` is (prompt, completion) tokens; by default it is
        computed from lengths (4 chars a token); `with_usage=False` leaves it out. With a
        `seed`, only a request with that seed gets it (requests sent at once, best-of-N)."""
        return cls(text=text, usage=usage, with_usage=with_usage, delay_s=delay_s, seed=seed)

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "scripted failure",
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Turn:
        """An OpenAI-style error body, e.g. `Turn.error(429, headers={"retry-after-ms": "1"})`."""
        error = {"message": message, "type": "scripted_error", "param": param, "code": code}
        return cls(status=status, body=_json({"error": error}), headers=headers or {})

    @classmethod
    def json(cls, payload: Any, *, status: int = 200) -> Turn:
        """Any JSON payload, e.g. a completion with no choices."""
        return cls(status=status, body=_json(payload))

    @classmethod
    def raw(cls, body: str | bytes, *, content_type: str = "application/json") -> Turn:
        """Bytes as they are, e.g. a truncated JSON document."""
        data = body.encode() if isinstance(body, str) else body
        return cls(body=data, content_type=content_type)

    @classmethod
    def drop_connection(cls) -> Turn:
        """Read the request, then close the socket without answering."""
        return cls(drop=True)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", [])) if isinstance(self.body, dict) else []


class ScriptedModelServer:
    """`POST /v1/chat/completions` answers from the script; `GET /v1/models` lists `model`.

    Binds 127.0.0.1 only, on a free port. Every response closes its connection, so each
    request is independent of the client's connection pool.
    """

    def __init__(
        self,
        model: str = "test-model",
        require_api_key: str | None = None,
        embed: Embed | None = None,
    ) -> None:
        self.model = model
        self.require_api_key = require_api_key
        self.embed = embed  # answers /v1/embeddings; None: those requests are unscripted
        self.requests: list[RecordedRequest] = []
        self.unscripted: list[RecordedRequest] = []
        self._turns: deque[Turn] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the model server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def remaining(self) -> int:
        with self._lock:
            return len(self._turns)

    def script(self, *turns: str | Turn) -> None:
        """Append turns, answered in order, one per chat request."""
        with self._lock:
            self._turns.extend(Turn.reply(t) if isinstance(t, str) else t for t in turns)

    def assert_done(self) -> None:
        with self._lock:
            unscripted, left = list(self.unscripted), len(self._turns)
        assert not unscripted, f"{len(unscripted)} unscripted request(s): {unscripted}"
        assert not left, f"{left} scripted turn(s) were never requested"

    def start(self) -> ScriptedModelServer:
        handler = type("Handler", (_Handler,), {"owner": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _next_turn(self, request: RecordedRequest) -> Turn | None:
        seed = request.body.get("seed") if isinstance(request.body, dict) else None
        with self._lock:
            for turn in self._turns:
                if turn.seed is None or turn.seed == seed:
                    self._turns.remove(turn)
                    return turn
            self.unscripted.append(request)
            return None

    def _unexpected(self, request: RecordedRequest) -> None:
        with self._lock:
            self.unscripted.append(request)

    @property
    def embedded(self) -> list[str]:
        """Every text the embeddings endpoint was asked for, in order."""
        with self._lock:
            asked = [r.body for r in self.requests if r.path.rstrip("/") == "/v1/embeddings"]
        return [t for body in asked if isinstance(body, dict) for t in _inputs(body)]


class _Handler(BaseHTTPRequestHandler):
    owner: ScriptedModelServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        request = self._read()
        if request is None:
            return
        if request.path.rstrip("/") == "/v1/models":
            listing = {"object": "list", "data": [{"id": self.owner.model, "object": "model"}]}
            self._send(200, _json(listing))
        else:
            self.owner._unexpected(request)
            self._send(404, _error("unknown path " + request.path))

    def do_POST(self) -> None:
        request = self._read()
        if request is None:
            return
        if request.path.rstrip("/") == "/v1/embeddings" and self.owner.embed is not None:
            self._send(200, _embeddings(request, self.owner.embed))
            return
        if request.path.rstrip("/") != "/v1/chat/completions":
            self.owner._unexpected(request)
            self._send(404, _error("unknown path " + request.path))
            return
        turn = self.owner._next_turn(request)
        if turn is None:
            # x-should-retry: false keeps the SDK from repeating an already failing test.
            headers = {"x-should-retry": "false"}
            self._send(500, _error("unscripted request"), headers=headers)
            return
        if turn.delay_s and self.owner._stopping.wait(turn.delay_s):
            return
        if turn.drop:
            self.close_connection = True
            return
        body = turn.body if turn.body is not None else _completion(turn, request, self.owner)
        self._send(turn.status, body, turn.content_type, turn.headers)

    def _read(self) -> RecordedRequest | None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        request = RecordedRequest(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        self.owner._record(request)
        expected = self.owner.require_api_key
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if expected is not None and presented != expected:
            # Like OpenAI, quote the key back: the client must not repeat it.
            message = f"Incorrect API key provided: {presented}."
            self._send(401, _error(message, code="invalid_api_key"))
            return None
        return request

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.send_header("connection", "close")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (timeout); nothing left to tell it
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean; tests read `requests` instead


def _completion(turn: Turn, request: RecordedRequest, owner: ScriptedModelServer) -> bytes:
    text = turn.text or ""
    payload: dict[str, Any] = {
        "id": f"chatcmpl-{len(owner.requests)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.body.get("model", owner.model)
        if isinstance(request.body, dict)
        else owner.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }
    if turn.with_usage:
        if turn.usage is not None:
            prompt, completion = turn.usage
        else:
            chars = sum(len(str(m.get("content", ""))) for m in request.messages)
            prompt, completion = math.ceil(chars / 4), math.ceil(len(text) / 4)
        payload["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return _json(payload)


def _inputs(body: Mapping[str, Any]) -> list[str]:
    given = body.get("input")
    return [given] if isinstance(given, str) else [str(t) for t in given or []]


def _embeddings(request: RecordedRequest, embed: Embed) -> bytes:
    """An embeddings reply, as floats or (the SDK's default) base64 of float32s."""
    body = request.body if isinstance(request.body, dict) else {}
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(_inputs(body)):
        vector: Any = embed(text)
        if as_base64:
            vector = base64.b64encode(array("f", vector).tobytes()).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(math.ceil(len(t) / 4) for t in _inputs(body))
    return _json(
        {
            "object": "list",
            "model": body.get("model", ""),
            "data": data,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def _error(message: str, code: str | None = None) -> bytes:
    return _json({"error": {"message": message, "type": "scripted_error", "code": code}})


def _json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


@pytest.fixture
def model_server() -> Iterator[ScriptedModelServer]:
    """A started server; after the test it must have been asked for exactly its script."""
    with ScriptedModelServer() as server:
        yield server
        server.assert_done()
