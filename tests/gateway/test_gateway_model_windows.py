"""A per-model budget window on the info endpoints is read by model group, as the gateway
enforces it, when the group serves under another name: through the real gateway (official
openai SDK, mock provider), on SQLite and on PostgreSQL + Redis.

The group ``cent`` serves ``openai/cent-model`` (so the ledger's ``model`` is not ``cent``),
and the group ``cent-b`` serves the same upstream model: a window of ``cent`` counts the
calls served by ``cent``'s deployment only. The window an info endpoint shows equals, to
the nano-USD, the sum of the calls' ``x-spendgate-response-cost``, what ``/budget/explain``
shows for that scope, and what a cold gateway's counter is seeded with from the ledger.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from cluster_helpers import REDIS_URL, fetch, require_redis
from gateway_helpers import GatewayServer, make_config
from limits_helpers import ADMIN, MESSAGES, Admin

from spendgate.config import GatewayConfig
from spendgate.providers.mock import MockServer

pytestmark = pytest.mark.asyncio

GROUP, SAME_UPSTREAM = "cent", "cent-b"
WINDOW = {GROUP: {"max_budget": 5, "budget_duration": "1d"}}
TOKENS = (100, 37, 1)
"""max_tokens of the calls at ``GROUP`` (the mock answers exactly that many): three costs."""


def _config(base: str, tmp: Path, name: str, **general: Any) -> GatewayConfig:
    models = [
        {
            "model_name": group,
            "litellm_params": {
                "model": "openai/cent-model",
                "api_base": base,
                "input_cost_per_token": "0.0000013",
                "output_cost_per_token": "0.0000937",
            },
        }
        for group in (GROUP, SAME_UPSTREAM)
    ]
    return make_config(
        base,
        tmp / "windows.db",
        tmp / f"journal-{name}",
        model_list=models,
        router_settings={"fallbacks": []},
        general_settings={"key_cache_ttl_seconds": 60, **general},
    )


@dataclass
class Ledger:
    """Starts gateways on one ledger (SQLite, or PostgreSQL with Redis counters); each
    gateway has counters of its own, so a second one starts with every counter cold."""

    gateway: Callable[[], GatewayServer]
    sqlite_path: Path | None
    postgres_url: str | None

    async def wait_events(self, column: str, value: str, n: int, timeout: float = 20) -> None:
        """Until ``n`` events of ``value`` are in the ledger (the recorder writes behind)."""
        sql = f"SELECT count(*) FROM spend_events WHERE {column} = "  # noqa: S608 (a fixed name)
        deadline = time.monotonic() + timeout
        while True:
            if self.sqlite_path is not None:
                with sqlite3.connect(self.sqlite_path) as conn:
                    count = int(conn.execute(sql + "?", (value,)).fetchone()[0])
            else:
                assert self.postgres_url is not None
                (row,) = await fetch(self.postgres_url, sql + "$1", value)
                count = int(row[0])
            if count >= n:
                return
            assert time.monotonic() < deadline, f"{n} events of {column}={value} never reached the ledger"
            await asyncio.sleep(0.05)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])])
def ledger(request: pytest.FixtureRequest, mock_server: MockServer, tmp_path: Path) -> Iterator[Ledger]:
    mock_server.reset()
    base = mock_server.base_url
    started: list[GatewayServer] = []

    def start(config: GatewayConfig) -> GatewayServer:
        server = GatewayServer(config).start()
        started.append(server)
        return server

    try:
        if request.param == "sqlite":
            yield Ledger(
                lambda: start(_config(base, tmp_path, str(len(started)))), tmp_path / "windows.db", None
            )
        else:
            require_redis()
            url = str(request.getfixturevalue("postgres_url"))

            def on_postgres() -> GatewayServer:
                prefix = f"modelwindows{uuid.uuid4().hex[:8]}"  # counters of its own
                return start(
                    _config(
                        base,
                        tmp_path,
                        str(len(started)),
                        database_url=url,
                        redis_url=REDIS_URL,
                        enforcement_key_prefix=prefix,
                    )
                )

            yield Ledger(on_postgres, None, url)
    finally:
        for server in started:
            server.stop()


def _get(server: GatewayServer, path: str, params: dict[str, str]) -> Any:
    with httpx.Client(base_url=server.base_url, headers=ADMIN, timeout=30) as admin:
        answer = admin.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return json.loads(answer.text, parse_float=Decimal)


def _explained(server: GatewayServer, key: str, owner: str, **fields: Any) -> Decimal:
    """The spend ``/budget/explain`` shows for ``owner``'s window at ``GROUP``."""
    with httpx.Client(base_url=server.base_url, headers=ADMIN, timeout=30) as admin:
        answer = admin.post("/budget/explain", json={"key": key, "model": GROUP, **fields})
    assert answer.status_code == 200, answer.text
    windows = json.loads(answer.text, parse_float=Decimal)["windows"]
    (window,) = [w for w in windows if w["scope_type"] == f"{owner}_model"]
    assert str(window["scope"]).endswith(f":{GROUP}"), window
    return Decimal(window["spend"])


