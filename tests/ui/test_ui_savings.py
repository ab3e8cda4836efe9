"""Cache savings on the Overview and Spend pages (issue #18), in Debian's Chromium, against
a gateway with the response cache on: a call repeated through the official openai SDK is a
hit, billed nothing, and the pages show exactly what it saved (the first call's cost, as
the gateway's ``x-spendgate-response-cost`` header said)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config
from playwright.sync_api import Page, expect
from ui_helpers import sign_in, usd

from spendgate.providers.mock import MockServer


@pytest.fixture(scope="module")
def gateway(mock_server: MockServer, ui_dir: Path) -> Iterator[GatewayServer]:
    """The module's gateway, with the response cache on (in process)."""
    config = make_config(
        mock_server.base_url,
        ui_dir / "spendgate.db",
        ui_dir / "journal",
        litellm_settings={"cache": True, "cache_params": {"type": "local", "ttl": 600}},
    )
    with GatewayServer(config) as server:
        yield server


def test_overview_and_spend_show_what_the_cache_saved(
    page: Page, gateway: GatewayServer, ledger: Ledger
) -> None:
    with openai.OpenAI(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=20) as client:
        first, again = (
            client.chat.completions.with_raw_response.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "cache me"}],
                max_tokens=8,
                temperature=0,
            )
            for _ in range(2)
        )
    assert (first.headers["x-spendgate-cache-hit"], again.headers["x-spendgate-cache-hit"]) == (
        "false",
        "true",
    )
    paid = Decimal(first.headers["x-spendgate-response-cost"])
    assert paid > 0 and Decimal(again.headers["x-spendgate-response-cost"]) == 0
    ledger.wait(2)

    base = gateway.base_url
    sign_in(page, base, MASTER_KEY)
    page.goto(f"{base}/ui/overview")
    for period in ("Today", "This month"):
        card = page.locator(f'[data-period="{period}"]')
        assert Decimal(card.locator(".money").first.get_attribute("data-usd") or "nan") == paid  # spend
        assert Decimal(card.locator(".saved .money").get_attribute("data-usd") or "nan") == paid  # saved

    page.goto(f"{base}/ui/spend?group_by=model")
    assert usd(page, "#spend-total .money") == paid
    assert usd(page, "#spend-saved .money") == paid
    expect(page.locator("p.summary")).to_contain_text("1 cache hit,")
    row = page.locator("#spend-table tbody tr[data-group=gpt-4o]")
    assert Decimal(row.locator(".saved .money").get_attribute("data-usd") or "nan") == paid
