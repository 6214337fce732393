"""The model ladder (codebot.ladder): configuration, escalation with a summary, fallback to a
rung's next provider, and per-rung caps, each against scripted model servers on loopback;
then a whole dry-run with the real sandbox in which a cheap rung fails and a strong one fixes."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from codebot import cli_github
from codebot import config as cfg
from codebot.config import ModelConfig
from codebot.errors import ConfigError, ModelError
from codebot.ladder import LadderModel, Rung, engine, summarise
from codebot.ladder_config import parse_ladder
from codebot.llm import OpenAIModel
from codebot.local import RunRequest, execute
from codebot.records import Message
from codebot.redact import Redactor
from tests.support.git_repos import make_repo
from tests.support.model_server import ScriptedModelServer, Turn
from tests.test_loop import STALE, WRONG, block

BASE = ModelConfig(
    name="base-model",
    base_url="http://base.invalid/v1",
    api_key="sk-base-0123456789abcdefghij",
    max_retries=0,
    timeout_s=10,
)
TASK = (Message("system", "rules"), Message("user", "Fix add: it subtracts"))
FIX_NOW = block("    return a * b\n", "    return a + b\n", why="Use + instead of *.")
Servers = Callable[[str], ScriptedModelServer]


@pytest.fixture
def servers() -> Iterator[Servers]:
    """`servers(model)` starts one more scripted server; each must be asked for its script."""
    started: list[ScriptedModelServer] = []

    def start(model: str) -> ScriptedModelServer:
        started.append(ScriptedModelServer(model).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()
    for server in started:
        server.assert_done()


@pytest.fixture
def dead_url() -> str:
    """An endpoint on a loopback port with nothing listening (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def ladder(rungs: list[dict[str, object]], **env: str) -> LadderModel:
    configs = parse_ladder(json.dumps(rungs), BASE, env)
    return LadderModel.of(configs, Redactor.of([BASE.api_key]))


def rung(name: str, server: ScriptedModelServer | str, **fields: object) -> dict[str, object]:
    url = server if isinstance(server, str) else server.base_url
    return {"name": name, "model": f"{name}-model", "base_url": url, "key_env": "", **fields}


def history(*turns: str) -> list[Message]:
    """The loop's history after `turns` (reply, feedback, reply, feedback, ...)."""
    said = [Message("assistant" if n % 2 == 0 else "user", t) for n, t in enumerate(turns)]
    return [*TASK, *said]


# Configuration


def test_a_json_ladder_lists_rungs_with_their_providers_limits_and_caps():
    text = json.dumps([
        {"model": "qwen2.5-coder", "base_url": "http://127.0.0.1:11434/v1", "key_env": "",
         "iterations": 2, "max_cost_usd": 0.0, "price_input": 0, "price_output": 0},
        {"name": "mini", "model": "gpt-4.1-mini", "iterations": 3, "max_cost_usd": 0.05,
         "fallbacks": [{"base_url": "https://backup.example/v1", "key_env": "BACKUP_API_KEY"}]},
        {"model": "gpt-4.1", "max_tokens": 2000},
    ])  # fmt: skip

    local, mini, strong = parse_ladder(text, BASE, {"BACKUP_API_KEY": "sk-backup-0123456789"})

    assert (local.name, local.iterations, local.max_cost_usd) == ("qwen2.5-coder", 2, None)
    assert (local.providers[0].base_url, local.providers[0].api_key) == (
        "http://127.0.0.1:11434/v1", "",
    )  # fmt: skip
    assert (mini.name, mini.iterations, mini.max_cost_usd) == ("mini", 3, 0.05)
    assert [(p.name, p.base_url, p.api_key) for p in mini.providers] == [
        ("gpt-4.1-mini", BASE.base_url, BASE.api_key),
        ("gpt-4.1-mini", "https://backup.example/v1", "sk-backup-0123456789"),
    ]
    assert (strong.iterations, strong.max_cost_usd) == (0, None)  # no limit but the run's
    assert strong.providers[0].max_output_tokens == 2000


def test_the_compact_form_sets_the_same_fields_without_json():
    text = "small iterations=2 max_cost_usd=0.01 price_input=0.1 price_output=0.4; big name=last"

    small, big = parse_ladder(text, BASE, {})

    assert (small.name, small.iterations, small.max_cost_usd) == ("small", 2, 0.01)
    assert small.providers[0].price_input_per_mtok == 0.1
    assert (big.name, big.providers[0].name) == ("last", "big")


def test_a_rung_on_its_own_endpoint_never_gets_the_configured_key():
    (own,) = parse_ladder('[{"model": "m", "base_url": "http://other.example/v1"}]', BASE, {})

    assert own.providers[0].api_key == ""


@pytest.mark.parametrize(
    ("key_env", "env", "message"),
    [
        ("MISSING_API_KEY", {}, "`key_env` MISSING_API_KEY is not set"),
        ("MY_CREDENTIAL", {"MY_CREDENTIAL": "abcdefgh"}, "is not a name codebot redacts"),
    ],
    ids=["unset", "not-redacted"],
)
def test_key_env_must_be_set_and_a_name_the_redactor_masks(key_env, env, message):
    text = json.dumps([{"model": "m", "key_env": key_env}])

    with pytest.raises(ConfigError, match=message):
        parse_ladder(text, BASE, env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"model": "local-model", "max_cost_usd": 0.5}]', "a cost cap needs a price"),
        ('[{"model": "m", "temperature": 1}]', "unknown key `temperature`"),
        ('[{"model": "m"}, {"model": "m"}]', "two rungs are called `m`"),
        ('[{"model": "m", "iterations": "two"}]', "`iterations` must be int"),
        ("[]", "at least one rung"),
        ("m iterations", "`iterations` is not key=value"),
    ],
)
def test_a_ladder_that_cannot_be_honoured_is_refused_before_any_call(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_ladder(text, BASE, {})


def test_codebot_price_settings_price_the_configured_model_only():
    priced = ModelConfig(name="base-model", price_input_per_mtok=1.0, price_output_per_mtok=2.0)

    same, other = parse_ladder("base-model; other-model", priced, {})

    assert same.providers[0].price_input_per_mtok == 1.0
    assert other.providers[0].price_input_per_mtok is None


def test_without_a_ladder_a_run_asks_the_configured_model_as_one_rung():
    model = engine(None, BASE, {}, Redactor())

    assert model.name == "base-model" and [r.name for r in model.rungs] == ["base-model"]


# Escalation


def test_a_rung_escalates_after_its_iterations_and_the_next_gets_a_summary_not_the_diffs(
    servers: Servers,
):
    cheap, strong = servers("cheap-model"), servers("strong-model")
    cheap.script(Turn.reply(WRONG, usage=(1000, 100)), Turn.reply(STALE, usage=(1200, 100)))
    strong.script(Turn.reply(FIX_NOW, usage=(900, 50)))
    model = ladder([
        rung("cheap", cheap, iterations=2, price_input=0.1, price_output=0.4),
        rung("strong", strong, price_input=2.0, price_output=8.0),
    ])  # fmt: skip
    failing = "# Result\n\n### test_calc::test_add\nE       assert 6 == 5\n"

    replies = [
        model.complete(history()),
        model.complete(history(WRONG, failing)),
        model.complete(history(WRONG, failing, STALE, "- block 1 (calc.py): refused. no match")),
    ]

    assert [r.rung for r in replies] == ["cheap", "cheap", "strong"]
    sent = strong.requests[0].messages
    assert [m["role"] for m in sent] == ["system", "user", "user"]  # the task, then the summary
    summary = sent[2]["content"]
    assert "Try *." in summary and "test_calc::test_add" in summary  # what was tried, and failed
    assert "refused. no match" in summary
    assert "<<<<<<< SEARCH" not in summary and "return a * b" not in summary  # no diffs
    assert model.notes == ["rung `cheap` had its 2 call(s): escalated to rung `strong`"]
    usage = {u.name: (u.calls, u.usage.total_tokens, u.cost_usd) for u in model.rung_usage()}
    assert usage == {
        "cheap": (2, 2400, pytest.approx((2200 * 0.1 + 200 * 0.4) / 1e6)),
        "strong": (1, 950, pytest.approx((900 * 2.0 + 50 * 8.0) / 1e6)),
    }


def test_after_an_escalation_later_turns_follow_the_summary(servers: Servers):
    cheap, strong = servers("cheap-model"), servers("strong-model")
    cheap.script(WRONG)
    strong.script("first strong reply", "second strong reply")
    model = ladder([rung("cheap", cheap, iterations=1), rung("strong", strong)])
    model.complete(history())
    model.complete(history(WRONG, "failed"))

    model.complete(history(WRONG, "failed", "first strong reply", "still failing"))

    sent = [m["content"] for m in strong.requests[1].messages]
    assert len(sent) == 5 and sent[3:] == ["first strong reply", "still failing"]


def test_a_rung_whose_next_call_could_pass_its_own_cap_escalates_without_calling_it(
    servers: Servers,
):
    cheap, strong = servers("cheap-model"), servers("strong-model")  # cheap: nothing scripted
    strong.script("answer")
    # 4,096 reply tokens at $10 per million could cost $0.041: more than cheap's $0.01 cap.
    model = ladder([
        rung("cheap", cheap, max_cost_usd=0.01, price_input=1.0, price_output=10.0),
        rung("strong", strong),
    ])  # fmt: skip

    reply = model.complete(history())

    assert reply.rung == "strong" and cheap.requests == []
    (note,) = model.notes
    assert note.startswith("rung `cheap` spent $0.0000 of its $0.0100 cap; its next call could")
    assert note.endswith(": escalated to rung `strong`")


def test_a_spent_ladder_fails_the_call_and_says_how_to_give_it_more(servers: Servers):
    only = servers("only-model")
    only.script("one answer")
    model = ladder([rung("only", only, iterations=1)])
    model.complete(history())

    with pytest.raises(ModelError, match="the model ladder is spent: rung `only` had its 1"):
        model.complete(history("one answer", "failed"))


def test_the_worst_case_is_at_the_price_of_the_rung_that_would_answer(servers: Servers):
    cheap, strong = servers("cheap-model"), servers("strong-model")
    cheap.script("answer")
    model = ladder([
        rung("cheap", cheap, iterations=1, price_input=1.0, price_output=1.0, max_tokens=1000),
        rung("strong", strong, price_input=10.0, price_output=10.0, max_tokens=1000),
    ])  # fmt: skip

    before = model.worst_case_usd(1000)
    model.complete(history())

    assert before == pytest.approx(2000 * 1.0 / 1e6)
    assert model.worst_case_usd(1000) == pytest.approx(2000 * 10.0 / 1e6)  # strong answers next
    assert model.notes == []  # asking for a price escalates nothing


# Fallback


def test_a_provider_that_is_down_hands_the_call_to_the_rungs_next_provider(
    servers: Servers, dead_url: str
):
    backup = servers("cheap-model")
    backup.script("from the backup", "again from the backup")
    model = ladder([rung("cheap", dead_url, fallbacks=[{"base_url": backup.base_url}])])

    first = model.complete(history())
    second = model.complete(history("from the backup", "failed"))

    assert (first.text, second.text) == ("from the backup", "again from the backup")
    (note,) = model.notes  # the dead endpoint is not tried again
    assert note.startswith(f"rung `cheap`: cannot reach the LLM endpoint at {dead_url}")
    assert note.endswith("the call went to its provider 2 of 2 (`cheap-model`)")


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        (Turn.error(404, "The model does not exist", code="model_not_found"),
         "model 'cheap-model' not found"),
        (Turn.error(429, "slow down", headers={"retry-after-ms": "1"}), "rate limited"),
    ],
    ids=["model-not-found", "rate-limited"],
)  # fmt: skip
def test_a_provider_without_the_model_or_out_of_rate_falls_back_too(
    servers: Servers, fault: Turn, said: str
):
    primary, backup = servers("cheap-model"), servers("cheap-model")
    primary.script(fault)
    backup.script("served")
    model = ladder([rung("cheap", primary, fallbacks=[{"base_url": backup.base_url}])])

    assert model.complete(history()).text == "served"
    assert said in model.notes[0]


