"""The role matrix of the daily activity endpoints: who may read which activity, and what
an allowed caller sees (only what is theirs).

Callers: the master key; proxy_admin; proxy_admin_viewer; ``tadmin`` (internal_user, admin
of team t1); ``member`` (internal_user in t1, owner of the ``target`` key); ``outsider``
(internal_user in no team); ``userless`` (a key that belongs to no user). The ledger holds
one event for each of target (member, t1), tadmin's key (t1), outsider's key, the userless
key and a t2 key, so each allowed answer can be checked for exactly the caller's spend.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from admin_helpers import Api
from role_helpers import NO, OK, T1_MEMBERS, World, add_callers, call_on_copy, matrix, seeded_world
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.money import from_nano
from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository

ROLES = ("master", "admin", "viewer", "tadmin", "member", "outsider", "userless")
ADMINS = (OK, OK, OK, NO, NO, NO, NO)
EVERYONE = (OK,) * 7
DATES = {"start_date": "2026-05-01", "end_date": "2026-05-03"}
COST = {
    "target": 1_000_000_001,
    "tadmin": 20_000_000_002,
    "outsider": 300_000_000_003,
    "userless": 4_000_000_004,
}
COST_T2 = 50_000_000_005

# (id, path, query, expected status per role in ROLES order)
CASES: list[tuple[str, str, dict[str, str], tuple[int, ...]]] = [
    ("user", "/user/daily/activity", {}, EVERYONE),
    ("user-member", "/user/daily/activity", {"user_id": "member"}, (OK, OK, OK, NO, OK, NO, NO)),
    ("user-tadmin", "/user/daily/activity", {"user_id": "tadmin"}, (OK, OK, OK, OK, NO, NO, NO)),
    ("user-target-key", "/user/daily/activity", {"api_key": "{target}"}, (OK, OK, OK, OK, OK, NO, NO)),
    ("user-userless-key", "/user/daily/activity", {"api_key": "{userless}"}, (OK, OK, OK, NO, NO, NO, OK)),
    ("team", "/team/daily/activity", {}, EVERYONE),
    ("team-t1", "/team/daily/activity", {"team_ids": "t1"}, (OK, OK, OK, OK, NO, NO, NO)),
    ("team-t2", "/team/daily/activity", {"team_ids": "t2"}, ADMINS),
    ("team-t1-t2", "/team/daily/activity", {"team_ids": "t1,t2"}, ADMINS),
    ("team-target-key", "/team/daily/activity", {"api_key": "{target}"}, (OK, OK, OK, OK, OK, NO, NO)),
    ("tag", "/tag/daily/activity", {}, ADMINS),
    ("tag-prod", "/tag/daily/activity", {"tags": "prod"}, ADMINS),
    ("customer", "/customer/daily/activity", {}, ADMINS),
    ("customer-c1", "/customer/daily/activity", {"end_user_ids": "c1"}, ADMINS),
]

PARAMS = matrix(CASES, ROLES, lambda case: case[3])


@pytest.fixture(scope="module")
def world(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> World:
    """A seeded database (entities and events) and the raw keys of its callers."""

    async def seed(api: Api, engine: AsyncEngine) -> dict[str, str]:
        keys = await add_callers(api)
        await api.ok("POST", "/team/new", {"team_id": "t1", "members_with_roles": T1_MEMBERS})
        await api.ok("POST", "/team/new", {"team_id": "t2"})
        await api.ok("POST", "/customer/new", {"user_id": "c1"})
        made = {
            "target": await api.ok("POST", "/key/generate", {"user_id": "member", "team_id": "t1"}),
            "tadmin": await api.ok("POST", "/key/generate", {"user_id": "tadmin", "team_id": "t1"}),
            "outsider": await api.ok("POST", "/key/generate", {"user_id": "outsider"}),
            "userless": await api.ok("POST", "/key/generate", {"key_alias": "service"}),
            "t2": await api.ok("POST", "/key/generate", {"team_id": "t2"}),
        }
        keys["target"] = made["target"]["key"]
        keys["userless"] = made["userless"]["key"]
        owners = {
            "target": ("member", "t1"),
            "tadmin": ("tadmin", "t1"),
            "outsider": ("outsider", None),
            "userless": (None, None),
            "t2": (None, "t2"),
        }
        events = [
            SpendEvent(
                event_id=f"role-{name}",
                occurred_at=datetime(2026, 5, 2, 10, tzinfo=UTC),
                cost_nanos=COST.get(name, COST_T2),
                usage=Usage(input_tokens=10, output_tokens=5),
                api_key=made[name]["key_id"],
                user_id=owners[name][0],
                team_id=owners[name][1],
                end_user="c1",
                tags=("prod",),
                model="gpt-4o-mini",
                provider="openai",
            )
            for name in made
        ]
        await LedgerRepository(engine).write_batch(events)
        return keys

    return seeded_world(sqlite_template, tmp_path_factory.mktemp("activity-world"), seed)


async def _get(world: World, tmp_path: Path, route: str, query: dict[str, str], role: str) -> tuple[int, Any]:
    keys = world[1]
    params = {**DATES, **{k: keys[v[1:-1]] if v.startswith("{") else v for k, v in query.items()}}
    return await call_on_copy(world, tmp_path, "GET", route, params, keys[role])


@pytest.mark.parametrize(("case", "role", "expected"), PARAMS)
async def test_activity_role_matrix(
    world: World, tmp_path: Path, case: Any, role: str, expected: int
) -> None:
    _, route, query, _ = case
    status, body = await _get(world, tmp_path, route, query, role)
    assert status == expected, body
    if status == NO:  # the OpenAI error shape, naming what was refused
        assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"]


def _spend(body: dict[str, Any]) -> Decimal:
    return Decimal(body["metadata"]["total_spend"])


EVERYTHING = sum(COST.values()) + COST_T2

# What an allowed, unfiltered read shows each caller (nano-USD).
SEES = [
    ("/user/daily/activity", "master", EVERYTHING),
    ("/user/daily/activity", "viewer", EVERYTHING),
    ("/user/daily/activity", "member", COST["target"]),
    ("/user/daily/activity", "tadmin", COST["tadmin"]),
    ("/user/daily/activity", "outsider", COST["outsider"]),
    ("/user/daily/activity", "userless", COST["userless"]),
    ("/team/daily/activity", "admin", EVERYTHING),
    ("/team/daily/activity", "tadmin", COST["target"] + COST["tadmin"]),
    ("/team/daily/activity", "member", 0),
    ("/team/daily/activity", "outsider", 0),
    ("/team/daily/activity", "userless", COST["userless"]),
]


@pytest.mark.parametrize(("route", "role", "nanos"), SEES, ids=[f"{r}-{who}" for r, who, _ in SEES])
async def test_each_caller_sees_only_theirs(
    world: World, tmp_path: Path, route: str, role: str, nanos: int
) -> None:
    status, body = await _get(world, tmp_path, route, {}, role)
    assert status == OK, body
    assert _spend(body) == from_nano(nanos)
    if nanos == 0:
        assert body["results"] == []


async def test_team_admin_sees_team_keys_in_breakdown(world: World, tmp_path: Path) -> None:
    status, body = await _get(world, tmp_path, "/team/daily/activity", {"team_ids": "t1"}, "tadmin")
    assert status == OK
    (day,) = body["results"]
    assert set(day["breakdown"]["entities"]) == {"t1"}
    keys = day["breakdown"]["api_keys"]
    assert sorted(Decimal(v["metrics"]["spend"]) for v in keys.values()) == [
        from_nano(COST["target"]),
        from_nano(COST["tadmin"]),
    ]
