"""Spend shown in a display currency (issue #17 item 2): general_settings.display_currency
with the operator's dated rates file. The ledger stays in USD; each converted figure names
the rate and its date and equals the USD nanos × the rate, exactly; an updated file is read
without a restart."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config

from spendgate.providers.mock import MockServer

TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="module")
def world(
    mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayServer, Ledger, Path]]:
    tmp = tmp_path_factory.mktemp("currency")
    rates = tmp / "rates.yaml"
    rates.write_text(f"rates:\n  EUR:\n    - {{date: {TODAY - timedelta(days=40)}, rate: '0.9412'}}\n")
    config = make_config(
        mock_server.base_url,
        tmp / "spendgate.db",
        tmp / "journal",
        general_settings={"display_currency": "EUR", "exchange_rates_file": str(rates)},
    )
    with GatewayServer(config) as server:
        yield server, Ledger(tmp / "spendgate.db"), rates


def _get(server: GatewayServer, path: str, **params: Any) -> Any:
    with httpx.Client(base_url=server.base_url, headers={"authorization": f"Bearer {MASTER_KEY}"}) as c:
        answer = c.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json(parse_float=Decimal)


def _eur(nanos: int, rate: str) -> Decimal:
    return (Decimal(nanos) * Decimal(rate) / 10**9).quantize(Decimal("1e-9"))


def test_spend_is_shown_in_eur_traceable_to_the_usd_nanos(
    world: tuple[GatewayServer, Ledger, Path], mock: MockServer
) -> None:
    server, ledger, rates = world
    with openai.OpenAI(base_url=server.url, api_key=MASTER_KEY, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "price me in euros"}], max_tokens=50
        )
    row = ledger.wait(1, "event_id = ?", (raw.headers["x-spendgate-request-id"],))[0]
    nanos = row["cost_nanos"]  # the ledger is in USD nanos
    assert nanos > 0
    day = {"start_date": TODAY.isoformat(), "end_date": TODAY.isoformat()}
    deadline = time.monotonic() + 10
    while (spend := _get(server, "/global/spend", **day))["spend"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert spend["spend"] == Decimal(nanos) / 10**9  # USD, as before
    shown = spend["display"]
    assert (shown["currency"], shown["rate"], shown["rate_date"]) == (
        "EUR", "0.9412", (TODAY - timedelta(days=40)).isoformat(),
    )  # fmt: skip
    assert "half-even" in shown["rounding"]
    assert shown["spend"] == _eur(nanos, "0.9412")

    report = _get(server, "/global/spend/report", **day)
    team = report[0]["teams"][0]
    assert team["display"]["total_spend"] == _eur(nanos, "0.9412")
    activity = _get(server, "/team/daily/activity", **day)
    assert activity["metadata"]["display"]["total_spend"] == _eur(nanos, "0.9412")

    # The operator adds today's rate: read at the next request, no restart.
    rates.write_text(rates.read_text() + f"    - {{date: {TODAY}, rate: '0.95'}}\n")
    os.utime(rates, (time.time() + 5, time.time() + 5))
    shown = _get(server, "/global/spend", **day)["display"]
    assert (shown["rate"], shown["rate_date"], shown["spend"]) == (
        "0.95",
        TODAY.isoformat(),
        _eur(nanos, "0.95"),
    )
    # A range that ends before the new rate still uses the old one: the rate in force on its last day.
    earlier = (TODAY - timedelta(days=1)).isoformat()
    assert _get(server, "/global/spend", start_date=earlier, end_date=earlier)["display"]["rate"] == "0.9412"
    listed = _get(server, "/exchange_rates")
    assert listed["display_currency"] == "EUR" and [r["rate"] for r in listed["rates"]] == ["0.9412", "0.95"]


def test_a_day_before_every_rate_says_so(world: tuple[GatewayServer, Ledger, Path]) -> None:
    old = (TODAY - timedelta(days=400)).isoformat()
    shown = _get(world[0], "/global/spend", start_date=old, end_date=old)["display"]
    assert shown["rate"] is None and "no EUR rate dated on or before" in shown["error"]
