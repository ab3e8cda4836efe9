"""Budgets through the real gateway (official openai SDK, mock provider, SQLite ledger,
in-process counters): reservations that cannot be raced past, every scope of the
hierarchy, the 402 budget error, and /budget/explain agreeing with the decision."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import pytest_asyncio
from gateway_helpers import GatewayServer, Ledger
from limits_helpers import CENT, Admin, ClientFactory, add_tag_budget, cent_call, limits_config

from spendgate.core.keys import hash_key
from spendgate.providers.mock import MockServer


@pytest.fixture(scope="module")
def gw(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("budgets")
    config = limits_config(
        mock_server.base_url,
        tmp,
        apply_user_budget_to_team_keys=True,
        litellm__max_end_user_budget="0.02",
    )
    with GatewayServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def admin(gw: GatewayServer) -> Iterator[Admin]:
    with Admin(gw.base_url) as a:
        yield a


@pytest.fixture(scope="module")
def db(gw: GatewayServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(str(gw.app.state.services.engine.url.database))


@pytest_asyncio.fixture
async def client_for(gw: GatewayServer, mock: MockServer) -> AsyncIterator[ClientFactory]:
    clients: list[openai.AsyncOpenAI] = []

    def make(key: str) -> openai.AsyncOpenAI:
        c = openai.AsyncOpenAI(base_url=gw.url, api_key=key, max_retries=0, timeout=60)
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.close()


def _ledger_total(db: Path, where: str, params: tuple[object, ...], count: int) -> int:
    rows = Ledger(db).wait(count, where, params)
    assert len(rows) == count
    return sum(int(r["cost_nanos"]) for r in rows)


def _assert_budget_error(status: int, error: dict[str, object], scope: str) -> None:
    assert status == 402, (status, error)
    assert error["type"] == "budget_exceeded"
    message = str(error["message"])
    assert f"budget exceeded for {scope}" in message, message
    assert "limit $" in message and "resets at" in message and "spend $" in message


@pytest.mark.asyncio
async def test_300_concurrent_requests_never_pass_a_key_budget(
    admin: Admin, client_for: ClientFactory, db: Path
) -> None:
    raw = admin.key(key_alias="race-key", max_budget=1.00, budget_duration="1d")
    client = client_for(raw)
    results = await asyncio.gather(*(cent_call(client) for _ in range(300)))
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    # Worst case == real cost == $0.01, budget $1.00: exactly 100 fit, and no more.
    assert len(ok) == 100
    for status, error, headers in refused:
        _assert_budget_error(status, error, f"key:{hash_key(raw)}")
        assert "retry-after" in headers
    assert all(h["x-spendgate-response-cost"] == "0.01" for _, _, h in ok)
    assert _ledger_total(db, "api_key = ? AND status = 'success'", (hash_key(raw),), 100) == 100 * CENT
    explained = admin.explain(raw)
    (window,) = [w for w in explained["windows"] if w["scope_type"] == "key"]
    assert window["spend"] == 1.0 and window["reserved"] == 0 and window["verdict"] == "exceeded"


@pytest.mark.asyncio
async def test_a_team_budget_shared_by_ten_keys_holds_under_300_requests(
    admin: Admin, client_for: ClientFactory, db: Path
) -> None:
    admin.post("/team/new", {"team_id": "race-team", "max_budget": 1.00, "budget_duration": "1mo"})
    keys = [admin.key(team_id="race-team") for _ in range(10)]
    clients = [client_for(k) for k in keys]
    results = await asyncio.gather(*(cent_call(clients[i % 10]) for i in range(300)))
    ok = [r for r in results if r[0] == 200]
    assert len(ok) == 100
    for status, error, _ in (r for r in results if r[0] != 200):
        _assert_budget_error(status, error, "team:race-team")
    assert _ledger_total(db, "team_id = ? AND status = 'success'", ("race-team",), 100) == 100 * CENT
    assert admin.explain(keys[3])["verdict"] == "exceeded"


async def _spend_then_refused(client: openai.AsyncOpenAI, scope: str, **extra: Any) -> None:
    """A $0.01 budget: the first $0.01 call fits exactly, the next is refused naming ``scope``."""
    status, error, headers = await cent_call(client, **extra)
    assert status == 200, error
    assert headers["x-spendgate-budget-remaining"] == "0"
    status, error, _ = await cent_call(client, **extra)
    _assert_budget_error(status, error, scope)


def _explained(admin: Admin, key: str, scope: str, **fields: object) -> None:
    """/budget/explain agrees: the named scope's window is exceeded, the others not."""
    out = admin.explain(key, **fields)
    assert out["verdict"] == "exceeded"
    by_scope = {w["scope"]: w for w in out["windows"]}
    assert by_scope[scope]["verdict"] == "exceeded", out
    assert by_scope[scope]["spend"] == 0.01
    others = [w for s, w in by_scope.items() if s != scope]
    assert all(w["verdict"] != "exceeded" for w in others), out


