"""Spend on entities (issue #13 item 1): ``/key/info``, ``/key/list``, ``/user/info``,
``/team/info``, ``/organization/info`` and ``/customer/info`` show ``spend`` (the
``budget_duration`` window's current period, else lifetime), ``lifetime_spend`` and every
budget window's ``{budget_duration, max_budget, spend, remaining, budget_reset_at}``.

A ledger is filled with known events over two months, around the month, week, day, hour
and 15-minute boundaries of UTC, Europe/Berlin, Asia/Kolkata (+5:30) and Asia/Kathmandu
(+5:45); every figure must equal the sum of the same events computed here, to the
nano-USD, with ``litellm_settings.timezone`` set to each zone in turn (SQLite and
PostgreSQL). Reading spend must not scan ``spend_events``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from admin_helpers import MASTER, Api
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from spendgate.admin import AdminSettings
from spendgate.admin.app import admin_routes
from spendgate.core.periods import Period, period_for
from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository
from spendgate.stores.database.models import BudgetWindow

NOW = datetime(2026, 12, 10, 14, 37, 12, tzinfo=UTC)
ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4")

# LiteLLM's field names on its entity rows (LiteLLM_VerificationToken, LiteLLM_UserTable,
# LiteLLM_TeamTable, LiteLLM_OrganizationTable, LiteLLM_EndUserTable) that carry spend and budgets.
LITELLM_ENTITY_FIELDS = (
    "spend",
    "max_budget",
    "soft_budget",
    "budget_duration",
    "budget_reset_at",
    "budget_limits",
    "model_max_budget",
)
LITELLM_KEY_FIELDS = (*LITELLM_ENTITY_FIELDS, "token", "key_alias", "total_spend")
SPENDGATE_FIELDS = ("lifetime_spend", "soft_budget_reached", "budget_windows")
WINDOW_FIELDS = ("budget_duration", "max_budget", "spend", "remaining", "budget_reset_at")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Around: the previous month; the month boundary in Kolkata (18:30) and Berlin (23:00);
# the week (Monday 7 Dec) and day boundaries in each zone; the hour in Kathmandu (xx:15) and
# Kolkata (xx:30); the 100-minute block 13:40–15:20 (its 15-minute edges); after "now".
INSTANTS = [
    _at(t)
    for t in (
        "2026-11-03 10:00:00",
        "2026-11-15 08:20:00",
        "2026-11-30 18:20:00",
        "2026-11-30 18:40:00",
        "2026-11-30 22:50:00",
        "2026-11-30 23:10:00",
        "2026-12-01 00:10:00",
        "2026-12-06 18:20:00",
        "2026-12-06 18:40:00",
        "2026-12-06 22:30:00",
        "2026-12-06 23:30:00",
        "2026-12-07 00:30:00",
        "2026-12-09 18:20:00",
        "2026-12-09 18:40:00",
        "2026-12-09 23:20:00",
        "2026-12-10 00:05:00",
        "2026-12-10 13:38:00",
        "2026-12-10 13:42:00",
        "2026-12-10 13:44:59",
        "2026-12-10 13:45:00",
        "2026-12-10 14:10:00",
        "2026-12-10 14:14:59",
        "2026-12-10 14:15:00",
        "2026-12-10 14:29:59",
        "2026-12-10 14:30:00",
        "2026-12-10 14:36:00",
        "2026-12-10 14:37:11",
        "2026-12-10 15:16:00",
        "2026-12-10 15:21:00",
    )
]


@dataclass
class World:
    api: Api
    engine: AsyncEngine
    tz: str
    events: list[SpendEvent]
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    """name → the /key/generate response (``key``, ``token``, ``key_id``)."""

    def spent(self, column: str, ident: str, period: Period, model: str | None = None) -> int:
        """Nano-USD of the events attributed to ``column == ident`` in ``period``."""
        return sum(
            e.cost_nanos
            for e in self.events
            if getattr(e, column) == ident
            and period.start <= e.occurred_at < period.end
            and (model is None or e.model == model)
        )


def _events(attributions: list[dict[str, Any]]) -> list[SpendEvent]:
    out = []
    for i, at in enumerate(INSTANTS):
        for j, who in enumerate(attributions):
            out.append(
                SpendEvent(
                    event_id=f"req-{i}-{j}",
                    occurred_at=at,
                    cost_nanos=100_000_000 + 7_919_113 * i + 1_000_003 * j,
                    usage=Usage(input_tokens=100 + i, output_tokens=20),
                    model=MODELS[(i + j) % 3],
                    provider="openai",
                    deployment_id="dep-1",
                    **who,
                )
            )
    return out


async def _build(engine: AsyncEngine, tz: str, client: httpx.AsyncClient) -> World:
    api = Api(client)
    await api.ok(
        "POST",
        "/budget/new",
        {"budget_id": "prof-1", "max_budget": 40, "budget_duration": "1mo", "soft_budget": 0.5},
    )
    await api.ok(
        "POST",
        "/organization/new",
        {
            "organization_id": "org-1",
            "organization_alias": "Org one",
            "max_budget": 100,
            "budget_duration": "30d",
            "budget_limits": [{"budget_duration": "24h", "max_budget": 5}],
            "model_max_budget": {"claude-sonnet-4": {"max_budget": 4, "budget_duration": "1mo"}},
        },
    )
    await api.ok(
        "POST",
        "/organization/new",
        {"organization_id": "org-2", "organization_alias": "Org two", "budget_id": "prof-1"},
    )
    await api.ok(
        "POST",
        "/team/new",
        {
            "team_id": "team-1",
            "organization_id": "org-1",
            "max_budget": 50,
            "budget_duration": "7d",
            "soft_budget": "0.000001",
            "budget_limits": [
                {"budget_duration": "1h", "max_budget": 1},
                {"budget_duration": "100m", "max_budget": 2},
            ],
            "model_max_budget": {"gpt-4o": {"max_budget": 3, "budget_duration": "24h"}},
        },
    )
    await api.ok("POST", "/team/new", {"team_id": "team-2", "organization_id": "org-2"})
    await api.ok(
        "POST",
        "/user/new",
        {
            "user_id": "user-1",
            "max_budget": 10,
            "auto_create_key": False,
            "teams": ["team-1"],
            "model_max_budget": {"gpt-4o-mini": {"max_budget": 6, "budget_duration": "7d"}},
        },
    )
    await api.ok("POST", "/user/new", {"user_id": "user-2", "auto_create_key": False, "teams": ["team-2"]})
    await api.ok(
        "POST",
        "/customer/new",
        {
            "user_id": "cust-1",
            "max_budget": 7,
            "budget_duration": "1d",
            "model_max_budget": {"gpt-4o": {"budget_limit": 8, "time_period": "24h"}},
        },
    )
    await api.ok("POST", "/customer/new", {"user_id": "cust-2", "budget_id": "prof-1"})
    world = World(api, engine, tz, [])
    world.keys["a"] = await api.ok(
        "POST",
        "/key/generate",
        {
            "key_alias": "a",
            "user_id": "user-1",
            "team_id": "team-1",
            "max_budget": 20,
            "budget_duration": "24h",
            "soft_budget": 1000,
            "budget_limits": [
                {"budget_duration": "1mo", "max_budget": 30},
                {"budget_duration": "30m", "max_budget": 0.5},
            ],
            "model_max_budget": {
                "gpt-4o": {"max_budget": 2},
                "gpt-4o-mini": {"max_budget": 1, "budget_duration": "1h"},
            },
        },
    )
    world.keys["b"] = await api.ok(
        "POST", "/key/generate", {"key_alias": "b", "user_id": "user-1", "budget_id": "prof-1"}
    )
    world.keys["c"] = await api.ok(
        "POST", "/key/generate", {"key_alias": "c", "user_id": "user-2", "team_id": "team-2"}
    )
    # A temporary increase raises what remains in key a's main window (until 2030).
    await api.ok(
        "POST",
        "/key/update",
        {
            "key": world.keys["a"]["key"],
            "temp_budget_increase": 5,
            "temp_budget_expiry": "2030-01-01T00:00:00Z",
        },
    )
    # A window with its own zone: team-1's hour is Kathmandu's (+5:45, hours start at xx:15 UTC).
    async with engine.begin() as conn:
        await conn.execute(
            update(BudgetWindow)
            .where(BudgetWindow.scope_id == "team-1", BudgetWindow.budget_duration == "1h")
            .values(timezone="Asia/Kathmandu")
        )
    world.events = _events(
        [
            {
                "api_key": world.keys["a"]["key_id"],
                "user_id": "user-1",
                "team_id": "team-1",
                "organization_id": "org-1",
                "end_user": "cust-1",
            },
            {"api_key": world.keys["b"]["key_id"], "user_id": "user-1", "end_user": "cust-2"},
            {
                "api_key": world.keys["c"]["key_id"],
                "user_id": "user-2",
                "team_id": "team-2",
                "organization_id": "org-2",
                "end_user": "cust-1",
            },
        ]
    )
    result = await LedgerRepository(engine).write_batch(world.events)
    assert result.inserted == len(world.events)
    return world


@pytest_asyncio.fixture(params=ZONES)
async def world(request: pytest.FixtureRequest, engine: AsyncEngine) -> AsyncIterator[World]:
    """Entities with many windows and a ledger of known events; ``litellm_settings.timezone``
    is each zone in turn; the clock stands at NOW."""
    tz = str(request.param)
    settings = AdminSettings.from_master_key(engine, MASTER, clock=lambda: NOW, timezone=tz)
    app = Starlette(routes=admin_routes(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
        yield await _build(engine, tz, client)


# -- what each entity must show -------------------------------------------------------------


@dataclass(frozen=True)
class W:
    """An expected budget window: its configured duration and max (USD), and the window and
    zone its period is read in (None: the default zone)."""

    duration: str | None
    max_usd: str | None
    model: str | None = None
    zone: str | None = None
    extra_usd: str = "0"
    """A temporary increase that has not expired."""


def nanos(value: Any) -> int:
    """A JSON number (read as Decimal or int) in nano-USD; it must be a whole number of nanos."""
    amount = Decimal(str(value)) * 1_000_000_000
    assert amount == amount.to_integral_value(), value
    return int(amount)


def _period(duration: str | None, zone: str) -> Period:
    return period_for(duration or "lifetime", NOW, zone)


def _reset(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class Expect:
    """What an entity is configured with: its ``budget_duration`` (None: lifetime), its
    budget windows, and its soft budget (USD)."""

    duration: str | None
    windows: list[W]
    soft_usd: str | None = None


def check_entity(world: World, obj: dict[str, Any], column: str, ident: str, expect: Expect) -> None:
    """Every spend figure of ``obj`` equals the events' sum, to the nano-USD."""
    duration, windows, soft_usd = expect.duration, expect.windows, expect.soft_usd
    for name in (*LITELLM_ENTITY_FIELDS, *SPENDGATE_FIELDS):
        assert name in obj, name
    main = _period(duration, world.tz)
    assert nanos(obj["spend"]) == world.spent(column, ident, main)
    assert nanos(obj["spend"]) > 0
    assert _reset(obj["budget_reset_at"]) == (None if duration is None else main.end)
    lifetime = world.spent(column, ident, _period(None, "UTC"))
    assert nanos(obj["lifetime_spend"]) == lifetime
    if "total_spend" in obj:
        assert nanos(obj["total_spend"]) == lifetime
    expected_soft = soft_usd is not None and world.spent(column, ident, main) >= nanos(soft_usd)
    assert obj["soft_budget_reached"] is expected_soft

    shown = {(w.get("model"), w["budget_duration"]): w for w in obj["budget_windows"]}
    assert len(shown) == len(obj["budget_windows"]) == len(windows), obj["budget_windows"]
    for want in windows:
        got = shown[(want.model, want.duration)]
        for name in WINDOW_FIELDS:
            assert name in got, name
        zone = want.zone or world.tz
        period = _period(want.duration, zone)
        spent = world.spent(column, ident, period, want.model)
        assert nanos(got["spend"]) == spent, (want, got)
        assert got["timezone"] == zone
        assert nanos(got["max_budget"]) == nanos(want.max_usd)
        limit = nanos(want.max_usd) + nanos(want.extra_usd)
        assert nanos(got["remaining"]) == max(limit - spent, 0)
        if want.duration is None:
            assert got["budget_reset_at"] is None
        else:
            assert _reset(got["budget_reset_at"]) == period.end
            assert _reset(got["period_start"]) == period.start


