"""OpenAIModel against a scripted OpenAI-compatible server: the real openai client over a
real socket, nothing patched."""

from __future__ import annotations

import json
import socket
import time
import traceback
import urllib.request
from dataclasses import replace

import pytest

from codebot.config import ModelConfig
from codebot.errors import ModelError
from codebot.llm import OpenAIModel
from codebot.records import Message
from codebot.tokens import estimate_tokens
from tests.support.model_server import ScriptedModelServer, Turn

FAST = {"retry-after-ms": "1"}
ASK = [Message("user", "fix the bug")]
# JSON may escape a lone surrogate, which Python decodes into a str no codec can encode.
LONE_SURROGATE_REPLY = (
    '{"choices": [{"index": 0, "finish_reason": "stop",'
    ' "message": {"role": "assistant", "content": "fix \\ud800 here"}}]}'
)


def config_for(server: ScriptedModelServer, **changes: object) -> ModelConfig:
    base = ModelConfig(
        name="test-model", base_url=server.base_url, api_key="sk-test", timeout_s=5, max_retries=2
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def model_for(server: ScriptedModelServer, **changes: object) -> OpenAIModel:
    return OpenAIModel(config_for(server, **changes))


def free_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def error_from(model: OpenAIModel, messages: list[Message] = ASK) -> ModelError:
    with pytest.raises(ModelError) as caught:
        model.complete(messages)
    return caught.value


# --- replies -------------------------------------------------------------------------------


def test_reply_text_and_usage_are_returned(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.reply("here is the patch", usage=(120, 30)))

    completion = model_for(model_server).complete(ASK)

    assert completion.text == "here is the patch"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (120, 30)
    assert completion.model == "test-model"
    assert completion.attempts == 1
    assert 0 < completion.latency_s < 5


def test_messages_are_sent_in_order_with_model_and_temperature(
    model_server: ScriptedModelServer,
) -> None:
    model_server.script("ok")
    conversation = [
        Message("system", "you are codebot"),
        Message("user", "fix it"),
        Message("assistant", "patch 1"),
        Message("user", "tests still fail"),
    ]

    model_for(model_server, temperature=0.2, max_output_tokens=321).complete(conversation)

    (sent,) = model_server.requests
    assert sent.messages == [{"role": m.role, "content": m.content} for m in conversation]
    assert sent.body["model"] == "test-model"
    assert sent.body["temperature"] == 0.2
    assert sent.body["max_tokens"] == 321
    assert sent.body["seed"] == 0
    assert sent.headers["authorization"] == "Bearer sk-test"


def test_without_an_api_key_a_placeholder_is_sent(model_server: ScriptedModelServer) -> None:
    model_server.script("ok")

    model_for(model_server, api_key="").complete(ASK)

    assert model_server.requests[0].headers["authorization"] == "Bearer not-needed"


def test_missing_usage_is_estimated_from_length(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.reply("12345678", with_usage=False))

    completion = model_for(model_server).complete([Message("user", "0123456789")])

    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, 2)


def test_estimate_tokens_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert [estimate_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]


def test_a_lone_surrogate_in_a_reply_becomes_a_replacement_character(
    model_server: ScriptedModelServer,
) -> None:
    model_server.script(Turn.raw(LONE_SURROGATE_REPLY))

    completion = model_for(model_server).complete(ASK)

    assert completion.text == "fix \ufffd here"


def test_a_reply_that_had_a_lone_surrogate_can_be_sent_back_as_history(
    model_server: ScriptedModelServer,
) -> None:
    model_server.script(Turn.raw(LONE_SURROGATE_REPLY), "ok")
    model = model_for(model_server)
    first = model.complete(ASK)

    second = model.complete([*ASK, Message("assistant", first.text), Message("user", "again")])

    assert second.text == "ok"
    assert model_server.requests[1].messages[1]["content"] == "fix \ufffd here"


# --- retries the SDK does --------------------------------------------------------------------


def test_429_then_success_retries_and_succeeds(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.error(429, "slow down", headers=FAST), "ok")

    completion = model_for(model_server).complete(ASK)

    assert completion.text == "ok"
    assert len(model_server.requests) == 2


def test_retry_after_ms_sets_the_wait(model_server: ScriptedModelServer) -> None:
    # The SDK's own first backoff is at most 0.5 s; waiting longer proves the header counted.
    model_server.script(Turn.error(429, headers={"retry-after-ms": "700"}), "ok")

    started = time.monotonic()
    model_for(model_server).complete(ASK)

    assert time.monotonic() - started >= 0.7


def test_rate_limit_after_retries_names_the_attempts(model_server: ScriptedModelServer) -> None:
    model_server.script(*[Turn.error(429, headers=FAST)] * 3)

    error = error_from(model_for(model_server, max_retries=2))

    assert (
        error.cause
        == f"rate limited by the LLM endpoint at {model_server.base_url} after 3 attempts"
    )
    assert error.fix == "lower concurrency or raise the limit"