@pytest.mark.asyncio
async def test_team_key_of_a_user_over_their_own_budget(admin: Admin, client_for: ClientFactory) -> None:
    admin.post("/user/new", {"user_id": "hier-alice", "max_budget": 0.01, "auto_create_key": False})
    admin.post("/team/new", {"team_id": "hier-team-a", "max_budget": 100})
    key = admin.key(user_id="hier-alice", team_id="hier-team-a")
    await _spend_then_refused(client_for(key), "user:hier-alice")
    _explained(admin, key, "user:hier-alice")


@pytest.mark.asyncio
async def test_org_over_budget_with_its_team_under(admin: Admin, client_for: ClientFactory) -> None:
    admin.post(
        "/organization/new",
        {"organization_id": "hier-org", "organization_alias": "hier-org", "max_budget": 0.01},
    )
    admin.post("/team/new", {"team_id": "hier-team-b", "organization_id": "hier-org", "max_budget": 100})
    key = admin.key(team_id="hier-team-b")
    await _spend_then_refused(client_for(key), "organization:hier-org")
    _explained(admin, key, "organization:hier-org")


@pytest.mark.asyncio
async def test_member_over_their_in_team_budget(admin: Admin, client_for: ClientFactory) -> None:
    admin.post("/team/new", {"team_id": "hier-team-c", "max_budget": 100})
    admin.post(
        "/team/member_add",
        {
            "team_id": "hier-team-c",
            "member": [{"user_id": "hier-bob", "role": "user"}],
            "max_budget_in_team": 0.01,
        },
    )
    key = admin.key(user_id="hier-bob", team_id="hier-team-c")
    await _spend_then_refused(client_for(key), "team_member:hier-team-c:hier-bob")
    _explained(admin, key, "team_member:hier-team-c:hier-bob")


@pytest.mark.asyncio
async def test_customer_over_budget_via_the_user_field(admin: Admin, client_for: ClientFactory) -> None:
    admin.post("/customer/new", {"user_id": "hier-cust", "max_budget": 0.01})
    key = admin.key()
    await _spend_then_refused(client_for(key), "end_user:hier-cust", user="hier-cust")
    _explained(admin, key, "end_user:hier-cust", customer="hier-cust")
    # Another customer of the same key is not affected.
    status, _, _ = await cent_call(client_for(key), user="hier-other")
    assert status == 200


@pytest.mark.asyncio
async def test_model_budget_within_a_key(admin: Admin, client_for: ClientFactory) -> None:
    key = admin.key(model_max_budget={"cent": {"max_budget": 0.01, "budget_duration": "1d"}})
    scope = f"key_model:{hash_key(key)}:cent"
    await _spend_then_refused(client_for(key), scope)
    _explained(admin, key, scope, model="cent")
    # The same key on another model is not limited by the model budget.
    status, _, _ = await cent_call(client_for(key), model="cent-parallel")
    assert status == 200


@pytest.mark.asyncio
async def test_tag_budget(admin: Admin, client_for: ClientFactory, db: Path) -> None:
    add_tag_budget(db, "hier-tag", CENT)
    key = admin.key(tags=["hier-tag"])
    await _spend_then_refused(client_for(key), "tag:hier-tag")
    _explained(admin, key, "tag:hier-tag")