async def _calls(server: GatewayServer, key: str, **extra: Any) -> Decimal:
    """The calls at ``GROUP`` (and one at ``SAME_UPSTREAM``): the sum of ``GROUP``'s
    ``x-spendgate-response-cost``."""
    total = Decimal(0)
    async with openai.AsyncOpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=60) as client:
        for tokens in TOKENS:
            raw = await client.chat.completions.with_raw_response.create(
                model=GROUP, messages=MESSAGES, max_tokens=tokens, **extra
            )
            total += Decimal(raw.http_response.headers["x-spendgate-response-cost"])
        other = await client.chat.completions.with_raw_response.create(
            model=SAME_UPSTREAM, messages=MESSAGES, max_tokens=50, **extra
        )
        assert Decimal(other.http_response.headers["x-spendgate-response-cost"]) > 0
    return total


def _model_window(entity: dict[str, Any]) -> Decimal:
    (window,) = [w for w in entity["budget_windows"] if w.get("model") == GROUP]
    assert window["max_budget"] == 5
    return Decimal(window["spend"])


async def _check(
    ledger: Ledger,
    gateway: GatewayServer,
    key: str,
    owner: str,
    shown: Callable[[GatewayServer], Decimal],
    billed: Decimal,
    **explain: Any,
) -> None:
    """The model window shown equals what was billed at the group, the enforcer's counter
    and a cold counter's seed (on a gateway whose counters are all cold)."""
    assert billed > 0
    assert shown(gateway) == billed
    assert _explained(gateway, key, owner, **explain) == billed
    cold = ledger.gateway()
    assert _explained(cold, key, owner, **explain) == billed
    assert shown(cold) == billed


async def test_a_keys_model_window_counts_the_groups_spend(ledger: Ledger) -> None:
    gateway = ledger.gateway()
    with Admin(gateway.base_url) as admin:
        alias = f"mw-{uuid.uuid4().hex[:6]}"
        created = admin.post("/key/generate", {"key_alias": alias, "model_max_budget": WINDOW})
    key, key_id = str(created["key"]), str(created["key_id"])
    billed = await _calls(gateway, key)
    await ledger.wait_events("api_key", key_id, len(TOKENS) + 1)

    def shown(server: GatewayServer) -> Decimal:
        return _model_window(_get(server, "/key/info", {"key": key})["info"])

    await _check(ledger, gateway, key, "key", shown, billed)
    listed = _get(gateway, "/key/list", {"return_full_object": "true", "key_alias": alias})
    (mine,) = [k for k in listed["keys"] if k["key_id"] == key_id]
    assert _model_window(mine) == billed


async def test_a_users_model_window_counts_the_groups_spend(ledger: Ledger) -> None:
    gateway = ledger.gateway()
    user = f"mw-{uuid.uuid4().hex[:6]}"
    with Admin(gateway.base_url) as admin:
        admin.post("/user/new", {"user_id": user, "auto_create_key": False, "model_max_budget": WINDOW})
        key = admin.key(user_id=user)
    billed = await _calls(gateway, key)
    await ledger.wait_events("user_id", user, len(TOKENS) + 1)

    def shown(server: GatewayServer) -> Decimal:
        return _model_window(_get(server, "/user/info", {"user_id": user})["user_info"])

    await _check(ledger, gateway, key, "user", shown, billed)


async def test_a_customers_model_window_counts_the_groups_spend(ledger: Ledger) -> None:
    gateway = ledger.gateway()
    customer = f"mwc:{uuid.uuid4().hex[:6]}"  # a colon, as a client may name one
    with Admin(gateway.base_url) as admin:
        admin.post("/customer/new", {"user_id": customer, "model_max_budget": WINDOW})
        key = admin.key()
    billed = await _calls(gateway, key, user=customer)
    await ledger.wait_events("end_user", customer, len(TOKENS) + 1)

    def shown(server: GatewayServer) -> Decimal:
        return _model_window(_get(server, "/customer/info", {"end_user_id": customer}))

    await _check(ledger, gateway, key, "end_user", shown, billed, customer=customer)
