"""/user, /team (with members), /organization, /customer and /budget: round trips with
LiteLLM's field names on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from admin_helpers import Api
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.keys import hash_key
from spendgate.stores.database.models import Budget, TeamMembership, User, VirtualKey


async def _count(engine: AsyncEngine, model: type) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def test_user_crud(api: Api, engine: AsyncEngine) -> None:
    await api.ok("POST", "/team/new", {"team_id": "t1"})
    created = await api.ok(
        "POST",
        "/user/new",
        {
            "user_id": "ann",
            "user_email": "ann@example.com",
            "user_alias": "Ann",
            "user_role": "internal_user",
            "max_budget": 25.5,
            "budget_duration": "1mo",
            "budget_limits": [{"budget_duration": "1d", "max_budget": 2}],
            "tpm_limit": 1000,
            "rpm_limit": 10,
            "models": ["gpt-4o"],
            "teams": [{"team_id": "t1", "max_budget_in_team": 3, "user_role": "admin"}],
            "metadata": {"dept": "eng"},
        },
    )
    assert created["key"].startswith("sk-") and created["token"] == hash_key(created["key"])
    assert created["max_budget"] == Decimal("25.5") and created["budget_duration"] == "1mo"
    assert created["teams"] == ["t1"] and created["budget_limits"][0]["max_budget"] == 2
    info = await api.ok("GET", "/user/info", params={"user_id": "ann"})
    assert info["user_info"]["user_email"] == "ann@example.com"
    assert [k["token"] for k in info["keys"]] == [created["token"]]
    assert info["teams"][0]["team_id"] == "t1"
    assert info["teams"][0]["members_with_roles"] == [
        {"user_id": "ann", "role": "admin", "user_email": "ann@example.com"}
    ]
    updated = await api.ok(
        "POST", "/user/update", {"user_id": "ann", "max_budget": None, "user_role": "proxy_admin_viewer"}
    )
    assert updated["max_budget"] is None and updated["user_role"] == "proxy_admin_viewer"
    by_email = await api.ok("POST", "/user/update", {"user_email": "ann@example.com", "user_alias": "A."})
    assert by_email["user_alias"] == "A."
    await api.ok("POST", "/user/new", {"user_id": "bo", "auto_create_key": False})
    listing = await api.ok("GET", "/user/list", params={"page_size": 1})
    assert listing["total"] == 2 and listing["total_pages"] == 2 and len(listing["users"]) == 1
    only = await api.ok("GET", "/user/list", params={"user_ids": "bo"})
    assert [u["user_id"] for u in only["users"]] == ["bo"]
    status, err = await api.post("/user/new", {"user_id": "bo"})
    assert status == 409 and err["error"]["param"] == "user_id"
    status, err = await api.post("/user/new", {"user_role": "superuser"})
    assert status == 422 and err["error"]["param"] == "user_role"
    assert (await api.ok("POST", "/user/delete", {"user_ids": ["ann"]})) == {"deleted_users": ["ann"]}
    # the user's keys, memberships and membership budgets went with it
    assert await _count(engine, VirtualKey) == 0
    assert await _count(engine, TeamMembership) == 0 and await _count(engine, Budget) == 0
    status, _ = await api.get("/user/info", params={"user_id": "ann"})
    assert status == 404


async def test_team_and_members(api: Api, engine: AsyncEngine) -> None:
    org = await api.ok("POST", "/organization/new", {"organization_alias": "Acme", "max_budget": 1000})
    team = await api.ok(
        "POST",
        "/team/new",
        {
            "team_id": "ml",
            "team_alias": "ML",
            "organization_id": org["organization_id"],
            "max_budget": 100,
            "soft_budget": 80,
            "budget_duration": "30d",
            "budget_limits": [{"budget_duration": "1d", "max_budget": 10}],
            "models": ["gpt-4o", "gpt-4o-mini"],
            "tpm_limit": 5,
            "model_rpm_limit": {"gpt-4o": 3},
            "tags": ["research"],
            "metadata": {"cost_center": 42},
            "members_with_roles": [{"role": "admin", "user_id": "lead"}, {"user_email": "dev@example.com"}],
        },
    )
    assert team["soft_budget"] == 80 and team["budget_limits"] == [
        {"budget_duration": "1d", "max_budget": 10}
    ]
    assert team["tags"] == ["research"] and team["metadata"]["cost_center"] == 42
    assert team["model_rpm_limit"] == {"gpt-4o": 3}
    assert sorted(m["role"] for m in team["members_with_roles"]) == ["admin", "user"]
    added = await api.ok(
        "POST",
        "/team/member_add",
        {
            "team_id": "ml",
            "member": {"role": "user", "user_id": "intern"},
            "max_budget_in_team": 1.5,
            "budget_duration": "1d",
        },
    )
    assert added["updated_users"][0]["user_id"] == "intern"
    m = added["updated_team_memberships"][0]
    assert m["max_budget_in_team"] == Decimal("1.5") and m["litellm_budget_table"]["budget_duration"] == "1d"
    status, err = await api.post("/team/member_add", {"team_id": "ml", "member": {"user_id": "intern"}})
    assert status == 409
    up = await api.ok(
        "POST",
        "/team/member_update",
        {"team_id": "ml", "user_id": "intern", "max_budget_in_team": 2, "role": "admin"},
    )
    assert up["max_budget_in_team"] == 2 and up["role"] == "admin"
    # keys in the team: models must be the team's
    key = await api.ok("POST", "/key/generate", {"team_id": "ml", "user_id": "intern", "models": ["gpt-4o"]})
    assert key["organization_id"] == org["organization_id"]  # inherited from the team
    status, err = await api.post("/key/generate", {"team_id": "ml", "models": ["o3"]})
    assert status == 422 and err["error"]["param"] == "models"
    info = await api.ok("GET", "/team/info", params={"team_id": "ml"})
    assert info["team_info"]["max_budget"] == 100
    assert [k["token"] for k in info["keys"]] == [key["token"]]
    users = {m["user_id"] for m in info["team_memberships"]}
    assert len(users) == 3 and {"lead", "intern"} <= users
    assert any(m["max_budget_in_team"] == 2 for m in info["team_memberships"])
    updated = await api.ok("POST", "/team/update", {"team_id": "ml", "max_budget": 50, "budget_limits": None})
    assert updated["max_budget"] == 50 and updated["budget_limits"] == []
    assert [t["team_id"] for t in await api.ok("GET", "/team/list")] == ["ml"]
    assert await api.ok("GET", "/team/list", params={"user_id": "nobody"}) == []
    # removing a member removes their keys in the team and their in-team budget
    await api.ok("POST", "/team/member_delete", {"team_id": "ml", "user_id": "intern"})
    assert await _count(engine, VirtualKey) == 0 and await _count(engine, Budget) == 0
    status, _ = await api.post("/team/member_delete", {"team_id": "ml", "user_id": "intern"})
    assert status == 404
    status, err = await api.post("/organization/delete", {"organization_ids": [org["organization_id"]]})
    assert status == 409  # still has a team
    assert await api.ok("POST", "/team/delete", {"team_ids": ["ml"]}) == {"deleted_teams": ["ml"]}
    assert await _count(engine, TeamMembership) == 0
    assert await _count(engine, User) == 3  # users stay
    status, _ = await api.get("/team/info", params={"team_id": "ml"})
    assert status == 404


async def test_organization_crud(api: Api) -> None:
    org = await api.ok(
        "POST",
        "/organization/new",
        {"organization_id": "acme", "organization_alias": "Acme", "max_budget": 0, "models": ["gpt-4o"]},
    )
    assert org["max_budget"] == 0 and org["organization_id"] == "acme"
    patched = await api.ok("PATCH", "/organization/update", {"organization_id": "acme", "max_budget": 12.34})
    assert patched["max_budget"] == Decimal("12.34")
    assert (await api.ok("GET", "/organization/info", params={"organization_id": "acme"}))[
        "organization_alias"
    ] == "Acme"
    assert [o["organization_id"] for o in await api.ok("GET", "/organization/list")] == ["acme"]
    status, err = await api.post("/organization/new", {"organization_id": "acme", "organization_alias": "x"})
    assert status == 409
    status, err = await api.post("/organization/new", {"max_budget": 1})
    assert status == 422 and err["error"]["param"] == "organization_alias"
    out = await api.ok("DELETE", "/organization/delete", {"organization_ids": ["acme"]})
    assert out == {"deleted_organizations": ["acme"]}
    status, _ = await api.get("/organization/info", params={"organization_id": "acme"})
    assert status == 404


async def test_customer_crud_and_key_binding(api: Api) -> None:
    c = await api.ok(
        "POST",
        "/customer/new",
        {
            "user_id": "cust-1",
            "alias": "Big Co",
            "max_budget": 5,
            "budget_duration": "1d",
            "allowed_model_region": "eu",
        },
    )
    assert c["max_budget"] == 5 and c["allowed_model_region"] == "eu" and c["blocked"] is False
    status, err = await api.post("/customer/new", {"user_id": "cust-2", "max_budget": 1, "budget_id": "b"})
    assert status == 422 and err["error"]["param"] == "budget_id"
    key = await api.ok("POST", "/key/generate", {"end_user_id": "cust-1"})
    assert key["end_user_id"] == "cust-1"
    assert (await api.ok("POST", "/customer/block", {"user_ids": ["cust-1"]})) == {
        "blocked_users": ["cust-1"]
    }
    assert (await api.ok("GET", "/customer/info", params={"end_user_id": "cust-1"}))["blocked"] is True
    await api.ok("POST", "/customer/unblock", {"user_ids": ["cust-1"]})
    assert (await api.ok("POST", "/customer/update", {"user_id": "cust-1", "max_budget": None}))[
        "max_budget"
    ] is None
    assert [x["user_id"] for x in await api.ok("GET", "/customer/list")] == ["cust-1"]
    assert [x["user_id"] for x in await api.ok("GET", "/end_user/list")] == ["cust-1"]  # LiteLLM's alias
    status, err = await api.post("/customer/delete", {"user_ids": ["cust-1"]})
    assert status == 409  # a key is bound to it
    await api.ok("POST", "/key/delete", {"keys": [key["key"]]})
    assert await api.ok("POST", "/customer/delete", {"user_ids": ["cust-1"]}) == {
        "deleted_customers": ["cust-1"]
    }
    status, _ = await api.get("/customer/info", params={"end_user_id": "cust-1"})
    assert status == 404


async def test_budget_crud(api: Api) -> None:
    b = await api.ok(
        "POST",
        "/budget/new",
        {
            "budget_id": "starter",
            "max_budget": 9.99,
            "soft_budget": 5,
            "budget_duration": "30d",
            "rpm_limit": 5,
        },
    )
    assert b["max_budget"] == Decimal("9.99") and b["budget_duration"] == "30d"
    assert (await api.ok("POST", "/budget/update", {"budget_id": "starter", "tpd_limit": 1000}))[
        "tpd_limit"
    ] == 1000
    got = await api.ok("POST", "/budget/info", {"budgets": ["starter"]})
    assert got[0]["rpm_limit"] == 5 and got[0]["tpd_limit"] == 1000
    status, _ = await api.post("/budget/info", {"budgets": ["starter", "nope"]})
    assert status == 404
    assert [x["budget_id"] for x in await api.ok("GET", "/budget/list")] == ["starter"]
    await api.ok("POST", "/customer/new", {"user_id": "c", "budget_id": "starter"})
    status, err = await api.post("/budget/delete", {"id": "starter"})
    assert status == 409 and "customers" in err["error"]["message"]
    await api.ok("POST", "/customer/delete", {"user_ids": ["c"]})
    assert await api.ok("POST", "/budget/delete", {"id": "starter"}) == {"deleted_budget": "starter"}
    status, err = await api.post("/budget/update", {"max_budget": 1})
    assert status == 422 and err["error"]["param"] == "budget_id"
    status, _ = await api.post("/budget/new", {"budget_duration": "fortnight"})
    assert status == 422
