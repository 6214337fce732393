"""The README's provider recipes (section "Providers"): the settings each documents reach a
local server as the URL path, query and headers that provider expects, through the real
client (codebot.llm on the openai SDK) over a socket.

The server answers chat completions and model listings under any prefix, as OpenAI, Azure,
vLLM, Ollama, llama.cpp and OpenRouter each do under theirs, and records every request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from codebot import config as cfg
from codebot.llm import OpenAIModel
from codebot.records import Message


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class ProviderServer:
    """Answers `POST <prefix>/chat/completions` and `GET <prefix>/models` (except under an
    Azure deployment path, which has no listing: 404 as Azure answers)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen = owner.record(self, None)
                if seen.path.endswith("/models") and "/deployments/" not in seen.path:
                    self.answer(200, {"object": "list", "data": [{"id": "served-model"}]})
                else:
                    self.answer(404, {"error": {"message": "Resource not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                seen = owner.record(self, json.loads(self.rfile.read(length)))
                if not seen.path.endswith("/chat/completions"):
                    self.answer(404, {"error": {"message": "Resource not found"}})
                    return
                message = {"role": "assistant", "content": "OK"}
                usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
                self.answer(200, {"choices": [{"message": message}], "usage": usage})

            def answer(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def record(self, handler: BaseHTTPRequestHandler, body: Any) -> Seen:
        parts = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        seen = Seen(handler.command, parts.path, dict(parse_qsl(parts.query)), headers, body)
        self.seen.append(seen)
        return seen

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def provider() -> Iterator[ProviderServer]:
    server = ProviderServer()
    yield server
    server.stop()


@dataclass(frozen=True)
class Recipe:
    """One README row: the base URL (its scheme and host become the local server's), key
    and model; and what the provider must receive."""

    base_url: str
    key: str
    model: str
    path: str
    query: dict[str, str]
    auth: tuple[str, str]  # the header that carries the key, and its value
    listed: bool = True


RECIPES = {
    "openai": Recipe("https://api.openai.com/v1", "sk-test", "gpt-4.1-mini",
                     "/v1/chat/completions", {}, ("authorization", "Bearer sk-test")),
    "azure-v1": Recipe("https://res.openai.azure.com/openai/v1", "az-key", "my-deployment",
                       "/openai/v1/chat/completions", {}, ("authorization", "Bearer az-key")),
    "azure-deployment": Recipe(
        "https://res.openai.azure.com/openai/deployments/my-deployment?api-version=2024-10-21",
        "az-key", "my-deployment", "/openai/deployments/my-deployment/chat/completions",
        {"api-version": "2024-10-21"}, ("api-key", "az-key"), listed=False,
    ),
    "vllm": Recipe("http://gpu-box:8000/v1", "vllm-key", "Qwen/Qwen2.5-Coder-7B-Instruct",
                   "/v1/chat/completions", {}, ("authorization", "Bearer vllm-key")),
    "ollama": Recipe("http://localhost:11434/v1", "", "qwen2.5-coder:14b",
                     "/v1/chat/completions", {}, ("authorization", "Bearer not-needed")),
    "llama.cpp": Recipe("http://localhost:8080/v1", "", "local",
                        "/v1/chat/completions", {}, ("authorization", "Bearer not-needed")),
    "openrouter": Recipe("https://openrouter.ai/api/v1", "sk-or-test", "openai/gpt-4.1-mini",
                         "/api/v1/chat/completions", {}, ("authorization", "Bearer sk-or-test")),
}  # fmt: skip


def local(url: str, server: ProviderServer) -> str:
    parts = urlsplit(url)
    return server.url + parts.path + (f"?{parts.query}" if parts.query else "")


def settings_of(recipe: Recipe, server: ProviderServer, **env: str) -> cfg.Settings:
    """The settings as the README says to give them: environment variables only."""
    given = {"OPENAI_BASE_URL": local(recipe.base_url, server), "CODEBOT_MODEL": recipe.model}
    if recipe.key:
        given["OPENAI_API_KEY"] = recipe.key
    return cfg.from_env({**given, "CODEBOT_MODEL_RETRIES": "0", **env})


@pytest.mark.parametrize("name", list(RECIPES))
def test_each_recipe_reaches_the_provider_as_it_expects(name: str, provider) -> None:
    recipe = RECIPES[name]
    model = OpenAIModel(cfg.require_model(settings_of(recipe, provider)))
    reply = model.complete([Message("user", "hello")])
    assert reply.text == "OK"
    (sent,) = [s for s in provider.seen if s.method == "POST"]
    assert sent.path == recipe.path
    assert sent.query == recipe.query
    header, value = recipe.auth
    assert sent.headers.get(header) == value
    other = "api-key" if header == "authorization" else "authorization"
    assert other not in sent.headers  # the key travels one way only
    assert sent.body["model"] == recipe.model
    assert model.models() == (["served-model"] if recipe.listed else None)


def test_an_azure_deployment_url_shows_without_its_query_in_messages(provider) -> None:
    model = OpenAIModel(settings_of(RECIPES["azure-deployment"], provider).model)
    assert model.url == f"{provider.url}/openai/deployments/my-deployment"


def test_other_query_parameters_of_a_base_url_go_with_every_request(provider) -> None:
    recipe = RECIPES["vllm"]
    settings = settings_of(recipe, provider, OPENAI_BASE_URL=f"{provider.url}/v1?tenant=team-a")
    OpenAIModel(settings.model).complete([Message("user", "hello")])
    (sent,) = [s for s in provider.seen if s.method == "POST"]
    assert (sent.path, sent.query) == ("/v1/chat/completions", {"tenant": "team-a"})


def test_a_known_model_is_priced_and_an_unknown_one_says_unknown(provider) -> None:
    known = OpenAIModel(settings_of(RECIPES["openai"], provider).model)
    assert known.complete([Message("user", "hi")]).cost_usd == pytest.approx(
        (1000 * 0.40 + 500 * 1.60) / 1e6
    )
    unknown = OpenAIModel(settings_of(RECIPES["openrouter"], provider).model)
    assert unknown.complete([Message("user", "hi")]).cost_usd is None
    local_prices = settings_of(
        RECIPES["ollama"], provider, CODEBOT_PRICE_INPUT="0", CODEBOT_PRICE_OUTPUT="0"
    )
    assert OpenAIModel(local_prices.model).complete([Message("user", "hi")]).cost_usd == 0.0