KEY_A = Expect(
    "24h",
    [
        W("24h", "20", extra_usd="5"),
        W("1mo", "30"),
        W("30m", "0.5"),
        W(None, "2", model="gpt-4o"),
        W("1h", "1", model="gpt-4o-mini"),
    ],
    soft_usd="1000",
)
KEY_B = Expect("1mo", [W("1mo", "40")], soft_usd="0.5")  # from its budget profile
KEY_C = Expect(None, [])
USER_1 = Expect(None, [W(None, "10"), W("7d", "6", model="gpt-4o-mini")])
TEAM_1 = Expect(
    "7d",
    [
        W("7d", "50"),
        W("1h", "1", zone="Asia/Kathmandu"),
        W("100m", "2"),
        W("24h", "3", model="gpt-4o"),
    ],
    soft_usd="0.000001",
)
ORG_1 = Expect("30d", [W("30d", "100"), W("24h", "5"), W("1mo", "4", model="claude-sonnet-4")])
ORG_2 = Expect("1mo", [W("1mo", "40")], soft_usd="0.5")  # from its budget profile
CUST_1 = Expect("1d", [W("1d", "7"), W("24h", "8", model="gpt-4o")])
CUST_2 = Expect("1mo", [W("1mo", "40")], soft_usd="0.5")  # from its budget profile


