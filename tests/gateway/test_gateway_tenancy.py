"""Whose customer, whose budget: through the real gateway (official SDKs, mock provider), on
SQLite and PostgreSQL.

* A customer named in the body works as LiteLLM's (an unknown one is created with
  ``max_end_user_budget``), but one that belongs to a team or organization, or that a key
  is bound to, is billed only by keys of that team or organization: any other key gets a
  403 naming the field; the master key may.
* ``trust_end_user_field: false`` turns body-named customers off.
* A team key is held by the team's budget and its creator's member budget in the team.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import pytest_asyncio
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger
from limits_helpers import CENT, MESSAGES, Admin, ClientFactory, cent_call, limits_config

from spendgate.core.keys import hash_key
from spendgate.providers.mock import MockServer

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gw(
    request: pytest.FixtureRequest, mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp(f"tenancy-{request.param}")
    extra = {} if request.param == "sqlite" else {"database_url": request.getfixturevalue("postgres_url")}
    config = limits_config(mock_server.base_url, tmp, litellm__max_end_user_budget="0.02", **extra)
    with GatewayServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def admin(gw: GatewayServer) -> Iterator[Admin]:
    with Admin(gw.base_url) as a:
        yield a


@pytest.fixture(scope="module")
def tag(gw: GatewayServer) -> str:
    """A suffix for the ids of this backend's run (PostgreSQL's database is the session's)."""
    return gw.app.state.services.engine.dialect.name


@pytest_asyncio.fixture
async def client_for(gw: GatewayServer, mock: MockServer) -> AsyncIterator[ClientFactory]:
    """An SDK client per key, closed after the test."""
    async with AsyncExitStack() as stack:

        def make(key: str) -> openai.AsyncOpenAI:
            client = openai.AsyncOpenAI(base_url=gw.url, api_key=key, max_retries=0, timeout=60)
            stack.push_async_callback(client.close)
            return client

        yield make


def _customer_spend(admin: Admin, key: str, customer: str) -> float:
    out = admin.explain(key, customer=customer)
    (window,) = [w for w in out["windows"] if w["scope"] == f"end_user:{customer}"]
    return float(window["spend"])


def _assert_not_allowed(status: int, error: dict[str, Any], param: str) -> None:
    assert status == 403, (status, error)
    assert error["param"] == param and error["code"] == "customer_not_allowed", error
    assert error["type"] == "permission_denied"


async def test_a_teams_customer_is_billed_only_by_that_teams_keys(
    admin: Admin, client_for: ClientFactory, gw: GatewayServer, tag: str
) -> None:
    team_a, team_b, cust = f"ten-a-{tag}", f"ten-b-{tag}", f"ten-cust-{tag}"
    for team in (team_a, team_b):
        admin.post("/team/new", {"team_id": team})
    admin.post("/customer/new", {"user_id": cust, "max_budget": 0.05, "team_id": team_a})
    key_a, key_b = admin.key(team_id=team_a), admin.key(team_id=team_b)

    status, error, _ = await cent_call(client_for(key_b), user=cust)
    _assert_not_allowed(status, error, "user")
    async with anthropic.AsyncAnthropic(base_url=gw.base_url, api_key=key_b, max_retries=0) as claude:
        with pytest.raises(anthropic.PermissionDeniedError) as refused:
            await claude.messages.create(
                model="cent", max_tokens=100, messages=MESSAGES, metadata={"user_id": cust}
            )
    body: Any = refused.value.body
    _assert_not_allowed(403, body["error"], "metadata.user_id")
    assert _customer_spend(admin, key_a, cust) == 0  # nothing billed, nothing held

    assert (await cent_call(client_for(key_a), user=cust))[0] == 200
    assert (await cent_call(client_for(MASTER_KEY), user=cust))[0] == 200  # the admin may
    assert _customer_spend(admin, key_a, cust) == 0.02


