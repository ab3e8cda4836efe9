"""``GET /budget/tightest`` (issue #18, the Overview's budgets nearest their limit): the keys
whose fullest budget window is fullest, among **every** key the caller may read, not one
page of them.

A ledger holds known spend for keys with every kind of window (a ``budget_duration``, a
lifetime ``max_budget``, ``budget_limits``, ``model_max_budget``, a budget profile, a
temporary increase, a zero budget) and keys without any; the keys are read in pages of
three, so the ranking crosses pages. The answer must equal the ranking computed here from
each key's own ``budget_windows`` in ``/key/info`` (SQLite and PostgreSQL), for every
``limit``; and each caller sees what ``/key/list`` lets them see.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import httpx
import pytest
import pytest_asyncio
from admin_helpers import MASTER, Api
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.applications import Starlette

from spendgate.admin import AdminSettings, budget_tightest
from spendgate.admin.app import admin_routes
from spendgate.core.usage.model import Usage
from spendgate.entities.repository import EntityRepository, KeyFilter, Page
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository

NOW = datetime(2026, 12, 10, 14, 37, 12, tzinfo=UTC)
MODELS = ("gpt-4o", "gpt-4o-mini")


def _nanos(value: Any) -> int:
    return int(Decimal(str(value)) * 1_000_000_000)


# Each key's budget fields (USD). Keys without any limit are counted nowhere.
KEYS: dict[str, dict[str, Any]] = {
    "day": {"max_budget": 3, "budget_duration": "1d"},
    "month": {"max_budget": 40, "budget_duration": "1mo"},
    "lifetime": {"max_budget": 25},
    "windows": {
        "budget_limits": [
            {"budget_duration": "1h", "max_budget": 2},
            {"budget_duration": "7d", "max_budget": 9},
        ]
    },
    "model": {"model_max_budget": {"gpt-4o-mini": {"max_budget": 1.5, "budget_duration": "1d"}}},
    "increase": {"max_budget": 2, "budget_duration": "1d"},  # + a temporary increase of 4
    "profile": {"budget_id": "prof"},
    "zero": {"max_budget": 0},
    "soft-only": {"soft_budget": 1},
    "none-1": {},
    "none-2": {"tpm_limit": 100},
    "tiny": {"max_budget": 0.5, "budget_duration": "1mo"},
    "big": {"max_budget": 500, "budget_duration": "1mo"},
}
OWNED_BY_U1 = ("day", "windows", "none-1", "big")
UNLIMITED = ("soft-only", "none-1", "none-2")


@dataclass
class World:
    api: Api
    keys: dict[str, dict[str, Any]]
    """name → the /key/generate response (``key``, ``token``, ``key_id``)."""
    u1_key: str
    """A key of user u1 (internal_user), which owns the keys of :data:`OWNED_BY_U1`."""


def _events(keys: dict[str, dict[str, Any]], rng: random.Random) -> list[SpendEvent]:
    """Six events a key: four in the last half hour (in every window's current period, so no
    two keys tie), two from one to forty days ago."""
    out = []
    for name, key in keys.items():
        for i in range(6):
            out.append(
                SpendEvent(
                    event_id=f"ev-{name}-{i}",
                    occurred_at=NOW
                    - timedelta(
                        minutes=rng.randrange(1, 30) if i < 4 else rng.randrange(60 * 24, 60 * 24 * 40)
                    ),
                    cost_nanos=rng.randrange(1, 900_000_000),
                    usage=Usage(input_tokens=10, output_tokens=5),
                    model=MODELS[i % 2],
                    provider="openai",
                    deployment_id="dep-1",
                    api_key=key["key_id"],
                )
            )
    return out


async def _build(engine: AsyncEngine, client: httpx.AsyncClient, seed: int) -> World:
    api = Api(client)
    await api.ok("POST", "/budget/new", {"budget_id": "prof", "max_budget": 4, "budget_duration": "7d"})
    await api.ok("POST", "/user/new", {"user_id": "u1", "auto_create_key": False})
    u1_key = (await api.ok("POST", "/key/generate", {"user_id": "u1", "key_alias": "u1-own"}))["key"]
    keys = {}
    for name, fields in KEYS.items():
        owner = {"user_id": "u1"} if name in OWNED_BY_U1 else {}
        keys[name] = await api.ok("POST", "/key/generate", {"key_alias": name, **owner, **fields})
    await api.ok(
        "POST",
        "/key/update",
        {
            "key": keys["increase"]["key"],
            "temp_budget_increase": 4,
            "temp_budget_expiry": "2030-01-01T00:00:00Z",
        },
    )
    written = await LedgerRepository(engine).write_batch(_events(keys, random.Random(seed)))
    assert written.inserted == 6 * len(keys)
    return World(api, keys, u1_key)


@pytest_asyncio.fixture(params=[1, 2])
async def world(
    request: pytest.FixtureRequest, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    """The keys and their spend, the clock at NOW, keys read three at a time."""
    monkeypatch.setattr(budget_tightest, "_PAGE", 3)
    settings = AdminSettings.from_master_key(engine, MASTER, clock=lambda: NOW)
    app = Starlette(routes=admin_routes(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
        yield await _build(engine, client, int(request.param))


def _fullness(info: dict[str, Any]) -> tuple[bool, Fraction, int] | None:
    """A key's fullest window as its /key/info shows it (None: no limited window): a zero
    limit first, then spend over the enforced limit (the main window's temporary increase
    included), then spend."""
    best = None
    for i, w in enumerate(info["budget_windows"]):
        if w["max_budget"] is None:
            continue
        limit = _nanos(w["max_budget"])
        if i == 0 and not w.get("model") and info.get("temp_budget_increase"):
            limit += _nanos(info["temp_budget_increase"])
        spend = _nanos(w["spend"])
        rank = (limit == 0, Fraction(spend, limit) if limit else Fraction(0), spend)
        best = rank if best is None or rank > best else best
    return best


async def _expected(world: World, names: list[str]) -> list[str]:
    """The aliases of ``names``' budgeted keys, fullest first, from each key's /key/info."""
    ranked = []
    for name in names:
        info = (await world.api.ok("GET", "/key/info", params={"key": world.keys[name]["token"]}))["info"]
        rank = _fullness(info)
        if rank is not None:
            ranked.append((rank, name))
    ranked.sort(reverse=True)
    return [name for _, name in ranked]


async def test_every_key_is_ranked_across_pages(world: World) -> None:
    expected = await _expected(world, list(KEYS))
    assert set(expected) == set(KEYS) - set(UNLIMITED)
    assert expected[0] == "zero"
    for limit in range(1, len(KEYS) + 2):
        answer = await world.api.ok("GET", "/budget/tightest", params={"limit": limit})
        assert [k["key_alias"] for k in answer["keys"]] == expected[:limit]
        assert answer["budgeted_keys"] == len(expected)


async def test_keys_are_shown_as_key_info_shows_them(world: World) -> None:
    answer = await world.api.ok("GET", "/budget/tightest", params={"limit": 3})
    for key in answer["keys"]:
        info = (await world.api.ok("GET", "/key/info", params={"key": key["token"]}))["info"]
        assert key == info


async def test_an_internal_user_sees_their_own_keys(world: World) -> None:
    answer = await world.api.ok("GET", "/budget/tightest", key=world.u1_key)
    mine = await _expected(world, list(OWNED_BY_U1))
    assert [k["key_alias"] for k in answer["keys"]] == mine
    assert answer["budgeted_keys"] == len(mine) == 3


async def test_a_key_of_no_user_sees_itself(world: World) -> None:
    answer = await world.api.ok("GET", "/budget/tightest", key=world.keys["month"]["key"])
    assert [k["key_alias"] for k in answer["keys"]] == ["month"]
    answer = await world.api.ok("GET", "/budget/tightest", key=world.keys["none-2"]["key"])
    assert answer == {"keys": [], "budgeted_keys": 0}


@pytest.mark.parametrize("limit", ["0", "101", "-1", "ten", "1.5", ""])
async def test_a_bad_limit_is_a_422(sqlite_api: Api, limit: str) -> None:
    status, body = await sqlite_api.get("/budget/tightest", params={"limit": limit})
    assert status == 422, body
    assert body["error"]["param"] == "limit"


async def test_no_key_answers_empty(sqlite_api: Api) -> None:
    assert await sqlite_api.ok("GET", "/budget/tightest") == {"keys": [], "budgeted_keys": 0}


async def test_only_keys_that_may_have_a_budget_are_read(world: World, engine: AsyncEngine) -> None:
    """The listing behind the ranking skips keys with no limit of any kind (a deployment's
    many unbudgeted keys are not read page after page)."""
    async with AsyncSession(engine) as session:
        total, rows = await EntityRepository(session).list_keys(KeyFilter(budgeted=True), Page(1, 100))
    assert {vk.key_alias for vk in rows} == set(KEYS) - set(UNLIMITED)
    assert total == len(rows)
