"""/key/*: round trips with LiteLLM's field names, exact money, hashing, rotation, blocking,
validation and all-or-nothing writes. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from admin_helpers import Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.keys import hash_key
from spendgate.stores.database.models import BudgetWindow, VirtualKey


async def _count(engine: AsyncEngine, model: type) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def _snapshot(engine: AsyncEngine) -> list[tuple[object, ...]]:
    async with engine.connect() as conn:
        keys = (
            await conn.execute(
                text("SELECT token, key_alias, max_budget_nanos, blocked FROM virtual_keys ORDER BY token")
            )
        ).all()
        windows = (
            await conn.execute(
                text(
                    "SELECT scope_id, budget_duration, max_budget_nanos FROM budget_windows"
                    " ORDER BY scope_id, budget_duration"
                )
            )
        ).all()
        users = (await conn.execute(text("SELECT user_id FROM users ORDER BY user_id"))).all()
        teams = (await conn.execute(text("SELECT team_id FROM teams ORDER BY team_id"))).all()
        members = (
            await conn.execute(text("SELECT user_id, team_id FROM team_memberships ORDER BY 1, 2"))
        ).all()
        budgets = (await conn.execute(text("SELECT budget_id FROM budgets ORDER BY 1"))).all()
    return [tuple(r) for r in (*keys, *windows, *users, *teams, *members, *budgets)]


FULL_KEY = {
    "key_alias": "billing-service",
    "duration": "30d",
    "models": ["gpt-4o", "claude-sonnet"],
    "max_budget": 10.123456789,
    "budget_duration": "30d",
    "budget_limits": [
        {"budget_duration": "1d", "max_budget": 0.5},
        {"budget_duration": "1h", "max_budget": 0.05},
    ],
    "soft_budget": 8,
    "tpm_limit": 100000,
    "rpm_limit": 60,
    "max_parallel_requests": 4,
    "model_max_budget": {"gpt-4o": {"budget_limit": 1.25, "time_period": "1d"}},
    "model_rpm_limit": {"gpt-4o": 10},
    "model_tpm_limit": {"gpt-4o": 5000},
    "metadata": {"owner": "billing"},
    "tags": ["prod"],
    "temp_budget_increase": 2.5,
    "temp_budget_expiry": "2030-01-01T00:00:00Z",
}


async def test_generate_and_info_round_trip_litellm_fields(api: Api, engine: AsyncEngine) -> None:
    created = await api.ok("POST", "/key/generate", FULL_KEY)
    raw = created["key"]
    assert raw.startswith("sk-") and len(raw) >= 40
    assert created["token_id"] == created["token"] == hash_key(raw)
    info = await api.ok("GET", "/key/info", params={"key": raw})
    assert info["key"] == raw
    got = info["info"]
    assert "key" not in got  # the raw key is never shown again
    assert got["token"] == hash_key(raw)
    assert got["key_name"] == f"sk-...{raw[-4:]}"
    assert got["key_alias"] == "billing-service"
    assert got["max_budget"] == Decimal("10.123456789")
    assert got["soft_budget"] == 8
    assert got["budget_duration"] == "30d"
    assert got["budget_limits"] == [
        {"budget_duration": "1d", "max_budget": Decimal("0.5")},
        {"budget_duration": "1h", "max_budget": Decimal("0.05")},
    ]
    assert got["tpm_limit"] == 100000 and got["rpm_limit"] == 60 and got["max_parallel_requests"] == 4
    assert got["model_max_budget"] == {
        "gpt-4o": {
            "max_budget": Decimal("1.25"),
            "budget_duration": "1d",
            "tpm_limit": None,
            "rpm_limit": None,
        }
    }
    assert got["model_rpm_limit"] == {"gpt-4o": 10} and got["model_tpm_limit"] == {"gpt-4o": 5000}
    assert got["metadata"]["owner"] == "billing"
    assert got["tags"] == ["prod"] and got["models"] == ["gpt-4o", "claude-sonnet"]
    assert got["temp_budget_increase"] == Decimal("2.5")
    assert got["temp_budget_expiry"].startswith("2030-01-01T00:00:00")
    assert got["expires"] is not None and got["blocked"] is False
    # Stored exactly, in nano-USD, and only the hash.
    async with engine.connect() as conn:
        row = (await conn.execute(select(VirtualKey).where(VirtualKey.token == hash_key(raw)))).one()
        windows = (
            await conn.execute(select(BudgetWindow.budget_duration, BudgetWindow.max_budget_nanos))
        ).all()
        dump = " ".join(
            str(v) for r in (await conn.execute(text("SELECT * FROM virtual_keys"))).all() for v in r
        )
    assert row.max_budget_nanos == 10_123_456_789 and row.soft_budget_nanos == 8_000_000_000
    assert sorted(windows) == [("1d", 500_000_000), ("1h", 50_000_000)]
    assert row.metadata["temp_budget_increase_nanos"] == 2_500_000_000
    assert raw not in dump and raw[3:] not in dump


async def test_exact_money_no_float_artifacts(api: Api) -> None:
    for amount in ("0.1", "0.000000001", "999999999.999999999", "0"):
        created = await api.ok("POST", "/key/generate", content=f'{{"max_budget": {amount}}}'.encode())
        assert created["max_budget"] == Decimal(amount)
    status, err = await api.post("/key/generate", {"max_budget": -1})
    assert status == 422 and err["error"]["param"] == "max_budget"
    status, err = await api.post("/key/generate", {"max_budget": 1e12})
    assert status == 422 and err["error"]["param"] == "max_budget"
    for huge in ("-7.2e307", "1e300"):  # refused by the bounds, never rounded (a 500 once)
        status, err = await api.post("/key/generate", content=f'{{"max_budget": {huge}}}'.encode())
        assert status == 422 and err["error"]["param"] == "max_budget", huge
    # a positive amount kept as 0 would mean "nothing allowed": refused
    for tiny in ("1e-20", "0.0000000004999", "0.0000000005", '"0.0000000001"'):
        status, err = await api.post("/key/generate", content=f'{{"max_budget": {tiny}}}'.encode())
        assert status == 422 and err["error"]["param"] == "max_budget", tiny
        assert "nano-USD" in err["error"]["message"]
    # finer amounts are rounded to the nano-USD (half even), as a budget computed with floats sends
    for sent, kept in (("0.30000000000000004", "0.3"), ("3.3333333333333335", "3.333333333"),
                       ("0.0000000015", "0.000000002"), ("1.5E+2", "150")):  # fmt: skip
        created = await api.ok("POST", "/key/generate", content=f'{{"max_budget": {sent}}}'.encode())
        assert created["max_budget"] == Decimal(kept), sent


async def test_update_only_touches_given_fields_and_null_means_unlimited(api: Api) -> None:
    raw = (await api.ok("POST", "/key/generate", FULL_KEY))["key"]
    updated = await api.ok(
        "POST", "/key/update", {"key": raw, "max_budget": 0, "rpm_limit": None, "metadata": {"x": 1}}
    )
    assert updated["max_budget"] == 0  # 0 = nothing allowed, not unlimited
    assert updated["rpm_limit"] is None and updated["tpm_limit"] == 100000
    assert updated["metadata"]["x"] == 1 and "owner" not in updated["metadata"]
    assert updated["model_rpm_limit"] == {"gpt-4o": 10}  # kept: set through its own field
    updated = await api.ok(
        "POST", "/key/update", {"key": hash_key(raw), "max_budget": None, "budget_limits": []}
    )
    assert updated["max_budget"] is None and updated["budget_limits"] == []
    # key_alias identifies the key when no key is given
    await api.ok("POST", "/key/update", {"key_alias": "billing-service", "tpm_limit": 7})
    info = await api.ok("GET", "/key/info", params={"key": raw})
    assert info["info"]["tpm_limit"] == 7


async def test_list_paginates_and_hides_raw_keys(api: Api) -> None:
    tokens = [hash_key((await api.ok("POST", "/key/generate", {}))["key"]) for _ in range(3)]
    page = await api.ok("GET", "/key/list", params={"size": 2})
    assert page["total_count"] == 3 and page["total_pages"] == 2 and len(page["keys"]) == 2
    assert set(page["keys"]) <= set(tokens)
    full = await api.ok("GET", "/key/list", params={"page": 2, "size": 2, "return_full_object": "true"})
    assert len(full["keys"]) == 1 and full["keys"][0]["token"] in tokens and "key" not in full["keys"][0]


async def test_regenerate_invalidates_the_old_key_and_keeps_its_settings(
    api: Api, engine: AsyncEngine
) -> None:
    user = await api.ok("POST", "/user/new", {"user_id": "alice", "auto_create_key": False})
    assert user["key"] is None
    old = (await api.ok("POST", "/key/generate", {**FULL_KEY, "user_id": "alice"}))["key"]
    new = await api.ok("POST", "/key/regenerate", {"key": old, "max_budget": 3})
    assert new["key"] != old and new["token"] == hash_key(new["key"])
    assert new["max_budget"] == 3 and new["key_alias"] == "billing-service" and new["user_id"] == "alice"
    assert [w["budget_duration"] for w in new["budget_limits"]] == ["1d", "1h"]
    status, _ = await api.get("/key/info", params={"key": old})
    assert status == 404
    # The old raw key no longer authenticates; the new one does (alice is an internal_user).
    status, _ = await api.get("/key/info", key=old)
    assert status == 401
    mine = await api.ok("GET", "/key/info", key=new["key"])
    assert mine["info"]["token"] == hash_key(new["key"])
    # LiteLLM's path form, by hash.
    again = await api.ok("POST", f"/key/{hash_key(new['key'])}/regenerate", {})
    assert again["key"] not in (old, new["key"])
    assert await _count(engine, VirtualKey) == 1 and await _count(engine, BudgetWindow) == 2


async def test_block_unblock_and_blocked_key_cannot_manage(api: Api) -> None:
    await api.ok(
        "POST", "/user/new", {"user_id": "bob", "user_role": "proxy_admin", "auto_create_key": False}
    )
    raw = (await api.ok("POST", "/key/generate", {"user_id": "bob"}))["key"]
    await api.ok("GET", "/key/list", key=raw)
    assert (await api.ok("POST", "/key/block", {"key": raw}))["blocked"] is True
    status, err = await api.get("/key/list", key=raw)
    assert status == 403 and err["error"]["code"] == "key_blocked"
    assert (await api.ok("POST", "/key/unblock", {"key": hash_key(raw)}))["blocked"] is False
    await api.ok("GET", "/key/list", key=raw)


async def test_delete_by_key_and_alias(api: Api, engine: AsyncEngine) -> None:
    a = (
        await api.ok(
            "POST",
            "/key/generate",
            {"key_alias": "a", "budget_limits": [{"budget_duration": "1d", "max_budget": 1}]},
        )
    )["key"]
    await api.ok("POST", "/key/generate", {"key_alias": "b"})
    out = await api.ok("POST", "/key/delete", {"keys": [a], "key_aliases": ["b"]})
    assert out == {"deleted_keys": [a, "b"]}
    assert await _count(engine, VirtualKey) == 0 and await _count(engine, BudgetWindow) == 0
    status, err = await api.post("/key/delete", {"keys": [a]})
    assert status == 404 and err["error"]["param"] == "keys"


async def test_validation_errors(api: Api) -> None:
    cases = [
        ({"max_budgett": 1}, 422, "max_budgett"),
        ({"budget_duration": "monthlyish"}, 422, "budget_duration"),
        ({"budget_duration": "0" * 40 + "1d"}, 422, "budget_duration"),
        ({"key_alias": "a" * 300}, 422, "key_alias"),
        (
            {"budget_limits": [{"budget_duration": "7x", "max_budget": 1}]},
            422,
            "budget_limits.0.budget_duration",
        ),
        (
            {
                "budget_limits": [
                    {"budget_duration": "1d", "max_budget": 1},
                    {"budget_duration": "1d", "max_budget": 2},
                ]
            },
            422,
            "budget_limits",
        ),
        ({"tpm_limit": -1}, 422, "tpm_limit"),
        ({"max_budget": "ten"}, 422, "max_budget"),
        ({"max_budget": True}, 422, "max_budget"),
        ({"duration": "soon"}, 422, "duration"),
        ({"temp_budget_increase": 1}, 422, None),
        ({"model_max_budget": {"m": {"budget_limit": 1, "oops": 2}}}, 422, "model_max_budget.m.oops"),
        ({"metadata": {"temp_budget_increase_nanos": 5}}, 422, "metadata.temp_budget_increase_nanos"),
        ({"metadata": {"max_budget_alert_emails": {"eighty": ["a@b.c"]}}}, 422, "metadata"),
        ({"metadata": {"max_budget_alert_emails": {"0": ["a@b.c"]}}}, 422, "metadata"),
        ({"metadata": {"max_budget_alert_emails": {"80": "a@b.c"}}}, 422, "metadata"),
        ({"metadata": {"max_budget_alert_emails": ["a@b.c"]}}, 422, "metadata"),
        ({"user_id": "nobody"}, 404, "user_id"),
        ({"team_id": "nope"}, 404, "team_id"),
        ({"end_user_id": "ghost"}, 404, "end_user_id"),
        ({"budget_id": "none"}, 404, "budget_id"),
    ]
    for body, status, param in cases:
        got, err = await api.post("/key/generate", body)
        assert got == status, (body, err)
        assert err["error"]["param"] == param, (body, err)
        assert set(err["error"]) == {"message", "type", "param", "code"}
    status, err = await api.post("/key/generate", {"budget_duration": "xx"})
    assert "Use a format like '1h', '24h', '7d', or '30d'" in err["error"]["message"]
    status, err = await api.call("POST", "/key/generate", content=b'{"max_budget": ')
    assert status == 400 and err["error"]["code"] == "invalid_json"
    status, err = await api.call("POST", "/key/generate", content=b"[1, 2]")
    assert status == 400
    status, err = await api.get("/key/info", params={"key": "sk-does-not-exist"})
    assert status == 404
    status, err = await api.get("/key/list", params={"page": 0})
    assert status == 422 and err["error"]["param"] == "page"


async def test_duplicate_alias_is_409(api: Api) -> None:
    await api.ok("POST", "/key/generate", {"key_alias": "dup"})
    status, err = await api.post("/key/generate", {"key_alias": "dup"})
    assert status == 409 and err["error"]["param"] == "key_alias"
    other = (await api.ok("POST", "/key/generate", {"key_alias": "other"}))["key"]
    status, _ = await api.post("/key/update", {"key": other, "key_alias": "dup"})
    assert status == 409
    status, _ = await api.post("/key/generate", {"key": "sk-custom-key-0123456789abcdef"})
    assert status == 200
    status, _ = await api.post("/key/generate", {"key": "sk-custom-key-0123456789abcdef"})
    assert status == 409


async def test_failing_requests_leave_the_database_unchanged(api: Api, engine: AsyncEngine) -> None:
    await api.ok("POST", "/user/new", {"user_id": "u1", "auto_create_key": False})
    raw = (
        await api.ok(
            "POST",
            "/key/generate",
            {"key_alias": "k1", "budget_limits": [{"budget_duration": "1d", "max_budget": 1}]},
        )
    )["key"]
    await api.ok("POST", "/team/new", {"team_id": "t1"})
    before = await _snapshot(engine)
    failing = [
        ("/key/delete", {"keys": [raw, "sk-missing"]}),  # first key found, second not: nothing deleted
        (
            "/team/new",
            {
                "team_id": "t2",
                "members_with_roles": [{"user_id": "new-user"}, {"user_id": "u1"}, {"user_id": "u1"}],
            },
        ),
        (
            "/team/member_add",
            {
                "team_id": "t1",
                "member": [{"user_id": "fresh"}, {"user_id": "fresh"}],
                "max_budget_in_team": 1,
            },
        ),
        ("/user/new", {"user_id": "u2", "teams": ["t1", "no-such-team"]}),
        ("/user/delete", {"user_ids": ["u1", "ghost"]}),
        ("/key/update", {"key": raw, "max_budget": 5, "team_id": "ghost-team"}),
    ]
    for path, body in failing:
        status, _ = await api.post(path, body)
        assert status in (404, 409, 422), (path, status)
        assert await _snapshot(engine) == before, path


async def test_body_too_large_is_413(api: Api) -> None:
    status, err = await api.call(
        "POST", "/key/generate", content=b'{"metadata": {"x": "' + b"a" * (1 << 20) + b'"}}'
    )
    assert status == 413 and err["error"]["code"] == "request_too_large"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.decimals(min_value=0, max_value=10**9, places=9, allow_nan=False, allow_infinity=False))
async def test_any_nano_usd_amount_round_trips_exactly(sqlite_api: Api, amount: Decimal) -> None:
    body = (
        f'{{"max_budget": {amount}, "budget_limits": [{{"budget_duration": "1d", "max_budget": {amount}}}]}}'
    )
    created = await sqlite_api.ok("POST", "/key/generate", content=body.encode())
    assert created["max_budget"] == amount and created["budget_limits"][0]["max_budget"] == amount
    info = await sqlite_api.ok("GET", "/key/info", params={"key": created["token"]})
    assert info["info"]["max_budget"] == amount