async def test_a_customer_bound_to_a_teams_key_belongs_to_that_team(
    admin: Admin, client_for: ClientFactory, tag: str
) -> None:
    team_a, team_b, cust = f"bnd-a-{tag}", f"bnd-b-{tag}", f"bnd-cust-{tag}"
    for team in (team_a, team_b):
        admin.post("/team/new", {"team_id": team})
    admin.post("/customer/new", {"user_id": cust, "max_budget": 1})
    bound = admin.key(team_id=team_a, end_user_id=cust)
    other_of_a, stranger = admin.key(team_id=team_a), admin.key(team_id=team_b)
    _assert_not_allowed(*(await cent_call(client_for(stranger), user=cust))[:2], "user")
    personal = admin.key()  # no team, no organization: not the team's either
    _assert_not_allowed(*(await cent_call(client_for(personal), user=cust))[:2], "user")
    assert (await cent_call(client_for(other_of_a), user=cust))[0] == 200
    assert (await cent_call(client_for(bound), user="anyone-else"))[0] == 200  # billed to cust
    assert _customer_spend(admin, bound, cust) == 0.02


async def test_an_organizations_customer_is_billed_by_its_teams_keys(
    admin: Admin, client_for: ClientFactory, tag: str
) -> None:
    org, team_in, cust = f"org-{tag}", f"org-team-{tag}", f"org-cust-{tag}"
    admin.post("/organization/new", {"organization_id": org, "organization_alias": org})
    admin.post("/team/new", {"team_id": team_in, "organization_id": org})
    admin.post("/customer/new", {"user_id": cust, "max_budget": 1, "organization_id": org})
    assert (await cent_call(client_for(admin.key(team_id=team_in)), user=cust))[0] == 200
    _assert_not_allowed(*(await cent_call(client_for(admin.key()), user=cust))[:2], "user")


async def test_unknown_and_unowned_customers_need_no_set_up(
    admin: Admin, client_for: ClientFactory, tag: str
) -> None:
    admin.post("/team/new", {"team_id": f"free-{tag}"})
    admin.post("/customer/new", {"user_id": f"shared-{tag}", "max_budget": 1})  # nobody's
    for key in (admin.key(), admin.key(team_id=f"free-{tag}")):
        client = client_for(key)
        assert (await cent_call(client, user=f"shared-{tag}"))[0] == 200
        assert (await cent_call(client, user=f"new-{tag}-{key[-6:]}"))[0] == 200
    # The new customer was created with max_end_user_budget ($0.02): its third call is refused.
    client = client_for(admin.key())
    new = f"brand-new-{tag}"
    assert [(await cent_call(client, user=new))[0] for _ in range(3)] == [200, 200, 402]


