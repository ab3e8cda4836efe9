"""The Batches page in Debian's Chromium (issue #18): a batch created through the official
openai SDK against the gateway and the mock provider shows its status, lines done and
failed, the worst case reserved, its creator, and once the poller has billed it, the same
bill as ``x-spendgate-response-cost``, to the nano-USD."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import httpx
import openai
from gateway_helpers import MASTER_KEY, GatewayServer
from playwright.sync_api import Page, expect
from ui_helpers import admin, shot, sign_in, usd

LINES = 5  # two of them fail at the mock (custom_id "fail…")


def _jsonl() -> bytes:
    lines = []
    for i in range(LINES):
        custom_id = f"fail-{i}" if i in (1, 3) else f"ok-{i}"
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"line {i}"}], "max_tokens": 50}
        lines.append({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})
    return "\n".join(json.dumps(line) for line in lines).encode()


def test_a_batch_from_the_sdk_on_the_batches_page(page: Page, gateway: GatewayServer) -> None:
    with admin(gateway) as client:
        user = client.post("/user/new", json={"user_id": "batcher", "auto_create_key": False})
        assert user.status_code == 200, user.text
        created = client.post("/key/generate", json={"key_alias": "batch-key", "user_id": "batcher"})
        assert created.status_code == 200, created.text
        raw_key = created.json()["key"]

    with openai.OpenAI(base_url=gateway.url, api_key=raw_key, max_retries=0, timeout=30) as sdk:
        upload = sdk.files.create(file=("lines.jsonl", io.BytesIO(_jsonl())), purpose="batch")
        batch = sdk.batches.create(
            input_file_id=upload.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            extra_headers={"x-mock-batch-polls": "1"},
        )

        sign_in(page, gateway.base_url, MASTER_KEY)
        page.goto(f"{gateway.base_url}/ui/batches")
        row = page.locator(f'tr[data-batch="{batch.id}"]')
        expect(row).to_have_attribute("data-state", "pending")
        expect(row.locator(".cost")).to_have_text("not billed yet")
        reserved = usd(page, f'tr[data-batch="{batch.id}"] .reserved .money')
        assert reserved > 0
        expect(row.locator(".creator")).to_contain_text("batch-key")
        expect(row.locator(".creator")).to_contain_text("batcher")

        # The poller finds it completed and bills it once; the SDK's retrieve shows the bill.
        for _ in range(5):
            polled = httpx.post(
                f"{gateway.base_url}/batches/poll",
                headers={"Authorization": f"Bearer {MASTER_KEY}"},
                timeout=60,
            )
            assert polled.status_code == 200, polled.text
            if polled.json()["settled"]:
                break
        final = sdk.batches.with_raw_response.retrieve(batch.id)
        bill = Decimal(final.headers["x-spendgate-response-cost"])
        assert final.parse().status == "completed"
    assert 0 < bill <= reserved

    page.goto(f"{gateway.base_url}/ui/batches")
    expect(row).to_have_attribute("data-state", "settled")
    expect(row.locator(".status")).to_have_text("completed")
    expect(row.locator(".done")).to_have_text(str(LINES - 2))
    expect(row.locator(".failed")).to_have_text("2")
    assert usd(page, f'tr[data-batch="{batch.id}"] .cost .money') == bill
    shot(page, "batches")


def test_a_key_sees_only_its_own_batches(page: Page, gateway: GatewayServer) -> None:
    with admin(gateway) as client:
        loner = client.post("/user/new", json={"user_id": "loner", "user_role": "internal_user"})
        assert loner.status_code == 200, loner.text
        other = loner.json()["key"]
        listed = client.get("/v1/batches").json()["data"]
    assert listed  # the previous test's batch exists, but it is not this key's
    sign_in(page, gateway.base_url, other)
    page.goto(f"{gateway.base_url}/ui/batches")
    expect(page.locator(".empty")).to_contain_text("No batches you can see")
    expect(page.locator("#batches-table")).to_have_count(0)
