"""Tenancy in the management API, on SQLite and PostgreSQL (migration 0004 on both): a
customer's owner (``team_id`` / ``organization_id``), kept consistent; custom keys long
enough that what is stored of them reveals little; team keys owned by their creator."""

from __future__ import annotations

from admin_helpers import Api
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.keys import hash_key
from spendgate.stores.database.models import VirtualKey


async def test_customer_owner_round_trips_and_is_checked(api: Api) -> None:
    await api.ok("POST", "/organization/new", {"organization_id": "ten-org", "organization_alias": "ten-org"})
    await api.ok("POST", "/organization/new", {"organization_id": "ten-org-2", "organization_alias": "o2"})
    await api.ok("POST", "/team/new", {"team_id": "ten-team", "organization_id": "ten-org"})
    made = await api.ok("POST", "/customer/new", {"user_id": "ten-cust", "team_id": "ten-team"})
    assert made["team_id"] == "ten-team" and made["organization_id"] is None
    info = await api.ok("GET", "/customer/info", params={"end_user_id": "ten-cust"})
    assert (info["team_id"], info["organization_id"]) == ("ten-team", None)
    updated = await api.ok("POST", "/customer/update", {"user_id": "ten-cust", "organization_id": "ten-org"})
    assert (updated["team_id"], updated["organization_id"]) == ("ten-team", "ten-org")

    status, err = await api.post("/customer/new", {"user_id": "c2", "team_id": "no-such-team"})
    assert status == 404 and err["error"]["param"] == "team_id"
    status, err = await api.post("/customer/new", {"user_id": "c2", "organization_id": "no-such-org"})
    assert status == 404 and err["error"]["param"] == "organization_id"
    status, err = await api.post(
        "/customer/new", {"user_id": "c2", "team_id": "ten-team", "organization_id": "ten-org-2"}
    )
    assert status == 422 and err["error"]["param"] == "organization_id"
    status, _ = await api.get("/customer/info", params={"end_user_id": "c2"})
    assert status == 404  # nothing half-written

    # Deleting the owner would silently let any key bill the customer: 409, nothing deleted.
    status, err = await api.post("/team/delete", {"team_ids": ["ten-team"]})
    assert status == 409 and "customers" in err["error"]["message"]
    status, err = await api.post("/organization/delete", {"organization_ids": ["ten-org"]})
    assert status == 409
    await api.ok(
        "POST", "/customer/update", {"user_id": "ten-cust", "team_id": None, "organization_id": None}
    )
    await api.ok("POST", "/team/delete", {"team_ids": ["ten-team"]})


async def test_short_or_unprefixed_custom_keys_are_422(api: Api) -> None:
    for bad in ("sk-abcd1234", "sk-" + "x" * 19, "x" * 40):
        status, err = await api.post("/key/generate", {"key": bad})
        assert status == 422, (bad, err)
        assert err["error"]["param"] == "key" and err["error"]["type"] == "invalid_request_error"
        assert "'sk-' and at least 20 more" in err["error"]["message"]
    made = await api.ok("POST", "/key/generate", {})
    status, err = await api.post("/key/regenerate", {"key": made["key"], "new_key": "sk-abcd1234"})
    assert status == 422 and err["error"]["param"] == "new_key"
    # The old raw key still works: nothing was changed.
    await api.ok("GET", "/key/info", params={"key": made["key"]})


async def test_what_is_stored_of_a_key_reveals_at_most_a_fifth(api: Api, engine: AsyncEngine) -> None:
    short = "sk-" + "Q7fZk2Lm9PxR4tVw8YbN"  # 20 secret characters: the minimum
    generated = (await api.ok("POST", "/key/generate", {}))["key"]
    shown = await api.ok("POST", "/key/generate", {"key": short})
    assert shown["key_name"] == "sk-Q7fZ..."
    async with engine.connect() as conn:
        rows = {
            token: (prefix, name)
            for token, prefix, name in (
                await conn.execute(select(VirtualKey.token, VirtualKey.key_prefix, VirtualKey.key_name))
            ).all()
        }
    assert rows[hash_key(short)] == ("sk-Q7fZ", "sk-Q7fZ...")  # 4 of 20 secret characters
    # A generated key (43 secret characters) keeps LiteLLM's look: 8 of 43 shown.
    assert rows[hash_key(generated)] == (generated[:7], f"sk-...{generated[-4:]}")
    assert len(generated) - 3 >= 40


async def test_a_team_admins_team_key_is_owned_by_them(api: Api) -> None:
    await api.ok("POST", "/team/new", {"team_id": "own-team"})
    await api.ok(
        "POST", "/user/new", {"user_id": "own-admin", "user_role": "internal_user", "auto_create_key": False}
    )
    await api.ok(
        "POST",
        "/team/member_add",
        {"team_id": "own-team", "member": [{"user_id": "own-admin", "role": "admin"}]},
    )
    admin_key = (await api.ok("POST", "/key/generate", {"user_id": "own-admin"}))["key"]
    made = await api.ok("POST", "/key/generate", {"team_id": "own-team"}, key=admin_key)
    assert made["user_id"] == "own-admin"
    await api.ok("POST", "/team/member_add", {"team_id": "own-team", "member": [{"user_id": "own-bob"}]})
    for_bob = await api.ok(
        "POST", "/key/generate", {"team_id": "own-team", "user_id": "own-bob"}, key=admin_key
    )
    assert for_bob["user_id"] == "own-bob"  # a team admin may still name another member