@pytest.mark.asyncio
async def test_refused_request_leaves_the_counters_unchanged(admin: Admin, client_for: ClientFactory) -> None:
    key = admin.key(max_budget=0.015, budget_duration="1d")
    client = client_for(key)
    assert (await cent_call(client))[0] == 200
    before = admin.explain(key)["windows"]
    for _ in range(5):
        assert (await cent_call(client))[0] == 402
    assert admin.explain(key)["windows"] == before
    (window,) = [w for w in before if w["scope_type"] == "key"]
    assert window["spend"] == 0.01 and window["reserved"] == 0 and window["verdict"] == "ok"


@pytest.mark.asyncio
async def test_unknown_customer_gets_the_default_budget_once_under_a_burst(
    client_for: ClientFactory, admin: Admin, db: Path
) -> None:
    key = admin.key()
    client = client_for(key)
    results = await asyncio.gather(*(cent_call(client, user="brand-new-cust") for _ in range(30)))
    # max_end_user_budget $0.02: exactly two $0.01 calls.
    assert sorted(r[0] for r in results) == [200] * 2 + [402] * 28
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT max_budget_nanos FROM end_customers WHERE user_id = 'brand-new-cust'"
        ).fetchall()
    assert rows == [(2 * CENT,)]


@pytest.mark.asyncio
async def test_key_bound_to_a_customer_ignores_the_clients_user(
    admin: Admin, client_for: ClientFactory, db: Path
) -> None:
    admin.post("/customer/new", {"user_id": "bound-cust", "max_budget": 0.01})
    key = admin.key(end_user_id="bound-cust")
    client = client_for(key)
    await _spend_then_refused(client, "end_user:bound-cust", user="someone-else")
    rows = Ledger(db).wait(1, "api_key = ?", (hash_key(key),))
    assert {r["end_user"] for r in rows} == {"bound-cust"}


@pytest.mark.asyncio
async def test_success_headers_name_the_tightest_budget(admin: Admin, client_for: ClientFactory) -> None:
    admin.post("/team/new", {"team_id": "hdr-team", "max_budget": 5, "budget_duration": "1mo"})
    key = admin.key(team_id="hdr-team", max_budget=0.5, budget_duration="1d")
    status, _, headers = await cent_call(client_for(key))
    assert status == 200
    # Remaining after this call's reservation (then settled at the same $0.01).
    assert headers["x-spendgate-budget-remaining"] == "0.49"
    assert headers["x-spendgate-budget-reset"].endswith("T00:00:00Z")


@pytest.mark.asyncio
async def test_regenerating_a_key_keeps_its_spend_and_model_windows(
    admin: Admin, client_for: ClientFactory, db: Path
) -> None:
    """A key's budgets follow its stable id, not its hash: rotating an over-budget key does
    not hand it a fresh budget (the bug LiteLLM users report for /key/regenerate)."""
    old = admin.key(
        max_budget=0.02,
        budget_duration="1d",
        model_max_budget={"cent": {"max_budget": 0.01, "budget_duration": "1d"}},
    )
    assert (await cent_call(client_for(old)))[0] == 200
    new = admin.post("/key/regenerate", {"key": old})["key"]
    assert (await cent_call(client_for(old)))[0] == 401
    key_id = hash_key(old)
    status, error, _ = await cent_call(client_for(new))  # the model window is spent
    _assert_budget_error(status, error, f"key_model:{key_id}:cent")
    assert (await cent_call(client_for(new), model="cent-parallel"))[0] == 200
    status, error, _ = await cent_call(client_for(new), model="cent-parallel")
    _assert_budget_error(status, error, f"key:{key_id}")
    explained = {w["scope"]: w for w in admin.explain(new, model="cent")["windows"]}
    assert explained[f"key:{key_id}"]["spend"] == 0.02
    assert explained[f"key_model:{key_id}:cent"]["spend"] == 0.01
    # Both calls are on the ledger under the one stable id.
    assert _ledger_total(db, "api_key = ? AND status = 'success'", (key_id,), 2) == 2 * CENT
