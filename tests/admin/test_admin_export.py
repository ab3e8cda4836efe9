"""``GET /global/spend/export`` through HTTP on SQLite and PostgreSQL: CSV and FOCUS equal the
ledger to the nano-USD in three zones, key ids shown as hashes, streamed as text/csv with a
file name, the role rule (admins everything, others their own spend, a filter naming someone
else's key, user or team is a 403), and 422s naming the parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import pytest
from admin_helpers import MASTER, Api
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from export_helpers import DAYS, ZONES, fill, known_events, read_csv
from spendgate.core.keys import hash_key
from spendgate.core.money import from_nano
from spendgate.ledger.exports import CSV_COLUMNS, day_range
from spendgate.ledger.focus import FOCUS_COLUMNS
from spendgate.stores.database.models import SpendEventRow

PATH = "/global/spend/export"
DATES = {"start_date": DAYS[0].isoformat(), "end_date": DAYS[1].isoformat()}


@dataclass
class World:
    keys: dict[str, str]  # caller -> raw key
    ids: dict[str, str]  # event key name -> key_id in the ledger
    tokens: dict[str, str]  # key_id -> current hash


async def seed(api: Api, engine: AsyncEngine) -> World:
    keys = {"master": MASTER}
    for user, role in (
        ("admin", "proxy_admin"),
        ("viewer", "proxy_admin_viewer"),
        ("tadmin", "internal_user"),
        ("member", "internal_user"),
        ("outsider", "internal_user"),
    ):
        keys[user] = (await api.ok("POST", "/user/new", {"user_id": user, "user_role": role}))["key"]
    await api.ok(
        "POST",
        "/team/new",
        {
            "team_id": "t1",
            "team_alias": "Team One",
            "members_with_roles": [
                {"role": "admin", "user_id": "tadmin"},
                {"role": "user", "user_id": "member"},
            ],
        },
    )
    await api.ok(
        "POST",
        "/team/new",
        {"team_id": "t2", "members_with_roles": [{"role": "user", "user_id": "outsider"}]},
    )
    target = (await api.ok("POST", "/key/generate", {"user_id": "member", "team_id": "t1"}))["key"]
    other = (await api.ok("POST", "/key/generate", {"user_id": "outsider", "team_id": "t2"}))["key"]
    keys["userless"] = (await api.ok("POST", "/key/generate", {"key_alias": "service"}))["key"]
    ids = {"target": hash_key(target), "other": hash_key(other), "userless": hash_key(keys["userless"])}
    # Regenerated: the ledger keeps naming it by key_id, the export shows its current hash.
    regenerated = (await api.ok("POST", "/key/regenerate", {"key": target}))["key"]
    keys["target"] = regenerated
    tokens = {
        ids["target"]: hash_key(regenerated),
        ids["other"]: ids["other"],
        ids["userless"]: ids["userless"],
    }
    known = known_events(
        keys=(ids["target"], ids["other"], ids["userless"]),
        users=("member", "outsider", "nobody"),
        teams=("t1", "t2", None),
    )
    await fill(engine, known)
    return World(keys, ids, tokens)


async def export(api: Api, key: str, **params: str) -> tuple[int, dict[str, str], bytes]:
    response = await api.client.get(PATH, params=params, headers={"authorization": f"Bearer {key}"})
    return response.status_code, dict(response.headers), response.content


async def ledger(engine: AsyncEngine, start: datetime, end: datetime) -> tuple[int, set[str]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(SpendEventRow.event_id, SpendEventRow.cost_nanos).where(
                    SpendEventRow.occurred_at >= start, SpendEventRow.occurred_at < end
                )
            )
        ).all()
    return sum(r.cost_nanos for r in rows), {r.event_id for r in rows}


@pytest.mark.parametrize("tz", ZONES)
async def test_admin_csv_and_focus_equal_the_ledger(api: Api, engine: AsyncEngine, tz: str) -> None:
    world = await seed(api, engine)
    start, end = day_range(*DAYS, tz)
    total, ids = await ledger(engine, start, end)
    assert total > 0

    status, headers, body = await export(api, MASTER, **DATES, timezone=tz)
    assert status == 200, body
    assert headers["content-type"].startswith("text/csv")
    assert headers["content-disposition"] == 'attachment; filename="spendgate-csv-2026-11-18-2026-11-18.csv"'
    header, rows = read_csv(body)
    assert tuple(header) == CSV_COLUMNS
    assert {r["request_id"] for r in rows} == ids
    assert sum(int(r["cost_nanos"]) for r in rows) == total
    assert sum(Decimal(r["spend"]) for r in rows) == from_nano(total)
    assert {r["api_key"] for r in rows} == set(world.tokens.values())  # hashes, the regenerated one too
    assert {r["team_alias"] for r in rows if r["team_id"] == "t1"} == {"Team One"}

    status, headers, body = await export(api, world.keys["viewer"], **DATES, timezone=tz, format="focus")
    assert status == 200, body
    assert "focus" in headers["content-disposition"]
    header, rows = read_csv(body)
    assert tuple(header) == tuple(FOCUS_COLUMNS)
    assert sum(Decimal(r["BilledCost"]) for r in rows) == from_nano(total)
    assert sum(int(r["x_BilledCostNanos"]) for r in rows) == total
    assert all((r["ConsumedQuantity"] == "") == (r["ConsumedUnit"] == "") for r in rows)
    assert {r["SubAccountName"] for r in rows if r["SubAccountId"] == "t1"} == {"Team One"}


async def test_grouped_export_equals_the_rollups(api: Api, engine: AsyncEngine) -> None:
    await seed(api, engine)
    start, end = day_range(*DAYS, "Asia/Kolkata")
    total, _ = await ledger(engine, start, end)
    status, headers, body = await export(api, MASTER, **DATES, timezone="Asia/Kolkata", group_by="team,model")
    assert status == 200, body
    assert "by-team-model" in headers["content-disposition"]
    _, rows = read_csv(body)
    assert sum(int(r["cost_nanos"]) for r in rows) == total
    assert {r["period_start"] for r in rows} == {"2026-11-18T00:00:00+05:30"}


async def test_roles_see_only_their_spend(api: Api, engine: AsyncEngine) -> None:
    world = await seed(api, engine)
    start, end = day_range(*DAYS, "UTC")
    async with engine.connect() as conn:
        events = (
            await conn.execute(
                select(
                    SpendEventRow.event_id,
                    SpendEventRow.api_key,
                    SpendEventRow.user_id,
                    SpendEventRow.team_id,
                ).where(SpendEventRow.occurred_at >= start, SpendEventRow.occurred_at < end)
            )
        ).all()

    def visible(key_ids: set[str], users: set[str], teams: set[str]) -> set[str]:
        return {
            e.event_id for e in events if e.api_key in key_ids or e.user_id in users or e.team_id in teams
        }

    member_own = {hash_key(world.keys["member"]), world.ids["target"]}
    expected = {
        "admin": {e.event_id for e in events},
        "member": visible(member_own, {"member"}, set()),
        "tadmin": visible({hash_key(world.keys["tadmin"]), world.ids["target"]}, {"tadmin"}, {"t1"}),
        "outsider": visible({hash_key(world.keys["outsider"]), world.ids["other"]}, {"outsider"}, set()),
        "userless": visible({world.ids["userless"]}, set(), set()),
    }
    for role, ids in expected.items():
        status, _, body = await export(api, world.keys[role], **DATES)
        assert status == 200, (role, body)
        assert {r["request_id"] for r in read_csv(body)[1]} == ids, role
        assert ids, role
    assert expected["member"] < expected["admin"]

    forbidden = [
        ("member", {"team_id": "t2"}),
        ("member", {"team_id": "t1"}),  # a member, not an admin, of t1
        ("member", {"user_id": "outsider"}),
        ("member", {"api_key": world.ids["other"]}),
        ("tadmin", {"team_id": "t2"}),
        ("outsider", {"api_key": world.keys["target"]}),
        ("userless", {"user_id": "member"}),
        ("outsider", {"group_by": "model"}),
    ]
    for role, params in forbidden:
        status, _, body = await export(api, world.keys[role], **DATES, **params)
        assert status == 403, (role, params, body)
        assert b"permission_denied" in body

    status, _, body = await export(api, world.keys["tadmin"], **DATES, team_id="t1")
    assert status == 200
    assert {r["request_id"] for r in read_csv(body)[1]} == {e.event_id for e in events if e.team_id == "t1"}
    status, _, body = await export(api, world.keys["member"], **DATES, api_key=world.keys["target"])
    assert status == 200
    assert {r["request_id"] for r in read_csv(body)[1]} == {
        e.event_id for e in events if e.api_key == world.ids["target"]
    }
    status, _, body = await export(api, world.keys["member"], **DATES, group_by="key")
    assert status == 200
    assert {r["key"] for r in read_csv(body)[1]} <= {
        hash_key(world.keys["target"]),
        hash_key(world.keys["member"]),
    }


async def test_bad_parameters_are_422_naming_them(api: Api, engine: AsyncEngine) -> None:
    for params, param in (
        ({**DATES, "start_date": "2026-13-01"}, "start_date"),
        ({**DATES, "end_date": "18/11/2026"}, "end_date"),
        ({"end_date": "2026-11-18"}, "start_date"),
        ({**DATES, "timezone": "Mars/Olympus"}, "timezone"),
        ({**DATES, "timezone": "America"}, "timezone"),
        ({"start_date": "2026-11-18", "end_date": "2026-11-17"}, "end_date"),
        ({"start_date": "2026-11-18", "end_date": "9999-12-31"}, "end_date"),
        ({**DATES, "format": "xml"}, "format"),
        ({**DATES, "format": "focus", "group_by": "team"}, "group_by"),
        ({**DATES, "group_by": "team,user"}, "group_by"),
        ({**DATES, "group_by": "team", "team_id": "t1"}, "team_id"),
    ):
        status, data = await api.get(PATH, params=params)
        assert status == 422, (params, data)
        assert data["error"]["param"] == param, (params, data)


async def test_an_empty_range_is_only_the_header(api: Api, engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(SpendEventRow)) == 0
    status, _, body = await export(api, MASTER, **DATES, format="focus")
    assert status == 200
    assert body.decode().splitlines() == [",".join(FOCUS_COLUMNS)]
