"""``budget_reset_at`` on every entity's info, from the budget's own start (issue #17 item 3),
and ``GET /budget/info`` (item 5): the admin API on SQLite, then PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from admin_helpers import Api

from spendgate.core.periods import period_for


def _reset(value: Any) -> datetime:
    assert isinstance(value, str), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _from_today(days: int) -> datetime:
    """UTC midnight ``days`` from today: a from-start period's end (the admin app is in UTC)."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=days)


async def test_every_entity_shows_budget_reset_at_from_its_start(api: Api) -> None:
    body = {"max_budget": 10, "budget_duration": "45d"}
    await api.ok("POST", "/organization/new", {"organization_alias": "o", "organization_id": "o1", **body})
    await api.ok("POST", "/team/new", {"team_id": "t1", "organization_id": "o1", **body})
    await api.ok("POST", "/user/new", {"user_id": "u1", "auto_create_key": False, **body})
    await api.ok("POST", "/customer/new", {"user_id": "c1", **body})
    key = (await api.ok("POST", "/key/generate", body))["key"]
    await api.ok(
        "POST",
        "/team/member_add",
        {"team_id": "t1", "member": {"user_id": "u1", "role": "user"}, "max_budget_in_team": 1,
         "budget_duration": "2w"},
    )  # fmt: skip
    await api.ok("POST", "/budget/new", {"budget_id": "b1", "max_budget": 5, "budget_duration": "90d"})

    expected = _from_today(45)
    infos = [
        (await api.ok("GET", "/key/info", params={"key": key}))["info"],
        (await api.ok("GET", "/user/info", params={"user_id": "u1"}))["user_info"],
        (await api.ok("GET", "/organization/info", params={"organization_id": "o1"})),
        (await api.ok("GET", "/customer/info", params={"end_user_id": "c1"})),
    ]
    team = await api.ok("GET", "/team/info", params={"team_id": "t1"})
    infos.append(team["team_info"])
    for info in infos:
        assert _reset(info["budget_reset_at"]) == expected, info
        assert _reset(info["budget_windows"][0]["budget_reset_at"]) == expected
    (member,) = team["team_memberships"]
    assert _reset(member["budget_reset_at"]) == _from_today(14)
    assert _reset(member["litellm_budget_table"]["budget_reset_at"]) == _from_today(14)

    posted = await api.ok("POST", "/budget/info", {"budgets": ["b1"]})
    got = await api.ok("GET", "/budget/info", params={"budget_id": "b1"})
    assert posted == got and _reset(got[0]["budget_reset_at"]) == _from_today(90)


async def test_the_start_moves_with_the_duration_only(api: Api) -> None:
    key = (await api.ok("POST", "/key/generate", {"max_budget": 10, "budget_duration": "90d"}))["key"]
    created = (await api.ok("GET", "/key/info", params={"key": key}))["info"]["budget_reset_at"]
    await api.ok("POST", "/key/update", {"key": key, "max_budget": 20, "rpm_limit": 5})
    assert (await api.ok("GET", "/key/info", params={"key": key}))["info"]["budget_reset_at"] == created
    await api.ok("POST", "/key/update", {"key": key, "budget_duration": "1d"})
    info = (await api.ok("GET", "/key/info", params={"key": key}))["info"]
    assert _reset(info["budget_reset_at"]) == period_for("1d", datetime.now(UTC), "UTC").end


async def test_budget_limits_windows_keep_their_start_while_their_duration_stays(api: Api) -> None:
    key = (
        await api.ok("POST", "/key/generate", {"budget_limits": [{"budget_duration": "2w", "max_budget": 1}]})
    )["key"]
    await api.ok(
        "POST",
        "/key/update",
        {"key": key, "budget_limits": [{"budget_duration": "2w", "max_budget": 2},
                                       {"budget_duration": "45d", "max_budget": 3}]},
    )  # fmt: skip
    windows = (await api.ok("GET", "/key/info", params={"key": key}))["info"]["budget_windows"]
    assert [_reset(w["budget_reset_at"]) for w in windows] == [_from_today(14), _from_today(45)]