@pytest.fixture(scope="module")
def untrusting(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp = tmp_path_factory.mktemp("untrusting")
    config = limits_config(
        mock_server.base_url, tmp, trust_end_user_field=False, litellm__max_end_user_budget="0"
    )
    with GatewayServer(config) as server:
        yield server


async def test_trust_end_user_field_false_turns_body_customers_off(
    untrusting: GatewayServer, mock: MockServer
) -> None:
    with Admin(untrusting.base_url) as admin:
        admin.post("/customer/new", {"user_id": "zero-cust", "max_budget": 0})
        key = admin.key()
    async with openai.AsyncOpenAI(base_url=untrusting.url, api_key=key, max_retries=0) as client:
        # A $0 customer and an unknown one (max_end_user_budget 0) would both refuse.
        assert (await cent_call(client, user="zero-cust"))[0] == 200
        assert (await cent_call(client, user="never-seen"))[0] == 200
    db = Path(str(untrusting.app.state.services.engine.url.database))
    rows = Ledger(db).wait(2, "api_key = ?", (hash_key(key),))
    assert len(rows) == 2 and {r["end_user"] for r in rows} == {None}


# -- team keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["user", "admin"])
async def test_a_team_key_is_held_by_its_creators_member_budget(
    admin: Admin, client_for: ClientFactory, gw: GatewayServer, tag: str, role: str
) -> None:
    """An internal user whose personal budget is spent makes a team key: the team's budget
    and their member budget in the team (not the personal one, as LiteLLM) hold it."""
    user, team = f"tk-{role}-{tag}", f"tk-team-{role}-{tag}"
    admin.post("/user/new", {"user_id": user, "max_budget": 0.01, "auto_create_key": False})
    admin.post("/team/new", {"team_id": team, "max_budget": 100})
    admin.post(
        "/team/member_add",
        {"team_id": team, "member": [{"user_id": user, "role": role}], "max_budget_in_team": 0.02},
    )
    personal = admin.key(user_id=user)
    assert [(await cent_call(client_for(personal)))[0] for _ in range(2)] == [200, 402]

    with httpx.Client(base_url=gw.base_url, headers={"authorization": f"Bearer {personal}"}) as http:
        made = http.post("/key/generate", json={"team_id": team})
    assert made.status_code == 200, made.text
    team_key = made.json()["key"]
    assert made.json()["user_id"] == user

    client = client_for(team_key)
    results = [await cent_call(client) for _ in range(3)]
    assert [r[0] for r in results[:2]] == [200, 200]
    status, error, _ = results[2]
    assert status == 402 and f"team_member:{team}:{user}" in str(error["message"]), error


# -- /budget/explain ---------------------------------------------------------------------


async def test_explain_shows_only_what_the_callers_endpoints_show(
    admin: Admin, client_for: ClientFactory, gw: GatewayServer, tag: str
) -> None:
    user, team, cust = f"ex-user-{tag}", f"ex-team-{tag}", f"ex-cust-{tag}"
    admin.post("/team/new", {"team_id": team, "max_budget": 100})
    admin.post("/user/new", {"user_id": user, "user_role": "internal_user", "auto_create_key": False})
    admin.post("/team/member_add", {"team_id": team, "member": [{"user_id": user, "role": "user"}]})
    admin.post("/customer/new", {"user_id": cust, "max_budget": 0.01, "team_id": team})
    own = admin.key(user_id=user, team_id=team, end_user_id=cust, max_budget=1)
    assert (await cent_call(client_for(own)))[0] == 200  # spends the customer's budget

    full = admin.explain(own)
    assert f"end_user:{cust}" in {w["scope"] for w in full["windows"]} and full["withheld"] == []
    with httpx.Client(base_url=gw.base_url, headers={"authorization": f"Bearer {own}"}) as http:
        assert http.get("/customer/info", params={"end_user_id": cust}).status_code == 403
        mine = http.post("/budget/explain", json={"key": own})
        asked = http.post("/budget/explain", json={"key": own, "customer": cust})
    assert mine.status_code == 200, mine.text
    shown = {w["scope_type"] for w in mine.json()["windows"]}
    assert "end_user" not in shown and "key" in shown and "team" in shown
    assert f"end_user:{cust}" in mine.json()["withheld"]
    assert asked.status_code == 403 and asked.json()["error"]["param"] == "customer"


async def test_explain_after_a_restart_shows_the_ledgers_spend(
    mock_server: MockServer, tmp_path: Path
) -> None:
    """A restart empties the in-process counters: explain seeds them from the ledger, as the
    admission does, so it shows the real spend and the refusing verdict."""
    config = limits_config(mock_server.base_url, tmp_path)
    with GatewayServer(config) as first, Admin(first.base_url) as admin:
        key = admin.key(max_budget=0.01, budget_duration="1d")
        async with openai.AsyncOpenAI(base_url=first.url, api_key=key, max_retries=0) as client:
            assert (await cent_call(client))[0] == 200
    # The graceful stop flushed the ledger; a new app has new, empty counters.
    with GatewayServer(config) as second, Admin(second.base_url) as admin:
        out = admin.explain(key)
        (window,) = [w for w in out["windows"] if w["scope_type"] == "key"]
        assert window["spend"] == CENT / 1e9 and window["verdict"] == "exceeded", out
        assert out["verdict"] == "exceeded"
        async with openai.AsyncOpenAI(base_url=second.url, api_key=key, max_retries=0) as client:
            assert (await cent_call(client))[0] == 402