def test_a_rung_with_no_provider_left_fails_the_call(dead_url: str):
    model = ladder([rung("cheap", dead_url)])

    with pytest.raises(ModelError, match="cannot reach the LLM endpoint"):
        model.complete(history())


def test_other_failures_do_not_fall_back(servers: Servers):
    primary, backup = servers("cheap-model"), servers("cheap-model")  # backup: nothing scripted
    primary.script(Turn.error(401, "bad key"))
    model = ladder([rung("cheap", primary, fallbacks=[{"base_url": backup.base_url}])])

    with pytest.raises(ModelError, match="rejected the API key"):
        model.complete(history())


def test_prompts_reach_every_provider_redacted(servers: Servers):
    only = servers("m")
    only.script("ok")
    model = LadderModel([Rung("only", (_openai(only),))], Redactor.of(["hunter2-secret"]))

    model.complete([Message("user", "the password is hunter2-secret")])

    assert only.requests[0].messages[0]["content"] == "the password is [REDACTED]"


# The summary


def test_there_is_no_summary_before_any_reply():
    assert summarise(TASK) is None


def test_the_summary_keeps_the_code_as_the_last_result_that_showed_it():
    code = "calc.py\n```\n    2 |     return a * b\n```\n"
    shown = f'<untrusted source="repository">\n{code}</untrusted>\n'
    refused = "- block 1 (calc.py): refused."
    turns = history(WRONG, f"### test_calc::test_add\n{shown}", STALE, refused)

    task, message = summarise(turns) or (0, Message("user", ""))

    assert task == 2 and message.role == "user"
    assert "Reply 1: Try *." in message.content and "(2): (no explanation)" in message.content
    assert message.content.count("return a * b") == 1  # the code now, not the diff's lines


