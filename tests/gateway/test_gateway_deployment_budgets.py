"""Budgets that depend on where a call is served, through the real gateway: a deployment's
own budget (``litellm_params.max_budget``) and its provider's
(``router_settings.provider_budget_config``) make routing skip it; the key's model budget
(and a customer's) is checked at the model group that serves, again on fallback.
Deployments are told apart by their upstream ``api_key`` (the mock's ``by_key`` counts).
Every call costs $0.01 (see ``limits_helpers``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import pytest_asyncio
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config
from limits_helpers import CENT, Admin, cent_call

from spendgate.core.keys import hash_key
from spendgate.providers.mock import MockServer

pytestmark = pytest.mark.asyncio


def _deployment(mock: str, group: str, key: str, output_price: str, **params: Any) -> dict[str, Any]:
    provider = params.pop("provider", "openai")
    return {
        "model_name": group,
        "litellm_params": {
            "model": f"{provider}/cent-model",
            "api_base": mock,
            "api_key": key,
            "input_cost_per_token": "0",
            "output_cost_per_token": output_price,
            **params,
        },
        "model_info": {"id": key.removeprefix("sk-")},
    }


CENT_RATE = "0.0001"  # 100 output tokens: $0.01
HALF_CENT_RATE = "0.00005"


@pytest.fixture(scope="module")
def gw(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp: Path = tmp_path_factory.mktemp("deployment-budgets")
    url = mock_server.base_url
    models = [
        # lowest-cost tries the cheap one first, until its $0.01 a day is spent.
        _deployment(url, "db-dep", "sk-db-cheap", HALF_CENT_RATE, max_budget="0.01", budget_duration="1d"),
        _deployment(url, "db-dep", "sk-db-dear", CENT_RATE),
        _deployment(url, "db-only", "sk-db-only", CENT_RATE, max_budget="0.01", budget_duration="1d"),
        # A provider with a $0.02 budget (together_ai), and an openai deployment beside it.
        _deployment(url, "db-prov", "sk-db-together", HALF_CENT_RATE, provider="together_ai"),
        _deployment(url, "db-prov", "sk-db-openai", CENT_RATE),
        # A fallback pair: the primary always fails in these tests.
        _deployment(url, "db-primary", "sk-db-primary", CENT_RATE),
        _deployment(url, "db-backup", "sk-db-backup", CENT_RATE),
        # A free model whose fallback is paid.
        _deployment(url, "db-free", "sk-db-free", "0"),
    ]
    config = make_config(
        url,
        tmp / "budgets.db",
        tmp / "journal",
        model_list=models,
        router_settings={
            "routing_strategy": "lowest-cost",
            "num_retries": 0,
            "fallbacks": [{"db-primary": ["db-backup"]}, {"db-free": ["db-backup"]}],
            "provider_budget_config": {"together_ai": {"budget_limit": 0.02, "time_period": "1d"}},
        },
    )
    with GatewayServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def admin(gw: GatewayServer) -> Iterator[Admin]:
    with Admin(gw.base_url) as a:
        yield a


@pytest.fixture(scope="module")
def db(gw: GatewayServer) -> Path:
    return Path(str(gw.app.state.services.engine.url.database))


@pytest_asyncio.fixture
async def client(gw: GatewayServer, mock: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=gw.url, api_key=MASTER_KEY, max_retries=0, timeout=30) as c:
        yield c


def _served(mock: MockServer, prefix: str = "sk-db-") -> dict[str, int]:
    by_key: dict[str, dict[str, int]] = mock.stats()["by_key"]
    return {key: gauge["requests"] for key, gauge in by_key.items() if key.startswith(prefix)}


async def test_a_deployment_over_its_budget_is_skipped(client: openai.AsyncOpenAI, mock: MockServer) -> None:
    # The cheap deployment costs $0.005 a call: two calls spend its $0.01.
    for _ in range(2):
        status, error, headers = await cent_call(client, model="db-dep")
        assert status == 200, error
    assert headers["x-spendgate-response-cost"] == "0.005"
    assert _served(mock) == {"sk-db-cheap": 2}
    for _ in range(2):
        status, error, headers = await cent_call(client, model="db-dep")
        assert status == 200, error
        assert headers["x-spendgate-response-cost"] == "0.01"  # billed at the one that served
    assert _served(mock) == {"sk-db-cheap": 2, "sk-db-dear": 2}


async def test_every_deployment_over_budget_fails_with_the_budget_error(
    client: openai.AsyncOpenAI, mock: MockServer
) -> None:
    assert (await cent_call(client, model="db-only"))[0] == 200
    status, error, _ = await cent_call(client, model="db-only")
    assert status == 402, error
    assert error["type"] == "budget_exceeded"
    assert "budget exceeded for deployment:db-only" in error["message"]
    assert _served(mock) == {"sk-db-only": 1}


async def test_a_provider_over_its_budget_is_skipped(client: openai.AsyncOpenAI, mock: MockServer) -> None:
    # together_ai's $0.02: four $0.005 calls, then every call goes to the openai deployment.
    costs = []
    for _ in range(6):
        status, error, headers = await cent_call(client, model="db-prov")
        assert status == 200, error
        costs.append(headers["x-spendgate-response-cost"])
    assert costs == ["0.005"] * 4 + ["0.01"] * 2
    assert _served(mock) == {"sk-db-together": 4, "sk-db-openai": 2}


async def test_a_model_budget_is_checked_at_the_fallback_that_serves(
    gw: GatewayServer, admin: Admin, mock: MockServer, db: Path
) -> None:
    raw = admin.key(model_max_budget={"db-backup": {"max_budget": 0.01, "budget_duration": "1d"}})
    key_id = hash_key(raw)
    async with openai.AsyncOpenAI(base_url=gw.url, api_key=raw, max_retries=0, timeout=30) as client:
        mock.queue_faults({"status": 500, "api_key": "sk-db-primary", "times": 2})
        # 1: the primary fails; the backup serves, and its model budget is charged.
        status, error, headers = await cent_call(client, model="db-primary")
        assert status == 200, error
        assert headers["x-spendgate-budget-remaining"] == "0"  # the backup's model window
        rows = Ledger(db).wait(2, "api_key = ?", (key_id,))
        served = [r for r in rows if r["status"] == "success"]
        assert [(r["deployment_id"], r["cost_nanos"]) for r in served] == [("db-backup", CENT)]
        explained = {w["scope"]: w for w in admin.explain(raw, model="db-backup")["windows"]}
        assert explained[f"key_model:{key_id}:db-backup"]["spend"] == 0.01
        # 2: the primary fails again; the backup is over the key's budget for it: not called.
        status, error, _ = await cent_call(client, model="db-primary")
        assert status == 502 and error["type"] == "upstream_error", error  # the primary's failure
        assert _served(mock) == {"sk-db-primary": 2, "sk-db-backup": 1}
        # Asked for directly, the backup names the model budget.
        status, error, _ = await cent_call(client, model="db-backup")
        assert status == 402 and f"budget exceeded for key_model:{key_id}:db-backup" in error["message"]


async def test_a_free_model_cannot_spend_past_a_budget_through_its_paid_fallback(
    gw: GatewayServer, admin: Admin, mock: MockServer
) -> None:
    """LiteLLM #41344: the reservation covers the dearest deployment the call may be billed
    at, fallbacks included, so a $0 model does not skip the budget."""
    raw = admin.key(max_budget=0.01, budget_duration="1d")
    async with openai.AsyncOpenAI(base_url=gw.url, api_key=raw, max_retries=0, timeout=30) as client:
        mock.queue_faults({"status": 500, "api_key": "sk-db-free", "times": 5})
        status, error, headers = await cent_call(client, model="db-free")
        assert status == 200 and headers["x-spendgate-response-cost"] == "0.01", error
        status, error, _ = await cent_call(client, model="db-free")
        assert status == 402 and f"budget exceeded for key:{hash_key(raw)}" in error["message"]
    assert _served(mock) == {"sk-db-free": 1, "sk-db-backup": 1}


async def test_a_customers_model_budget_is_checked_at_the_fallback_that_serves(
    gw: GatewayServer, admin: Admin, mock: MockServer
) -> None:
    """As the key's: a customer's model budget holds at the group that serves, so a
    fallback spends its own group's budget."""
    admin.post(
        "/customer/new",
        {
            "user_id": "db-cust",
            "model_max_budget": {"db-backup": {"max_budget": 0.01, "budget_duration": "1d"}},
        },
    )
    raw = admin.key()
    async with openai.AsyncOpenAI(base_url=gw.url, api_key=raw, max_retries=0, timeout=30) as client:
        mock.queue_faults({"status": 500, "api_key": "sk-db-primary", "times": 2})
        status, error, headers = await cent_call(client, model="db-primary", user="db-cust")
        assert status == 200, error
        assert headers["x-spendgate-budget-remaining"] == "0"  # the backup's model window
        explained = {
            w["scope"]: w for w in admin.explain(raw, customer="db-cust", model="db-backup")["windows"]
        }
        assert explained["end_user_model:db-cust:db-backup"]["spend"] == 0.01
        # The primary fails again; the backup is over the customer's budget for it: not called.
        status, error, _ = await cent_call(client, model="db-primary", user="db-cust")
        assert status == 502 and error["type"] == "upstream_error", error
        assert _served(mock) == {"sk-db-primary": 2, "sk-db-backup": 1}
        status, error, _ = await cent_call(client, model="db-backup", user="db-cust")
        assert status == 402 and "budget exceeded for end_user_model:db-cust:db-backup" in error["message"]
        # Another customer of the same key is not held by it.
        assert (await cent_call(client, model="db-backup", user="db-cust-2"))[0] == 200