def _key_spec(name: str) -> Expect:
    return {"a": KEY_A, "b": KEY_B, "c": KEY_C}[name]


# -- tests ------------------------------------------------------------------------------------


async def test_key_info_and_list_show_exact_spend(world: World) -> None:
    for name in ("a", "b", "c"):
        info = await world.api.ok("GET", "/key/info", params={"key": world.keys[name]["key"]})
        obj = info["info"]
        for field_name in LITELLM_KEY_FIELDS:
            assert field_name in obj, field_name
        check_entity(world, obj, "api_key", world.keys[name]["key_id"], _key_spec(name))
    listed = await world.api.ok("GET", "/key/list", params={"return_full_object": "true", "size": 100})
    by_alias = {k["key_alias"]: k for k in listed["keys"]}
    for name in ("a", "b", "c"):
        check_entity(world, by_alias[name], "api_key", world.keys[name]["key_id"], _key_spec(name))
    # The soft budget states differ: a's 1000 USD is far, b's 0.5 USD profile soft budget is passed.
    assert by_alias["a"]["soft_budget_reached"] is False
    assert by_alias["b"]["soft_budget_reached"] is True


async def test_user_info_shows_user_keys_and_teams_spend(world: World) -> None:
    data = await world.api.ok("GET", "/user/info", params={"user_id": "user-1"})
    check_entity(world, data["user_info"], "user_id", "user-1", USER_1)
    keys = {k["key_alias"]: k for k in data["keys"]}
    assert set(keys) == {"a", "b"}
    for name, obj in keys.items():
        check_entity(world, obj, "api_key", world.keys[name]["key_id"], _key_spec(name))
    (team,) = data["teams"]
    check_entity(world, team, "team_id", "team-1", TEAM_1)