def test_a_retry_after_beyond_two_minutes_is_not_waited_out(
    model_server: ScriptedModelServer,
) -> None:
    model_server.script(Turn.error(429, headers={"retry-after": "600"}))

    error = error_from(model_for(model_server, max_retries=2))

    assert error.cause.endswith("after 1 attempt")


def test_5xx_retries_then_gives_clear_error(model_server: ScriptedModelServer) -> None:
    model_server.script(*[Turn.error(503, "engine overloaded", headers=FAST)] * 3)

    error = error_from(model_for(model_server, max_retries=2))

    assert len(model_server.requests) == 3
    assert "HTTP 503 after 3 attempts: engine overloaded" in error.cause
    assert "\n" not in error.one_line()


def test_connection_reset_is_retried(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.drop_connection(), "ok")

    completion = model_for(model_server).complete(ASK)

    assert completion.text == "ok"
    assert len(model_server.requests) == 2


def test_timeout_is_enforced(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.reply("too late", delay_s=3))

    started = time.monotonic()
    error = error_from(model_for(model_server, timeout_s=0.3, max_retries=0))

    assert time.monotonic() - started < 2
    assert error.cause == (
        f"no reply from the LLM endpoint at {model_server.base_url} within 0.3s (1 attempt)"
    )


# --- malformed replies, retried here ---------------------------------------------------------


def test_malformed_json_reply_is_retried(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.raw('{"choices": [{"mess'), "recovered")

    completion = model_for(model_server).complete(ASK)

    assert completion.text == "recovered"
    assert completion.attempts == 2


def test_empty_choices_then_success(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.json({"object": "chat.completion", "choices": []}), "ok")

    completion = model_for(model_server).complete(ASK)

    assert completion.text == "ok"
    assert completion.attempts == 2


def test_html_from_a_proxy_is_retried(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.raw("<html>bad gateway</html>", content_type="text/html"), "ok")

    assert model_for(model_server).complete(ASK).text == "ok"


