"""Per-model limits of users, organizations and customers through the real gateway (official
openai SDK, mock provider), on SQLite (one gateway, in-process counters) and on PostgreSQL +
Redis (two gateways sharing them).

``model_max_budget`` / ``model_rpm_limit`` / ``model_tpm_limit`` are accepted on every
entity; they are enforced at the model group that serves, as the key's and team's are
(``user_model``, ``organization_model``, ``end_user_model``): the call that would cross one
is refused at that model only, naming the scope and window; ``/budget/explain`` and the
entity's info list the window with its spend; counters rebuilt from the ledger (a restart,
a Redis flush) refuse the same call. Every call costs $0.01 (see ``limits_helpers``): at the
model group ``cent-model`` (limited) or ``cent-other``, each served under its own name (the
info endpoints read a model window by the group's deployments, as enforcement counts it:
tests/gateway/test_gateway_model_windows.py covers a group served under another name).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from cluster_helpers import REDIS_URL, clear_redis, fetch, require_redis
from gateway_helpers import MASTER_KEY, GatewayServer, make_config
from limits_helpers import ADMIN, Admin, cent_call

from spendgate.config import GatewayConfig
from spendgate.providers.mock import MockServer

pytestmark = pytest.mark.asyncio

LIMITED, OTHER = "cent-model", "cent-other"


def _config(mock_base_url: str, tmp: Path, journal: str, **general: Any) -> GatewayConfig:
    models = [
        {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/{name}",
                "api_base": mock_base_url,
                "input_cost_per_token": "0",
                "output_cost_per_token": "0.0001",
            },
        }
        for name in (LIMITED, OTHER)
    ]
    return make_config(
        mock_base_url,
        tmp / "limits.db",
        tmp / journal,
        model_list=models,
        router_settings={"fallbacks": []},
        general_settings={"key_cache_ttl_seconds": 60, **general},
    )


@dataclass
class Gateways:
    """One gateway (SQLite) or two sharing PostgreSQL and Redis. ``cold`` starts one more on
    the same ledger with every budget counter cold (with Redis, its keys flushed first)."""

    servers: list[GatewayServer]
    sqlite_path: Path | None
    postgres_url: str | None
    cold: Callable[[], GatewayServer]

    async def count(self, column: str, value: str) -> int:
        """Spend events attributed to ``value`` by ``column``."""
        sql = f"SELECT count(*) FROM spend_events WHERE {column} = "  # noqa: S608 (a fixed name)
        if self.sqlite_path is not None:
            with sqlite3.connect(self.sqlite_path) as conn:
                return int(conn.execute(sql + "?", (value,)).fetchone()[0])
        assert self.postgres_url is not None
        (row,) = await fetch(self.postgres_url, sql + "$1", value)
        return int(row[0])

    async def wait_events(self, column: str, value: str, n: int, timeout: float = 20) -> None:
        """Until ``n`` events of ``value`` are in the ledger (the recorder writes behind)."""
        deadline = time.monotonic() + timeout
        while await self.count(column, value) < n:
            assert time.monotonic() < deadline, f"{n} events of {column}={value} never reached the ledger"
            await asyncio.sleep(0.05)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])])
def gateways(request: pytest.FixtureRequest, mock_server: MockServer, tmp_path: Path) -> Iterator[Gateways]:
    mock_server.reset()
    base = mock_server.base_url
    if request.param == "sqlite":
        db = tmp_path / "limits.db"

        def cold_sqlite() -> GatewayServer:
            return GatewayServer(_config(base, tmp_path, "journal-cold"))

        with GatewayServer(_config(base, tmp_path, "journal")) as server:
            yield Gateways([server], db, None, cold_sqlite)
        return
    require_redis()
    url = str(request.getfixturevalue("postgres_url"))
    prefix = f"modellimits{uuid.uuid4().hex[:8]}"

    def config(i: int) -> Any:
        return _config(
            base,
            tmp_path,
            f"journal-{i}",
            database_url=url,
            redis_url=REDIS_URL,
            enforcement_key_prefix=prefix,
        )

    def cold_redis() -> GatewayServer:
        clear_redis(f"{{{prefix}}}:")
        return GatewayServer(config(2))

    with GatewayServer(config(0)) as a, GatewayServer(config(1)) as b:
        yield Gateways([a, b], None, url, cold_redis)


@pytest_asyncio.fixture
async def sdk() -> AsyncIterator[Callable[[GatewayServer, str], openai.AsyncOpenAI]]:
    clients: list[openai.AsyncOpenAI] = []

    def make(server: GatewayServer, key: str) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=60)
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.close()


SDK = Callable[[GatewayServer, str], openai.AsyncOpenAI]
DAILY_CENT = {LIMITED: {"max_budget": 0.01, "budget_duration": "1d"}}
"""$0.01 a day at one model group: one call fits exactly, the next is refused."""


async def _call(
    client: openai.AsyncOpenAI, model: str = LIMITED, **extra: Any
) -> tuple[int, dict[str, Any], Any]:
    return await cent_call(client, model=model, **extra)


def _refused(status: int, error: dict[str, Any], scope: str, spend: str = "0.01") -> None:
    assert status == 402, (status, error)
    assert error["type"] == "budget_exceeded"
    message = str(error["message"])
    assert f"budget exceeded for {scope}, window 1d: spend ${spend} + in flight $0.00" in message, message
    assert "limit $0.01; resets at" in message, message


def _windows(explained: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["scope"]: w for w in explained["windows"]}


def _info_window(
    server: GatewayServer, path: str, params: dict[str, str], field: str | None
) -> dict[str, Any]:
    """The limited model's window an info endpoint shows for the entity."""
    with httpx.Client(base_url=server.base_url, headers=ADMIN, timeout=30) as admin:
        answer = admin.get(path, params=params)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    entity = body[field] if field else body
    (window,) = [w for w in entity["budget_windows"] if w.get("model") == LIMITED]
    return dict(window)


