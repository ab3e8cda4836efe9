"""Spend on budget profiles (issue #13 item 1): ``/budget/info`` and ``/budget/list`` show,
for each profile, ``used_by`` (every key, team, organization, customer and tag pointing at
it, with that entity's own spend fields) and ``spend`` / ``lifetime_spend``, their sums.

A ledger is filled with known events; each ``used_by`` entry must equal what the entity's
own info endpoint shows, and each profile's ``spend`` must equal the sum, computed here from
the events, of what each entity spent in its own current period, to the nano-USD, with
``litellm_settings.timezone`` set to each zone in turn (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from admin_helpers import MASTER, Api
from sqlalchemy import event, insert, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from test_admin_entity_spend import nanos

from spendgate.admin import AdminSettings
from spendgate.admin.app import admin_routes
from spendgate.admin.budget_spend import REFERRERS, WITHOUT_SPEND
from spendgate.core.periods import Period, period_for
from spendgate.core.usage.model import Usage
from spendgate.entities.repository import BUDGET_REFERRERS
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database.models import Tag, TeamMembership

NOW = datetime(2026, 12, 10, 14, 37, 12, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata")
MODELS = ("gpt-4o", "gpt-4o-mini")
SPEND_FIELDS = (
    "spend",
    "budget_reset_at",
    "lifetime_spend",
    "total_spend",
    "soft_budget_reached",
    "budget_windows",
)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# The previous month; the month boundary in Kolkata (18:30) and Berlin (23:00); the day
# boundaries; the current hour; the 20-minute block 14:20–14:40 (its edges); after "now".
INSTANTS = [
    _at(t)
    for t in (
        "2026-11-12 09:00:00",
        "2026-11-30 18:20:00",
        "2026-11-30 18:40:00",
        "2026-11-30 22:50:00",
        "2026-11-30 23:10:00",
        "2026-12-01 00:10:00",
        "2026-12-09 18:20:00",
        "2026-12-09 18:40:00",
        "2026-12-09 23:20:00",
        "2026-12-10 00:05:00",
        "2026-12-10 13:55:00",
        "2026-12-10 14:05:00",
        "2026-12-10 14:19:59",
        "2026-12-10 14:20:00",
        "2026-12-10 14:36:00",
        "2026-12-10 15:10:00",
    )
]

# Who each column of events is attributed to (key names are filled in with key ids).
ATTRIBUTIONS: list[dict[str, Any]] = [
    {"api_key": "k1", "team_id": "t1", "organization_id": "o1", "end_user": "c1", "tags": ("vip",)},
    {"api_key": "k2", "tags": ("vip", "fast")},
    {"api_key": "k3", "end_user": "c1"},
    {"api_key": "k4", "tags": ("fast",)},
]


@dataclass
class World:
    api: Api
    engine: AsyncEngine
    tz: str
    events: list[SpendEvent]
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    """name → the /key/generate response (``key``, ``token``, ``key_id``)."""

    def spent(self, column: str, ident: str, period: Period) -> int:
        """Nano-USD of the events attributed to ``ident`` (by ``column``) in ``period``."""
        return sum(
            e.cost_nanos
            for e in self.events
            if (ident in e.tags if column == "tags" else getattr(e, column) == ident)
            and period.start <= e.occurred_at < period.end
        )


def _events(keys: dict[str, dict[str, Any]]) -> list[SpendEvent]:
    out = []
    for i, at in enumerate(INSTANTS):
        for j, who in enumerate(ATTRIBUTIONS):
            out.append(
                SpendEvent(
                    event_id=f"req-{i}-{j}",
                    occurred_at=at,
                    cost_nanos=200_000_000 + 9_876_541 * i + 3_000_017 * j,
                    usage=Usage(input_tokens=50 + i, output_tokens=10),
                    model=MODELS[(i + j) % 2],
                    provider="openai",
                    deployment_id="dep-1",
                    **{**who, "api_key": keys[who["api_key"]]["key_id"]},
                )
            )
    return out


async def _build(engine: AsyncEngine, tz: str, client: httpx.AsyncClient) -> World:
    api = Api(client)
    await api.ok(
        "POST",
        "/budget/new",
        {
            "budget_id": "shared",
            "max_budget": 40,
            "budget_duration": "1mo",
            "soft_budget": 0.5,
            "model_max_budget": {"gpt-4o": {"max_budget": 3, "budget_duration": "24h"}},
        },
    )
    await api.ok("POST", "/budget/new", {"budget_id": "idle", "max_budget": 5, "budget_duration": "1d"})
    await api.ok("POST", "/budget/new", {"budget_id": "fine", "max_budget": 1, "budget_duration": "20m"})
    await api.ok(
        "POST",
        "/organization/new",
        {"organization_id": "o1", "organization_alias": "Org one", "budget_id": "shared"},
    )
    await api.ok(
        "POST",
        "/team/new",
        {
            "team_id": "t1",
            "organization_id": "o1",
            "budget_id": "shared",
            "budget_limits": [{"budget_duration": "7d", "max_budget": 9}],
        },
    )
    await api.ok("POST", "/user/new", {"user_id": "u1", "auto_create_key": False, "teams": ["t1"]})
    await api.ok("POST", "/customer/new", {"user_id": "c1", "budget_id": "shared"})
    world = World(api, engine, tz, [])
    # k1 keeps the profile's max but counts it per day, with one more window of its own.
    world.keys["k1"] = await api.ok(
        "POST",
        "/key/generate",
        {
            "key_alias": "k1",
            "team_id": "t1",
            "budget_id": "shared",
            "budget_duration": "24h",
            "budget_limits": [{"budget_duration": "1h", "max_budget": 1}],
        },
    )
    world.keys["k2"] = await api.ok("POST", "/key/generate", {"key_alias": "k2", "budget_id": "shared"})
    world.keys["k3"] = await api.ok(
        "POST", "/key/generate", {"key_alias": "k3", "max_budget": 40, "budget_duration": "1mo"}
    )
    world.keys["k4"] = await api.ok("POST", "/key/generate", {"key_alias": "k4", "budget_id": "fine"})
    async with engine.begin() as conn:
        # Tags and member budgets have no endpoint that points them at a shared profile.
        await conn.execute(insert(Tag), [{"tag_name": "vip", "budget_id": "shared"}])
        await conn.execute(insert(Tag), [{"tag_name": "fast", "budget_id": "fine"}])
        await conn.execute(
            update(TeamMembership).where(TeamMembership.user_id == "u1").values(budget_id="shared")
        )
    world.events = _events(world.keys)
    result = await LedgerRepository(engine).write_batch(world.events)
    assert result.inserted == len(world.events)
    return world


@pytest_asyncio.fixture(params=ZONES)
async def world(request: pytest.FixtureRequest, engine: AsyncEngine) -> AsyncIterator[World]:
    """Profiles used by keys, a team, an organization, a customer and tags, and a ledger of
    known events; ``litellm_settings.timezone`` is each zone in turn; the clock stands at NOW."""
    tz = str(request.param)
    settings = AdminSettings.from_master_key(engine, MASTER, clock=lambda: NOW, timezone=tz)
    app = Starlette(routes=admin_routes(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
        yield await _build(engine, tz, client)


def _period(duration: str | None, zone: str) -> Period:
    return period_for(duration or "lifetime", NOW, zone)


def _spend_fields(obj: dict[str, Any]) -> dict[str, Any]:
    return {name: obj[name] for name in SPEND_FIELDS}


async def _info(world: World, ids: list[str], key: str = MASTER) -> dict[str, dict[str, Any]]:
    data = await world.api.ok("POST", "/budget/info", {"budgets": ids}, key=key)
    assert [b["budget_id"] for b in data] == ids
    return {b["budget_id"]: b for b in data}


# -- tests ------------------------------------------------------------------------------------


async def test_used_by_equals_each_entity_own_info(world: World) -> None:
    shared = (await _info(world, ["shared"]))["shared"]
    assert [(u["type"], u["id"]) for u in shared["used_by"]] == [
        *sorted(("key", world.keys[k]["key_id"]) for k in ("k1", "k2")),
        ("team", "t1"),
        ("organization", "o1"),
        ("customer", "c1"),
        ("tag", "vip"),
    ]
    by = {(u["type"], u["id"]): u for u in shared["used_by"]}
    for name in ("k1", "k2"):
        info = await world.api.ok("GET", "/key/info", params={"key": world.keys[name]["key"]})
        assert _spend_fields(by[("key", world.keys[name]["key_id"])]) == _spend_fields(info["info"])
    team = await world.api.ok("GET", "/team/info", params={"team_id": "t1"})
    assert _spend_fields(by[("team", "t1")]) == _spend_fields(team["team_info"])
    org = await world.api.ok("GET", "/organization/info", params={"organization_id": "o1"})
    assert _spend_fields(by[("organization", "o1")]) == _spend_fields(org)
    customer = await world.api.ok("GET", "/customer/info", params={"end_user_id": "c1"})
    assert _spend_fields(by[("customer", "c1")]) == _spend_fields(customer)
    # Each entity counts in its own period: k1 per day (its own duration), the rest per month.
    day, month = _period("24h", world.tz), _period("1mo", world.tz)
    k1 = by[("key", world.keys["k1"]["key_id"])]
    assert nanos(k1["spend"]) == world.spent("api_key", world.keys["k1"]["key_id"], day) > 0
    assert datetime.fromisoformat(k1["budget_reset_at"]) == day.end
    assert nanos(by[("team", "t1")]["spend"]) == world.spent("team_id", "t1", month) > 0
    assert [w["budget_duration"] for w in by[("team", "t1")]["budget_windows"]] == ["1mo", "7d", "24h"]


async def test_tag_entry_is_the_profile_applied_to_the_tag(world: World) -> None:
    """A tag has no info endpoint: its entry is checked against the events directly."""
    shared = (await _info(world, ["shared"]))["shared"]
    (vip,) = [u for u in shared["used_by"] if u["type"] == "tag"]
    month, day = _period("1mo", world.tz), _period("24h", world.tz)
    assert nanos(vip["spend"]) == world.spent("tags", "vip", month) > 0
    assert nanos(vip["lifetime_spend"]) == world.spent("tags", "vip", _period(None, "UTC"))
    assert datetime.fromisoformat(vip["budget_reset_at"]) == month.end
    assert vip["soft_budget_reached"] is True  # 0.5 USD of the profile, long passed
    main, model = vip["budget_windows"]
    assert (main["budget_duration"], nanos(main["max_budget"])) == ("1mo", 40 * 10**9)
    assert nanos(main["remaining"]) == 40 * 10**9 - nanos(vip["spend"])
    assert (model["model"], model["budget_duration"]) == ("gpt-4o", "24h")
    on_gpt4o = sum(
        e.cost_nanos
        for e in world.events
        if "vip" in e.tags and e.model == "gpt-4o" and day.start <= e.occurred_at < day.end
    )
    assert nanos(model["spend"]) == on_gpt4o


async def test_profile_spend_is_the_ledger_sum_of_its_users(world: World) -> None:
    shared = (await _info(world, ["shared"]))["shared"]
    k1, k2 = world.keys["k1"]["key_id"], world.keys["k2"]["key_id"]
    day, month, ever = _period("24h", world.tz), _period("1mo", world.tz), _period(None, "UTC")
    users = [
        ("api_key", k1, day),
        ("api_key", k2, month),
        ("team_id", "t1", month),
        ("organization_id", "o1", month),
        ("end_user", "c1", month),
        ("tags", "vip", month),
    ]
    assert nanos(shared["spend"]) == sum(world.spent(c, i, p) for c, i, p in users)
    assert nanos(shared["lifetime_spend"]) == sum(world.spent(c, i, ever) for c, i, _ in users)
    # The profile's own fields are unchanged.
    assert (nanos(shared["max_budget"]), shared["budget_duration"]) == (40 * 10**9, "1mo")


async def test_unused_profile_and_list(world: World) -> None:
    info = await _info(world, ["shared", "idle", "fine"])
    assert info["idle"]["used_by"] == []
    assert nanos(info["idle"]["spend"]) == 0 and nanos(info["idle"]["lifetime_spend"]) == 0
    listed = await world.api.ok("GET", "/budget/list")
    assert {b["budget_id"]: b for b in listed} == info


async def test_tag_window_off_the_rollup_buckets_is_not_guessed(world: World) -> None:
    """``fine`` counts 20-minute blocks (14:20–14:40): a key reads the block's edges from its
    events, a tag cannot (its spend is only rolled up), so the tag's and the profile's
    current spend are null rather than wrong; lifetime figures stay exact."""
    fine = (await _info(world, ["fine"]))["fine"]
    key_entry, tag_entry = fine["used_by"]
    k4 = world.keys["k4"]["key_id"]
    block = _period("20m", world.tz)
    assert (key_entry["type"], key_entry["id"]) == ("key", k4)
    assert nanos(key_entry["spend"]) == world.spent("api_key", k4, block) > 0
    assert (tag_entry["type"], tag_entry["id"]) == ("tag", "fast")
    assert tag_entry["spend"] is None and tag_entry["budget_windows"] == []
    assert "spend_unreadable" in tag_entry
    assert nanos(tag_entry["lifetime_spend"]) == world.spent("tags", "fast", _period(None, "UTC"))
    assert fine["spend"] is None
    ever = _period(None, "UTC")
    expected = world.spent("api_key", k4, ever) + world.spent("tags", "fast", ever)
    assert nanos(fine["lifetime_spend"]) == expected


async def test_memberships_are_left_out(world: World) -> None:
    """u1's member budget in t1 points at ``shared`` but is not rolled up: not in used_by."""
    shared = (await _info(world, ["shared"]))["shared"]
    assert {u["type"] for u in shared["used_by"]} == {"key", "team", "organization", "customer", "tag"}
    shown = {ref.model for ref in REFERRERS}
    assert shown | set(WITHOUT_SPEND) == {model for model, _ in BUDGET_REFERRERS}
    assert not shown & set(WITHOUT_SPEND)


async def test_viewer_sees_the_same_and_others_are_refused(world: World) -> None:
    viewer = await world.api.ok(
        "POST", "/user/new", {"user_id": "viewer", "user_role": "proxy_admin_viewer", "auto_create_key": True}
    )
    as_master = await _info(world, ["shared", "idle"])
    assert await _info(world, ["shared", "idle"], key=viewer["key"]) == as_master
    status, _ = await world.api.post("/budget/info", {"budgets": ["shared"]}, key=world.keys["k2"]["key"])
    assert status == 403


@pytest.fixture
def statements(world: World) -> Iterator[list[str]]:
    """Every SQL statement the engine runs while the test reads."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    target = world.engine.sync_engine
    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)


async def test_reads_rollups_once_per_scope_type_never_events(world: World, statements: list[str]) -> None:
    """Two keys, a team, an organization, a customer and a tag: one rollup read per scope type."""
    statements.clear()
    await _info(world, ["shared", "idle"])
    reads = [s for s in statements if "spend_rollups" in s]
    assert len(reads) == 5, reads
    assert not [s for s in statements if "spend_events" in s]