def test_tokens_spent_on_unusable_replies_are_counted(model_server: ScriptedModelServer) -> None:
    empty = {"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 7}}
    model_server.script(Turn.json(empty), Turn.reply("ok", usage=(100, 1)))

    completion = model_for(model_server).complete(ASK)

    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (200, 8)


def test_blank_content_is_retried(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.reply(" \n"), "ok")

    completion = model_for(model_server).complete(ASK)

    assert (completion.text, completion.attempts) == ("ok", 2)


def test_null_content_until_retries_are_spent_gives_clear_error(
    model_server: ScriptedModelServer,
) -> None:
    null = {
        "choices": [{"message": {"role": "assistant", "content": None}, "finish_reason": "length"}]
    }
    model_server.script(Turn.json(null), Turn.json(null))

    error = error_from(model_for(model_server, max_retries=1))

    assert error.cause == (
        f"the LLM endpoint at {model_server.base_url} sent 2 unusable replies "
        "(last: empty message content, finish_reason=length)"
    )


# --- errors that are not retried -------------------------------------------------------------


def test_bad_api_key_gives_one_line_cause_without_the_key(
    model_server: ScriptedModelServer,
) -> None:
    secret = "sk-wrong-SECRET-0123456789"
    model_server.require_api_key = "sk-right"

    error = error_from(model_for(model_server, api_key=secret))

    assert error.cause == "the endpoint rejected the API key (401)"
    assert error.fix == "check OPENAI_API_KEY"
    assert len(model_server.requests) == 1
    assert error.__cause__ is None and error.__context__ is None
    shown = "".join(traceback.format_exception(error)) + repr(error) + error.one_line()
    assert secret not in shown


def test_a_key_echoed_in_an_error_detail_is_blanked(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.error(500, "upstream refused key sk-test for user", headers=FAST))

    error = error_from(model_for(model_server, max_retries=0))

    assert "upstream refused key [REDACTED] for user" in error.cause
    assert "sk-test" not in error.one_line()


def test_unreachable_endpoint_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    model = OpenAIModel(ModelConfig(name="m", base_url=url, max_retries=0))

    error = error_from(model)

    assert error.cause == f"cannot reach the LLM endpoint at {url}"
    assert error.fix == "check OPENAI_BASE_URL / --base-url and that the server is running"


def test_unknown_model_names_model_and_url(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.error(404, "The model `nope` does not exist", code="model_not_found"))

    error = error_from(model_for(model_server, name="nope"))

    assert error.cause == f"model 'nope' not found at {model_server.base_url}"
    assert error.fix == "check CODEBOT_MODEL / --model"


def test_base_url_without_v1_says_the_path_is_wrong() -> None:
    with ScriptedModelServer() as server:
        root = server.base_url.removesuffix("/v1")
        error = error_from(OpenAIModel(ModelConfig(name="m", base_url=root, max_retries=0)))

    assert error.cause == f"{root}/chat/completions not found (404)"
    assert "/v1" in error.fix


@pytest.mark.parametrize(
    "refusal",
    [
        Turn.error(400, "maximum context length is 4096 tokens", code="context_length_exceeded"),
        Turn.error(400, "the request exceeds the available context size, try increasing it"),
    ],
    ids=["openai-code", "llama.cpp-wording"],
)
def test_context_length_error_is_named(model_server: ScriptedModelServer, refusal: Turn) -> None:
    model_server.script(refusal)

    error = error_from(model_for(model_server))

    assert error.cause == "the prompt does not fit the context window of model 'test-model' (400)"


def test_other_bad_requests_show_the_servers_reason(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.error(400, "Invalid 'messages[0].role': 'robot'"))

    error = error_from(model_for(model_server))

    assert error.cause.endswith(
        "refused the request (HTTP 400): Invalid 'messages[0].role': 'robot'"
    )
    assert len(model_server.requests) == 1


# OpenAI's wording for its reasoning models (o-series, gpt-5), which refuse these options.
NO_MAX_TOKENS = Turn.error(
    400,
    "Unsupported parameter: 'max_tokens' is not supported with this model. "
    "Use 'max_completion_tokens' instead.",
    code="unsupported_parameter",
)
NO_TEMPERATURE = Turn.error(
    400,
    "Unsupported value: 'temperature' does not support 0.0 with this model. "
    "Only the default (1) value is supported.",
    code="unsupported_value",
)


def test_a_model_refusing_max_tokens_and_temperature_gets_the_request_without_them(
    model_server: ScriptedModelServer,
) -> None:
    model_server.script(NO_MAX_TOKENS, NO_TEMPERATURE, "patch", "second")
    model = model_for(model_server, max_output_tokens=777)

    assert model.complete(ASK).text == "patch"
    assert model.complete(ASK).text == "second"  # remembered: no refusal the second time

    bodies = [r.body for r in model_server.requests]
    assert [
        ("max_tokens" in b, "max_completion_tokens" in b, "temperature" in b) for b in bodies
    ] == [
        (True, False, True),
        (False, True, True),
        (False, True, False),
        (False, True, False),
    ]
    assert bodies[-1]["max_completion_tokens"] == 777 and bodies[-1]["seed"] == 0
    assert model.adjustments == [
        "max_tokens sent as max_completion_tokens",
        "temperature left out (the model refused 0.0)",
    ]


def test_a_refused_option_named_only_in_the_param_field_is_dropped(
    model_server: ScriptedModelServer,
) -> None:
    model_server.script(Turn.error(400, "bad request", param="seed"), "ok")
    model = model_for(model_server)

    assert model.complete(ASK).text == "ok"
    assert "seed" not in model_server.requests[1].body
    assert model.adjustments == ["seed left out (the model refused 0)"]


def test_credentials_in_the_base_url_are_not_shown() -> None:
    port = free_port()
    url = f"http://user:hunter2@127.0.0.1:{port}/v1"

    error = error_from(OpenAIModel(ModelConfig(name="m", base_url=url, max_retries=0)))

    assert "hunter2" not in error.one_line()
    assert f"http://127.0.0.1:{port}/v1" in error.cause


# --- cost -------------------------------------------------------------------------------------


def test_cost_from_configured_prices(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.reply("ok", usage=(1000, 500)))
    model = model_for(model_server, price_input_per_mtok=1.0, price_output_per_mtok=2.0)

    completion = model.complete(ASK)

    assert completion.cost_usd == pytest.approx(0.002)


def test_cost_from_list_price_of_a_known_model_snapshot(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.reply("ok", usage=(1_000_000, 1_000_000)))

    completion = model_for(model_server, name="gpt-4o-mini-2024-07-18").complete(ASK)

    assert completion.cost_usd == pytest.approx(0.15 + 0.60)


def test_unknown_model_cost_is_none(model_server: ScriptedModelServer) -> None:
    model_server.script(Turn.reply("ok", usage=(1000, 500)))

    assert model_for(model_server, name="qwen2.5-coder:7b").complete(ASK).cost_usd is None


# --- the double itself is strict ---------------------------------------------------------------


def test_unscripted_request_fails_loudly() -> None:
    with ScriptedModelServer() as server:
        error = error_from(OpenAIModel(config_for(server)))

    assert "unscripted request" in error.cause
    assert len(server.unscripted) == 1
    with pytest.raises(AssertionError, match="1 unscripted request"):
        server.assert_done()


def test_unused_turns_fail_assert_done() -> None:
    with ScriptedModelServer() as server:
        server.script("first", "never asked for")
        OpenAIModel(config_for(server)).complete(ASK)

    with pytest.raises(AssertionError, match="1 scripted turn"):
        server.assert_done()


def test_server_lists_its_model_on_loopback_only(model_server: ScriptedModelServer) -> None:
    assert model_server.base_url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(model_server.base_url + "/models", timeout=5) as response:
        listing = json.load(response)

    assert [m["id"] for m in listing["data"]] == ["test-model"]