async def test_a_users_model_budget_refuses_at_that_model_only(gateways: Gateways, sdk: SDK) -> None:
    a, b = gateways.servers[0], gateways.servers[-1]
    user = f"mu-{uuid.uuid4().hex[:6]}"
    with Admin(a.base_url) as admin:
        admin.post("/user/new", {"user_id": user, "auto_create_key": False, "model_max_budget": DAILY_CENT})
        admin.post("/team/new", {"team_id": f"{user}-team"})
        key = admin.key(user_id=user)
        team_key = admin.key(user_id=user, team_id=f"{user}-team")
    scope = f"user_model:{user}:{LIMITED}"

    status, error, headers = await _call(sdk(a, key))
    assert status == 200, error
    assert headers["x-spendgate-budget-remaining"] == "0"  # the user's model window
    _refused(*(await _call(sdk(b, key)))[:2], scope)  # on the other instance too
    # Another model of the same user is not limited by it.
    assert (await _call(sdk(b, key), model=OTHER))[0] == 200
    # A team key skips its owner's limits (unless apply_user_budget_to_team_keys), as LiteLLM.
    assert (await _call(sdk(a, team_key)))[0] == 200

    with Admin(b.base_url) as admin:
        window = _windows(admin.explain(key, model=LIMITED))[scope]
    assert (window["spend"], window["limit"], window["verdict"]) == (0.01, 0.01, "exceeded")
    assert window["scope_type"] == "user_model"
    # /user/info shows the window with the spend at that model, the team key's included
    # (the user's spend, as its other windows count it).
    await gateways.wait_events("user_id", user, 3)
    shown = _info_window(a, "/user/info", {"user_id": user}, "user_info")
    assert (shown["spend"], shown["max_budget"]) == (0.02, 0.01)

    # Rebuilt from the ledger (a restart; with Redis, the counters flushed): the window is
    # set to the user's spend at that model, as /user/info shows it, and refuses again.
    with gateways.cold() as cold:
        _refused(*(await _call(sdk(cold, key)))[:2], scope, spend="0.02")
        assert (await _call(sdk(cold, key), model=OTHER))[0] == 200