async def test_team_info_shows_team_and_key_spend(world: World) -> None:
    data = await world.api.ok("GET", "/team/info", params={"team_id": "team-1"})
    check_entity(world, data["team_info"], "team_id", "team-1", TEAM_1)
    assert data["team_info"]["soft_budget_reached"] is True
    (key,) = data["keys"]
    check_entity(world, key, "api_key", world.keys["a"]["key_id"], KEY_A)


async def test_organization_and_customer_info_show_spend(world: World) -> None:
    org1 = await world.api.ok("GET", "/organization/info", params={"organization_id": "org-1"})
    check_entity(world, org1, "organization_id", "org-1", ORG_1)
    org2 = await world.api.ok("GET", "/organization/info", params={"organization_id": "org-2"})
    check_entity(world, org2, "organization_id", "org-2", ORG_2)
    cust1 = await world.api.ok("GET", "/customer/info", params={"end_user_id": "cust-1"})
    check_entity(world, cust1, "end_user", "cust-1", CUST_1)
    cust2 = await world.api.ok("GET", "/end_user/info", params={"end_user_id": "cust-2"})
    check_entity(world, cust2, "end_user", "cust-2", CUST_2)


async def test_known_period_boundaries(world: World) -> None:
    """The periods shown are the local calendar's, checked against hand-computed instants."""
    team = (await world.api.ok("GET", "/team/info", params={"team_id": "team-1"}))["team_info"]
    windows = {(w.get("model"), w["budget_duration"]): w for w in team["budget_windows"]}
    week_start = {
        "UTC": "2026-12-07T00:00:00+00:00",
        "Europe/Berlin": "2026-12-06T23:00:00+00:00",
        "Asia/Kolkata": "2026-12-06T18:30:00+00:00",
    }[world.tz]
    assert _reset(windows[(None, "7d")]["period_start"]) == datetime.fromisoformat(week_start)
    # Kathmandu (+5:45): the hour of 20:22 local started at 14:15 UTC.
    assert _reset(windows[(None, "1h")]["period_start"]) == _at("2026-12-10 14:15:00")
    assert _reset(windows[(None, "1h")]["budget_reset_at"]) == _at("2026-12-10 15:15:00")
    # 100-minute blocks from the epoch: 13:40–15:20 UTC, whose ends are not on 15 minutes.
    assert _reset(windows[(None, "100m")]["period_start"]) == _at("2026-12-10 13:40:00")
    key = (await world.api.ok("GET", "/key/info", params={"key": world.keys["b"]["key"]}))["info"]
    month_start = {
        "UTC": "2026-12-01T00:00:00+00:00",
        "Europe/Berlin": "2026-11-30T23:00:00+00:00",
        "Asia/Kolkata": "2026-11-30T18:30:00+00:00",
    }[world.tz]
    assert _reset(key["budget_windows"][0]["period_start"]) == datetime.fromisoformat(month_start)


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