# A whole run


CALC_FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n",
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
}


@pytest.mark.docker
def test_a_dry_run_escalates_from_a_failing_cheap_rung_to_a_strong_one_that_fixes_it(
    servers: Servers, dead_url: str, sandbox_image: str, tmp_path: Path
):
    cheap, strong = servers("cheap-model"), servers("strong-model")
    cheap.script(WRONG, STALE)  # a wrong fix (tests fail), then an edit that does not apply
    strong.script(FIX_NOW)
    rungs = [
        rung("cheap", dead_url, iterations=2, price_input=0.1, price_output=0.4,
             max_cost_usd=0.5, fallbacks=[{"base_url": cheap.base_url, "key_env": ""}]),
        rung("strong", strong, price_input=2.0, price_output=8.0),
    ]  # fmt: skip
    env = {
        "OPENAI_BASE_URL": cheap.base_url,
        "CODEBOT_MODEL": "cheap-model",
        "CODEBOT_MODEL_RETRIES": "0",
        "CODEBOT_SANDBOX_IMAGE": sandbox_image,
        "CODEBOT_LADDER": json.dumps(rungs),
    }
    repo = make_repo(tmp_path / "calc", CALC_FILES)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "title": "Fix add", "description": "add subtracts", "test": "python3 -m pytest -q",
        "lint": False, "budget": {"max_cost_usd": 1.0},
    }))  # fmt: skip
    settings = cfg.with_flags(cfg.from_env(env), runs_dir=tmp_path / "runs")

    outcome = execute(RunRequest(spec, repo, settings), env=env)

    record = json.loads(outcome.files.run_json.read_text())
    assert record["stop_reason"] == "passed", record["stop_detail"]
    assert [i["rung"] for i in record["iterations"]] == ["cheap", "cheap", "strong"]
    cheap_use, strong_use = record["rungs"]
    assert (cheap_use["name"], cheap_use["model"], cheap_use["calls"]) == (
        "cheap", "cheap-model", 2,
    )  # fmt: skip
    assert (strong_use["name"], strong_use["calls"]) == ("strong", 1)
    assert record["cost_usd"] == pytest.approx(cheap_use["cost_usd"] + strong_use["cost_usd"])
    assert any(n.startswith("rung `cheap`: cannot reach the LLM endpoint") for n in record["notes"])
    assert "rung `cheap` had its 2 call(s): escalated to rung `strong`" in record["notes"]
    assert "return a * b" in strong.requests[0].messages[2]["content"]  # the code as it stands
    pr = outcome.files.pr_md.read_text()
    assert "Model ladder: the final change came from rung `strong` (`strong-model`)." in pr
    assert "| `cheap` | `cheap-model` | 2 | " in pr and "| $0.5000 |" in pr
    assert "| `strong` | `strong-model` | 1 | " in pr and f"${strong_use['cost_usd']:.4f}" in pr
    assert "Cost cap: $1.0000 for the run" in pr


