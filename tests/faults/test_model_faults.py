"""Faults of the LLM endpoint, seen from a whole run: the real openai client talks to a
scripted server over a socket, the checks run in the real sandbox.

Each fault either heals within the retry budget (the run goes on and passes) or ends the run
with a recorded `model_error` whose detail names the cause: never a traceback, a leftover
container or a branch.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import DryRun, codebot_branches, write_spec
from tests.support.model_server import ScriptedModelServer, Turn
from tests.test_end_to_end import MINUTES_DIFF, VALIDATION_EDIT

pytestmark = pytest.mark.docker

FAST = {"retry-after-ms": "10"}  # keeps the SDK's backoff out of the suite's run time
TRUNCATED = '{"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"message": {"con'
NO_CHOICES = {"id": "chatcmpl-2", "object": "chat.completion", "choices": []}
EMPTY_CONTENT = {
    "id": "chatcmpl-3",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                 "finish_reason": "length"}],
}  # fmt: skip
NO_EDIT_REPLY = "The bug is in duration.py: `_UNITS` lacks the minutes unit. Add it there."


def retry_counts(server: ScriptedModelServer) -> list[str]:
    """How the client numbered each request it sent (0 = a first try, n = its n-th retry)."""
    return [r.headers.get("x-stainless-retry-count", "?") for r in server.requests]


def test_request_timeout_is_retried_a_bounded_number_of_times_then_stops_the_run(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client
):
    model_server.script(*[Turn.reply(MINUTES_DIFF, delay_s=5)] * 2)

    run = dry_run(CODEBOT_MODEL_TIMEOUT="0.5", CODEBOT_MODEL_RETRIES="1")

    record = run.assert_nothing_lost(docker_client, "model_error")
    assert record["stop_detail"] == (
        f"no reply from the LLM endpoint at {model_server.base_url} within 0.5s (2 attempts) — "
        "raise CODEBOT_MODEL_TIMEOUT or use a faster model"
    )
    assert retry_counts(model_server) == ["0", "1"]
    assert record["iterations"] == []


def test_rate_limit_waits_the_retry_after_seconds_then_the_run_continues_and_passes(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client
):
    model_server.script(
        Turn.error(429, "rate limit reached", headers={"retry-after": "1"}),
        MINUTES_DIFF,
        VALIDATION_EDIT,
    )

    run = dry_run(CODEBOT_MODEL_RETRIES="1")

    record = run.assert_nothing_lost(docker_client, "passed")
    assert retry_counts(model_server) == ["0", "1", "0"]
    # The first call's latency spans the 429, the wait it asked for, and the retry.
    assert record["iterations"][0]["model_s"] >= 1.0


def test_server_errors_are_retried_a_bounded_number_of_times_then_stop_the_run(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client
):
    model_server.script(*[Turn.error(503, "the model is overloaded", headers=FAST)] * 3)

    run = dry_run(CODEBOT_MODEL_RETRIES="2")

    record = run.assert_nothing_lost(docker_client, "model_error")
    assert retry_counts(model_server) == ["0", "1", "2"]  # retries + 1 requests, no more
    assert record["stop_detail"].startswith(
        f"the LLM endpoint at {model_server.base_url} failed with HTTP 503 after 3 attempts: "
        "the model is overloaded — "
    )


def test_dropped_connection_is_retried_and_the_run_continues_and_passes(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client
):
    model_server.script(Turn.drop_connection(), MINUTES_DIFF, VALIDATION_EDIT)

    run = dry_run(CODEBOT_MODEL_RETRIES="1")

    record = run.assert_nothing_lost(docker_client, "passed")
    assert retry_counts(model_server) == ["0", "1", "0"]
    assert [i["reply"] for i in record["iterations"]] == [MINUTES_DIFF, VALIDATION_EDIT]
    assert run.outcome.branch == "codebot/parse-duration-minutes"


def test_truncated_and_empty_replies_are_asked_again_and_the_run_continues(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client
):
    model_server.script(Turn.raw(TRUNCATED), Turn.json(NO_CHOICES), MINUTES_DIFF, VALIDATION_EDIT)

    run = dry_run(CODEBOT_MODEL_RETRIES="2")

    record = run.assert_nothing_lost(docker_client, "passed")
    assert [i["reply"] for i in record["iterations"]] == [MINUTES_DIFF, VALIDATION_EDIT]
    assert len(model_server.requests) == 4


def test_unusable_replies_that_persist_stop_the_run_with_their_cause(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client
):
    model_server.script(Turn.raw(TRUNCATED), Turn.json(NO_CHOICES), Turn.json(EMPTY_CONTENT))

    run = dry_run(CODEBOT_MODEL_RETRIES="2")

    record = run.assert_nothing_lost(docker_client, "model_error")
    assert record["stop_detail"].startswith(
        f"the LLM endpoint at {model_server.base_url} sent 3 unusable replies "
        "(last: empty message content, finish_reason=length) — "
    )
    assert len(model_server.requests) == 3


def test_replies_without_edits_are_taught_the_format_and_end_at_max_iterations_with_no_branch(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client, tmp_path
):
    model_server.script(NO_EDIT_REPLY, NO_EDIT_REPLY)

    run = dry_run(spec=write_spec(tmp_path, max_iterations=2))

    record = run.assert_nothing_lost(docker_client, "max_iterations")
    told = model_server.requests[1].messages
    assert told[-2] == {"role": "assistant", "content": NO_EDIT_REPLY}
    assert "<<<<<<< SEARCH" in told[-1]["content"] and "```diff" in told[-1]["content"]
    assert [(i["number"], i["decision"], i["checks"]) for i in record["iterations"]] == [
        (1, "retry", []),
        (2, "retry", []),
    ]
    # Nothing changed, so there is nothing to commit and nothing to review.
    assert record["files_changed"] == [] and record["head_commit"] is None
    assert run.outcome.branch is None and not codebot_branches(run.repo)
