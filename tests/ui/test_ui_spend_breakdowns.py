"""The Spend page stacked by endpoint and by batch versus real-time (issue #18), in Debian's
Chromium: real-time chat and embeddings calls and a batch made through the official openai
SDK against a real gateway, each group's spend on the page equal to the costs the gateway
answered with (``x-spendgate-response-cost``), to the nano-USD; proxy admins only."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import openai
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger
from playwright.sync_api import Page, expect
from ui_helpers import admin, shot, sign_in, usd

LINES = 3


def _jsonl() -> bytes:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "a batch line"}], "max_tokens": 40}
    lines = [{"custom_id": f"ok-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
             for i in range(LINES)]  # fmt: skip
    return "\n".join(json.dumps(line) for line in lines).encode()


def _settled_batch(gateway: GatewayServer, sdk: openai.OpenAI) -> Decimal:
    """A batch created, completed at the mock, billed by the poller: its bill."""
    upload = sdk.files.create(file=("lines.jsonl", io.BytesIO(_jsonl())), purpose="batch")
    batch = sdk.batches.create(
        input_file_id=upload.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_headers={"x-mock-batch-polls": "1"},
    )
    for _ in range(5):
        polled = httpx.post(
            f"{gateway.base_url}/batches/poll", headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=60
        )
        assert polled.status_code == 200, polled.text
        if polled.json()["settled"]:
            break
    final = sdk.batches.with_raw_response.retrieve(batch.id)
    assert final.parse().status == "completed"
    return Decimal(final.headers["x-spendgate-response-cost"])


def _spend_url(gateway: GatewayServer, group_by: str) -> str:
    today = datetime.now(UTC).date()
    return (
        f"{gateway.base_url}/ui/spend?group_by={group_by}&granularity=day"
        f"&start_date={today - timedelta(days=1)}&end_date={today}&timezone=UTC"
    )


def test_spend_by_endpoint_and_by_batch_or_realtime(
    page: Page, gateway: GatewayServer, ledger: Ledger
) -> None:
    with admin(gateway) as client:
        raw_key = client.post("/key/generate", json={"key_alias": "breakdowns"}).json()["key"]
    chat: list[Decimal] = []
    with openai.OpenAI(base_url=gateway.url, api_key=raw_key, max_retries=0, timeout=30) as sdk:
        for i in range(2):
            raw = sdk.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"now {i}"}], max_tokens=8
            )
            chat.append(Decimal(raw.headers["x-spendgate-response-cost"]))
        raw_embedding = sdk.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hello")
        embedding = Decimal(raw_embedding.headers["x-spendgate-response-cost"])
        bill = _settled_batch(gateway, sdk)
    assert all(c > 0 for c in (*chat, embedding, bill))
    ledger.wait(4)

    sign_in(page, gateway.base_url, MASTER_KEY)
    page.goto(_spend_url(gateway, "mode"))
    expect(page.locator("select[name=group_by]")).to_have_value("mode")
    expect(page.locator('tr[data-group="batch"] th')).to_contain_text("Batch")
    expect(page.locator('tr[data-group="realtime"] th')).to_contain_text("Real-time")
    assert usd(page, 'tr[data-group="batch"] .money') == bill
    assert usd(page, 'tr[data-group="realtime"] .money') == sum(chat) + embedding
    assert usd(page, "#spend-total .money") == sum(chat) + embedding + bill
    expect(page.locator("#spend-chart[data-drawn=true] canvas")).to_be_visible()
    shot(page, "spend-by-mode")

    page.goto(_spend_url(gateway, "endpoint"))
    expect(page.locator("select[name=group_by]")).to_have_value("endpoint")
    # The batch's lines were chat completions: its bill is that endpoint's too.
    assert usd(page, 'tr[data-group="/v1/chat/completions"] .money') == sum(chat) + bill
    assert usd(page, 'tr[data-group="/v1/embeddings"] .money') == embedding
    expect(page.locator("#spend-table tbody tr")).to_have_count(2)


def test_a_key_cannot_group_by_endpoint(page: Page, gateway: GatewayServer) -> None:
    with admin(gateway) as client:
        created = client.post("/user/new", json={"user_id": "breakdown-user"})  # an internal user, and a key
        assert created.status_code == 200, created.text
        raw_key = created.json()["key"]
    sign_in(page, gateway.base_url, raw_key)
    page.goto(_spend_url(gateway, "key"))
    options = page.locator("select[name=group_by] option")
    assert "endpoint" not in options.evaluate_all("(os) => os.map((o) => o.value)")
    answer = page.goto(_spend_url(gateway, "endpoint"))
    assert answer is not None and answer.status == 422
    # The API itself refuses the grouping to a key that is no admin.
    refused = httpx.get(
        f"{gateway.base_url}/global/spend/export",
        params={"format": "csv", "group_by": "mode", "start_date": "2026-01-01", "end_date": "2026-01-02"},
        headers={"Authorization": f"Bearer {raw_key}"},
    )
    assert refused.status_code == 403 and refused.json()["error"]["param"] == "group_by"