async def test_an_organizations_model_budget_holds_every_team_key(gateways: Gateways, sdk: SDK) -> None:
    a, b = gateways.servers[0], gateways.servers[-1]
    org = f"mo-{uuid.uuid4().hex[:6]}"
    with Admin(a.base_url) as admin:
        admin.post(
            "/organization/new",
            {"organization_id": org, "organization_alias": org, "model_max_budget": DAILY_CENT},
        )
        admin.post("/team/new", {"team_id": f"{org}-t1", "organization_id": org})
        admin.post("/team/new", {"team_id": f"{org}-t2", "organization_id": org})
        first = admin.key(team_id=f"{org}-t1")
        second = admin.key(team_id=f"{org}-t2")
    scope = f"organization_model:{org}:{LIMITED}"

    assert (await _call(sdk(a, first)))[0] == 200
    # The other team's key, on the other instance: the organization's model budget is spent.
    _refused(*(await _call(sdk(b, second)))[:2], scope)
    assert (await _call(sdk(b, second), model=OTHER))[0] == 200
    with Admin(a.base_url) as admin:
        explained = admin.explain(second, model=LIMITED)
    assert explained["verdict"] == "exceeded"
    assert _windows(explained)[scope]["spend"] == 0.01
    await gateways.wait_events("organization_id", org, 2)
    shown = _info_window(a, "/organization/info", {"organization_id": org}, None)
    assert (shown["spend"], shown["max_budget"]) == (0.01, 0.01)

    with gateways.cold() as cold:
        _refused(*(await _call(sdk(cold, first)))[:2], scope)


async def test_a_customers_model_rpm_limit_gives_429_at_that_model(gateways: Gateways, sdk: SDK) -> None:
    a, b = gateways.servers[0], gateways.servers[-1]
    customer = f"mc-{uuid.uuid4().hex[:6]}"
    with Admin(a.base_url) as admin:
        admin.post("/customer/new", {"user_id": customer, "model_rpm_limit": {LIMITED: 1}})
        key = admin.key()

    assert (await _call(sdk(a, key), user=customer))[0] == 200
    status, error, headers = await _call(sdk(b, key), user=customer)
    assert status == 429, error
    assert error["type"] == "rate_limit_error" and LIMITED in error["message"], error
    assert float(headers["retry-after"]) > 0
    # Only that customer, only that model.
    assert (await _call(sdk(b, key), user=customer, model=OTHER))[0] == 200
    assert (await _call(sdk(b, key), user=f"{customer}-other"))[0] == 200
    assert (await _call(sdk(b, key)))[0] == 200  # no customer named


async def test_a_customers_model_budget_named_by_the_user_field(gateways: Gateways, sdk: SDK) -> None:
    """A customer id holding a colon (``acme:42``) and its model window rebuilt from the
    ledger: the scope id ``<customer>:<model>`` is split where the model group is."""
    a, b = gateways.servers[0], gateways.servers[-1]
    customer = f"acme:{uuid.uuid4().hex[:6]}"
    with Admin(a.base_url) as admin:
        admin.post("/customer/new", {"user_id": customer, "model_max_budget": DAILY_CENT})
        key = admin.key()
    scope = f"end_user_model:{customer}:{LIMITED}"

    assert (await _call(sdk(a, key), user=customer))[0] == 200
    _refused(*(await _call(sdk(b, key), user=customer))[:2], scope)
    assert (await _call(sdk(b, key), user=customer, model=OTHER))[0] == 200
    assert (await _call(sdk(b, key), user=f"{customer}-other"))[0] == 200
    with Admin(a.base_url) as admin:
        explained = admin.explain(key, customer=customer, model=LIMITED)
    assert _windows(explained)[scope]["verdict"] == "exceeded"
    await gateways.wait_events("end_user", customer, 2)
    shown = _info_window(a, "/customer/info", {"end_user_id": customer}, None)
    assert (shown["spend"], shown["remaining"]) == (0.01, 0)

    with gateways.cold() as cold:
        _refused(*(await _call(sdk(cold, key), user=customer))[:2], scope)
        assert (await _call(sdk(cold, key), user=customer, model=OTHER))[0] == 200


async def test_the_master_key_is_held_by_a_customers_model_budget(gateways: Gateways, sdk: SDK) -> None:
    """The master key has no key, user or team limits, but its customer's apply, per model too."""
    a = gateways.servers[0]
    customer = f"mm-{uuid.uuid4().hex[:6]}"
    with Admin(a.base_url) as admin:
        admin.post("/customer/new", {"user_id": customer, "model_max_budget": DAILY_CENT})
    assert (await _call(sdk(a, MASTER_KEY), user=customer))[0] == 200
    _refused(*(await _call(sdk(a, MASTER_KEY), user=customer))[:2], f"end_user_model:{customer}:{LIMITED}")