@pytest.mark.docker
def test_a_dry_run_makes_no_call_whose_worst_case_would_pass_the_run_cap(
    servers: Servers, sandbox_image: str, tmp_path: Path
):
    only = servers("priced-model")
    only.script(Turn.reply(WRONG, usage=(4_000, 1_000)))  # $0.006; the next call: not scripted
    env = {
        "OPENAI_BASE_URL": only.base_url,
        "CODEBOT_MODEL": "priced-model",
        "CODEBOT_MODEL_RETRIES": "0",
        "CODEBOT_PRICE_INPUT": "1.0",
        "CODEBOT_PRICE_OUTPUT": "2.0",
        "CODEBOT_SANDBOX_IMAGE": sandbox_image,
    }
    repo = make_repo(tmp_path / "calc", CALC_FILES)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "title": "Fix add", "description": "add subtracts", "test": "python3 -m pytest -q",
        "lint": False, "budget": {"max_cost_usd": 0.012},
    }))  # fmt: skip
    settings = cfg.with_flags(cfg.from_env(env), runs_dir=tmp_path / "runs")

    outcome = execute(RunRequest(spec, repo, settings), env=env)

    record = outcome.record
    assert record.stop_reason == "cost_budget" and len(only.requests) == 1
    said = re.fullmatch(
        r"\$0\.0060 spent; the next call could cost up to \$(\S+) \(([\d,]+) prompt tokens "
        r"and a max_tokens reply\), past the cap of \$0\.0120",
        record.stop_detail,
    )
    assert said, record.stop_detail
    prompt = int(said[2].replace(",", ""))  # in at $1, and 4,096 reply tokens at $2 a million
    assert said[1] == f"{(prompt * 1.0 + 4096 * 2.0) / 1e6:.4f}"