async def test_key_list_reads_rollups_once_never_events(world: World, statements: list[str]) -> None:
    """Many keys' spend is one statement over the rollups; no raw event is read."""
    for i in range(12):
        await world.api.ok(
            "POST",
            "/key/generate",
            {
                "key_alias": f"more-{i}",
                "max_budget": 3,
                "budget_duration": "1mo",
                "budget_limits": [{"budget_duration": "24h", "max_budget": 1}],
            },
        )
    statements.clear()
    listed = await world.api.ok("GET", "/key/list", params={"return_full_object": "true", "size": 100})
    assert len(listed["keys"]) == 15
    reads = [s for s in statements if "spend_rollups" in s]
    assert len(reads) == 1, reads
    assert not [s for s in statements if "spend_events" in s]
    for k in listed["keys"]:
        if k["key_alias"].startswith("more-"):
            assert nanos(k["spend"]) == 0
            assert [nanos(w["spend"]) for w in k["budget_windows"]] == [0, 0]


async def test_lists_with_spend_show_what_info_shows_a_page_at_a_time(world: World) -> None:
    """``with_spend=true`` on /team/list, /user/list, /organization/list and /customer/list:
    each row carries the same spend fields as its info endpoint; ``page`` cuts the plain list."""
    teams = await world.api.ok("GET", "/team/list", params={"with_spend": "true"})
    check_entity(world, next(t for t in teams if t["team_id"] == "team-1"), "team_id", "team-1", TEAM_1)
    users = (await world.api.ok("GET", "/user/list", params={"with_spend": "true", "user_ids": "user-1"}))[
        "users"
    ]
    check_entity(world, users[0], "user_id", "user-1", USER_1)
    orgs = {
        o["organization_id"]: o
        for o in await world.api.ok("GET", "/organization/list", params={"with_spend": "true"})
    }
    check_entity(world, orgs["org-1"], "organization_id", "org-1", ORG_1)
    check_entity(world, orgs["org-2"], "organization_id", "org-2", ORG_2)
    customers = {
        c["user_id"]: c for c in await world.api.ok("GET", "/customer/list", params={"with_spend": "true"})
    }
    check_entity(world, customers["cust-1"], "end_user", "cust-1", CUST_1)
    check_entity(world, customers["cust-2"], "end_user", "cust-2", CUST_2)
    # Without with_spend a list shows no spend, as before; a page is a slice of the same order.
    plain = await world.api.ok("GET", "/team/list")
    assert [t["team_id"] for t in plain] == ["team-1", "team-2"] and "budget_windows" not in plain[0]
    second = await world.api.ok("GET", "/team/list", params={"page": 2, "page_size": 1})
    assert [t["team_id"] for t in second] == ["team-2"]
    assert await world.api.ok("GET", "/customer/list", params={"page": 3, "page_size": 1}) == []
