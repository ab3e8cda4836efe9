"""A batch's settlement is checked for budget crossings as a request's settle is: a batch
created through the gateway with the official openai SDK, billed by the batch-cost poller
(its reservation rebuilt from the row, as another instance or a restart would), takes its
key past 50 % and 80 % of ``max_budget``; a real webhook receiver gets those two budget
alerts for the key, signed, once each, and nothing before the batch is billed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import openai
import orjson
from alert_receivers import WHSEC, HttpReceiver, until
from standardwebhooks.webhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))

from batch_rules_helpers import jsonl, key_window, line, settle
from gateway_helpers import GatewayServer, make_config
from limits_helpers import Admin

from spendgate.providers.mock import MockServer

LINES = 10
MAX_TOKENS = 400
# gpt-4o at the batch tier: $1.25 / M input, $5 / M output; a line's prompt is 5 tokens.
WORST = LINES * (5 * 1250 + MAX_TOKENS * 5000)  # nano-USD: what the batch reserves


async def test_a_batch_that_crosses_thresholds_alerts_once_each(
    tmp_path: Path, mock_server: MockServer, http_receiver: HttpReceiver
) -> None:
    base = mock_server.base_url
    config = make_config(
        base,
        tmp_path / "spendgate.db",
        tmp_path / "journal",
        model_list=[{"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_base": base}}],
        general_settings={
            "alerting": ["webhook"],
            "alerting_args": {"send_interval_seconds": 0.1},
            "batch_poll_interval_seconds": 3600,  # the test runs the cycles (POST /batches/poll)
            "batch_poll_jitter_seconds": 0,
        },
        router_settings={"fallbacks": []},
        environment_variables={
            "WEBHOOK_URL": f"{http_receiver.base}/hook",
            "SPENDGATE_WEBHOOK_SECRET": WHSEC,
        },
    )
    with GatewayServer(config) as server, Admin(server.base_url) as admin:
        limit_usd = WORST / 0.9 / 1e9  # the batch's bill, every token generated, is 90 % of it
        raw = admin.key(max_budget=round(limit_usd, 6), key_alias="batch-key")
        with openai.OpenAI(base_url=server.url, api_key=raw, max_retries=0, timeout=30) as client:
            file_id = client.files.create(
                file=("in.jsonl", jsonl([line(f"r{i}", max_tokens=MAX_TOKENS) for i in range(LINES)])),
                purpose="batch",
            ).id
            batch_id = client.batches.create(
                input_file_id=file_id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                extra_headers={"x-mock-completion-tokens": str(MAX_TOKENS), "x-mock-batch-polls": "2"},
            ).id
        assert key_window(admin.http, raw) == (0, WORST)
        await asyncio.sleep(0.5)
        assert http_receiver.on("/hook") == []  # a reservation is not spend: nothing yet
        db = Path(str(server.app.state.services.engine.url.database))
        row = settle(admin.http, db, batch_id)
        assert row["cost_nanos"] == WORST
        await until(lambda: len(http_receiver.on("/hook")) >= 2, timeout=20)
        settle(admin.http, db, batch_id)  # another cycle: settled once, nothing more to say
        await asyncio.sleep(0.5)

    received = http_receiver.on("/hook")
    bodies = []
    for item in received:
        Webhook(WHSEC).verify(item.body, item.headers)  # raises if not signed right
        bodies.append(orjson.loads(item.body))
    assert sorted(b["threshold_percent"] for b in bodies) == ["50", "80"], bodies
    for body in bodies:
        assert (body["kind"], body["event"], body["scope_type"], body["key_alias"]) == (
            "budget_crossed",
            "threshold_crossed",
            "key",
            "batch-key",
        )
        assert body["spend_nanos"] == WORST