def test_the_action_outputs_name_the_cost_cap(tmp_path: Path):
    output = tmp_path / "github_output"

    cli_github._write_outputs(str(output), "", "cost_budget", 0.006, 0.012)
    cli_github._write_outputs(str(output), "", "passed", None, None)

    lines = output.read_text().splitlines()
    assert [line for line in lines if line.startswith("cost-cap-usd=")] == [
        "cost-cap-usd=0.0120", "cost-cap-usd=",
    ]  # fmt: skip


def _openai(server: ScriptedModelServer) -> OpenAIModel:
    return OpenAIModel(ModelConfig(name=server.model, base_url=server.base_url, max_retries=0))


# Best-of-N across rungs: candidates from several models at once


def test_candidates_across_rungs_take_a_reply_from_each_rung_at_its_own_price(servers: Servers):
    cheap, strong = servers("cheap-model"), servers("strong-model")
    cheap.script(Turn.reply("cheap first", seed=0), Turn.reply("cheap sampled", seed=1))
    strong.script(Turn.reply("strong first", seed=0))
    model = ladder([
        rung("cheap", cheap, price_input=1.0, price_output=1.0),
        rung("strong", strong, price_input=10.0, price_output=10.0),
    ])  # fmt: skip
    model.candidates, model.across_rungs = 3, True
    one = [r.models[0].worst_case_usd(1000) for r in model.rungs]  # type: ignore[attr-defined]

    worst = model.worst_case_usd(1000)
    replies = model.complete_many(history(), 3)

    assert [(r.text, r.rung) for r in replies] == [  # type: ignore[union-attr]
        ("cheap first", "cheap"), ("strong first", "strong"), ("cheap sampled", "cheap")
    ]  # fmt: skip
    assert worst == pytest.approx(2 * one[0] + one[1])  # each candidate at its rung's price
    assert sorted((r.body["seed"], r.body["temperature"]) for r in cheap.requests) == [
        (0, 0.0), (1, 0.8)
    ]  # fmt: skip
    assert [(r.body["seed"], r.body["temperature"]) for r in strong.requests] == [(0, 0.0)]
    assert [(u.name, u.calls) for u in model.rung_usage()] == [("cheap", 2), ("strong", 1)]


def test_across_rungs_a_spent_rung_gives_no_candidate(servers: Servers):
    cheap, strong = servers("cheap-model"), servers("strong-model")
    cheap.script("cheap answer")
    strong.script(Turn.reply("strong first", seed=0), Turn.reply("strong sampled", seed=1))
    model = ladder([rung("cheap", cheap, iterations=1), rung("strong", strong)])
    model.candidates, model.across_rungs = 2, True
    model.complete(history())  # cheap's one iteration

    replies = model.complete_many(history("cheap answer", "still failing"), 2)

    assert [r.rung for r in replies] == ["strong", "strong"]  # type: ignore[union-attr]
