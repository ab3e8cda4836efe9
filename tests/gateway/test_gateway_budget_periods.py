"""Budget periods as a migrating LiteLLM user expects them (issue #17 items 3 and 4), through
the real gateway with the official openai SDK and the mock provider, budgets in
``general_settings.budget_reset_timezone`` (America/New_York):

* a duration that is no calendar unit (``90d``, ``45d``, ``2w``, ``5mo``) runs from the
  budget's own start; ``budget_reset_at`` on the key's info is the end of the period the
  enforcement counts in (its ``x-spendgate-budget-reset``), for every duration of the
  table in docs/enforcement.md;
* ``metadata.temp_budget_increase`` / ``temp_budget_expiry`` (LiteLLM's spelling) lift
  the limit until the expiry, then lapse;
* ``x-spendgate-budget-remaining`` on a completed call is what is left after its real cost
  (item 6).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import openai
import pytest
import pytest_asyncio
from gateway_helpers import GatewayServer
from limits_helpers import Admin, ClientFactory, cent_call, clients_of, limits_config

from spendgate.core.periods import parse_duration, period_for
from spendgate.providers.mock import MockServer

ZONE = "America/New_York"
NY = ZoneInfo(ZONE)

CALENDAR = ["30s", "15m", "1h", "6h", "24h", "1d", "daily", "7d", "1w", "weekly", "30d", "1mo", "monthly"]
CALENDAR += ["3mo", "quarterly", "6mo", "12mo", "yearly"]
FROM_START = ["2d", "14d", "45d", "90d", "48h", "2w", "5mo"]
"""The durations of the table in docs/enforcement.md ("Which durations are calendar periods")."""


@pytest.fixture(scope="module")
def gw(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    config = limits_config(
        mock_server.base_url, tmp_path_factory.mktemp("periods"), budget_reset_timezone=ZONE
    )
    with GatewayServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def admin(gw: GatewayServer) -> Iterator[Admin]:
    with Admin(gw.base_url) as a:
        yield a


@pytest_asyncio.fixture
async def client_for(gw: GatewayServer, mock: MockServer) -> AsyncIterator[ClientFactory]:
    async with clients_of(gw.url) as make:
        yield make


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _reset_at(admin: Admin, key: str) -> datetime:
    r = admin.http.get("/key/info", params={"key": key})
    assert r.status_code == 200, r.text
    return _instant(r.json()["info"]["budget_reset_at"])


def _local_midnight(day: datetime) -> datetime:
    local = day.astimezone(NY)
    return datetime(local.year, local.month, local.day, tzinfo=NY)


def test_the_table_splits_durations_as_documented() -> None:
    assert not any(parse_duration(d).runs_from_start for d in CALENDAR)
    assert all(parse_duration(d).runs_from_start for d in FROM_START)


async def test_a_90d_budget_created_today_resets_90_days_from_today(
    admin: Admin, client_for: ClientFactory
) -> None:
    key = admin.key(max_budget=100, budget_duration="90d")
    today = _local_midnight(datetime.now(UTC))
    expected = (today + timedelta(days=90)).astimezone(UTC)  # local midnight, 90 days on
    assert _reset_at(admin, key) == expected
    status, _, headers = await cent_call(client_for(key))
    assert status == 200
    assert _instant(headers["x-spendgate-budget-reset"]) == expected


@pytest.mark.parametrize("duration", CALENDAR + FROM_START)
async def test_budget_reset_at_is_the_period_the_enforcement_counts(
    admin: Admin, client_for: ClientFactory, duration: str
) -> None:
    key = admin.key(max_budget=100, budget_duration=duration)
    for _ in range(3):  # a short calendar period may end between the two reads
        before = _reset_at(admin, key)
        status, error, headers = await cent_call(client_for(key))
        assert status == 200, error
        enforced = _instant(headers["x-spendgate-budget-reset"])
        if enforced == before or enforced == _reset_at(admin, key):
            break
    assert enforced in (before, _reset_at(admin, key))
    now = datetime.now(UTC)
    window = parse_duration(duration)
    if window.runs_from_start:
        today = _local_midnight(now)
        assert period_for(window, now, ZONE, anchor=today).end == enforced
        if window.unit == "day":
            assert enforced == (today + timedelta(days=window.count)).astimezone(UTC)
        elif window.unit == "week":
            assert enforced == (today + timedelta(days=7 * window.count)).astimezone(UTC)
        else:
            first = datetime(today.year, today.month, 1)
            months = today.month - 1 + window.count
            start = datetime(first.year + months // 12, months % 12 + 1, 1, tzinfo=NY)
            assert enforced == start.astimezone(UTC)
    else:
        assert enforced == period_for(window, now, ZONE).end


async def test_metadata_temp_budget_increase_lifts_the_limit_until_it_expires(
    admin: Admin, client_for: ClientFactory
) -> None:
    key = admin.key(max_budget=0.01)  # one $0.01 call
    client = client_for(key)
    assert (await cent_call(client))[0] == 200
    status, error, _ = await cent_call(client)
    assert status == 402 and error["type"] == "budget_exceeded"

    expiry = datetime.now(UTC) + timedelta(seconds=4)
    admin.post(
        "/key/update",
        {
            "key": key,
            "metadata": {"temp_budget_increase": 0.01, "temp_budget_expiry": expiry.isoformat()},
        },
    )
    info = admin.http.get("/key/info", params={"key": key}).json()["info"]
    assert info["temp_budget_increase"] == 0.01
    assert _instant(info["temp_budget_expiry"]) == expiry
    assert (await cent_call(client))[0] == 200  # lifted: $0.02 allowed
    assert (await cent_call(client))[0] == 402  # and no further

    time.sleep(max(0.0, (expiry - datetime.now(UTC)).total_seconds()) + 0.2)
    admin.post("/key/update", {"key": key, "max_budget": 0.03})  # room again, without the increase
    assert (await cent_call(client))[0] == 200
    status, error, _ = await cent_call(client)
    assert status == 402, "the lapsed increase must not count any more"


async def test_budget_remaining_is_after_the_real_cost_once_settled(
    admin: Admin, client_for: ClientFactory
) -> None:
    key = admin.key(max_budget=1)
    client = client_for(key)
    # $0.01 reserved (100 output tokens at $0.0001), $0.001 spent (the mock answers 10).
    status, _, headers = await cent_call(client, extra_headers={"x-mock-completion-tokens": "10"})
    assert status == 200
    assert headers["x-spendgate-response-cost"] == "0.001"
    assert headers["x-spendgate-budget-remaining"] == "0.999"  # not 0.99: the reservation is gone
    status, _, headers = await cent_call(client)
    assert headers["x-spendgate-budget-remaining"] == "0.989"


async def test_x_litellm_api_key_is_a_credential_and_the_cost_has_litellm_s_header(
    gw: GatewayServer, admin: Admin, client_for: ClientFactory, mock: MockServer
) -> None:
    key = admin.key(max_budget=1)
    # Authorization carries something else (another service's token): LiteLLM's header wins.
    client = openai.AsyncOpenAI(
        base_url=gw.url,
        api_key="not-the-gateway-key",
        default_headers={"x-litellm-api-key": f"Bearer {key}"},
        max_retries=0,
    )
    async with client:
        status, error, headers = await cent_call(client)
        assert status == 200, error
        assert headers["x-litellm-response-cost"] == headers["x-spendgate-response-cost"] == "0.01"
        bare = client.with_options(default_headers={"x-litellm-api-key": key})
        assert (await cent_call(bare))[0] == 200
        wrong = client.with_options(default_headers={"x-litellm-api-key": "sk-unknown-key-0123456789"})
        assert (await cent_call(wrong))[0] == 401
    status, _, headers = await cent_call(client_for(key), model="a-model-nobody-has")
    assert status >= 400 and headers["x-litellm-response-cost"] == headers["x-spendgate-response-cost"] == "0"
