"""Budgets stop a run before the call that would overspend: the strict model server proves
that no request goes out after the budget is used up. A budget stop is not an error: the
change so far is committed to a branch for review.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import DryRun, codebot_branches, write_spec
from tests.support.git_repos import git
from tests.support.model_server import ScriptedModelServer, Turn
from tests.test_end_to_end import MINUTES_DIFF

pytestmark = pytest.mark.docker

BRANCH = "codebot/parse-duration-minutes"


def test_token_budget_smaller_than_one_call_stops_before_the_model_is_called_again(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client, tmp_path
):
    model_server.script(Turn.reply(MINUTES_DIFF, usage=(4_000, 2_000)))  # the only call
    spec = write_spec(tmp_path, budget={"max_tokens": 5_000})

    run = dry_run(spec=spec)

    record = run.assert_nothing_lost(docker_client, "token_budget")
    assert len(model_server.requests) == 1
    assert record["usage"]["total_tokens"] == 6_000
    assert record["stop_detail"].startswith("6000 tokens used; the next call (~")
    assert record["stop_detail"].endswith("prompt tokens) would pass the budget of 5000")
    assert record["files_changed"] == ["duration.py"]
    assert run.outcome.branch == BRANCH and codebot_branches(run.repo).strip() == BRANCH
    assert '"m": 60' in git(run.repo, "show", f"{BRANCH}:duration.py")


def test_cost_budget_with_configured_prices_stops_before_the_model_is_called_again(
    dry_run: DryRun, model_server: ScriptedModelServer, docker_client, tmp_path
):
    model_server.script(Turn.reply(MINUTES_DIFF, usage=(4_000, 4_000)))  # the only call
    spec = write_spec(tmp_path, budget={"max_cost_usd": 0.02})

    # USD per million tokens: 4,000 in at $1 plus 4,000 out at $2 is $0.012. The next call's
    # worst case (its prompt plus a whole 4,096-token reply, about $0.012) would pass $0.02.
    run = dry_run(spec=spec, CODEBOT_PRICE_INPUT="1.0", CODEBOT_PRICE_OUTPUT="2.0")

    record = run.assert_nothing_lost(docker_client, "cost_budget")
    assert len(model_server.requests) == 1
    assert record["cost_usd"] == pytest.approx(0.012)
    assert record["stop_detail"].startswith("$0.0120 spent; the next call could cost up to $0.01")
    assert record["stop_detail"].endswith("past the cap of $0.0200")
    assert run.outcome.branch == BRANCH
