"""The operational alerts in a running gateway: with a webhook channel the server starts the
storage, journal, unpriced-usage and retention jobs; calls to a model without a price (the
official openai SDK, the mock provider) reach a real webhook receiver as one signed
``unpriced_usage`` alert for the day, through a receiver failure first; ``/metrics`` counts
the attempts by channel and outcome and shows the outbox's pending rows (promtool passes)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import openai
import orjson
from alert_receivers import WHSEC, HttpReceiver, until
from standardwebhooks.webhooks import Webhook

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metrics"))

from gateway_helpers import MASTER_KEY, GatewayServer, make_config
from metrics_helpers import assert_finite, promtool_check, total

from spendgate.providers.mock import MockServer
from spendgate.server import Services


async def test_unpriced_usage_reaches_the_webhook_once_and_metrics_count_the_attempts(
    tmp_path: Path, mock_server: MockServer, http_receiver: HttpReceiver
) -> None:
    base = mock_server.base_url
    config = make_config(
        base,
        tmp_path / "spendgate.db",
        tmp_path / "journal",
        model_list=[
            {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_base": base}},
            {
                "model_name": "house-llm",
                "litellm_params": {"model": "hosted_vllm/house-llm", "api_base": base},
                "model_info": {"id": "house-1"},
            },
        ],
        general_settings={
            "alerting": ["webhook"],
            "alerting_args": {
                "operational_check_interval_seconds": 0.2,
                "send_interval_seconds": 0.1,
                "retry_base_seconds": 0.2,
                "retry_max_seconds": 0.3,
                "budget_alerts": False,
            },
        },
        router_settings={"routing_strategy": "simple-shuffle", "fallbacks": []},
        environment_variables={
            "WEBHOOK_URL": f"{http_receiver.base}/hook",
            "SPENDGATE_WEBHOOK_SECRET": WHSEC,
        },
    )
    http_receiver.fail_with = 503  # the first attempts fail: retried, counted
    with GatewayServer(config) as server:
        services: Services = server.app.state.services
        names = {job.name: job for job in services.jobs.jobs}
        assert {"storage-health", "journal-health", "unpriced-usage", "alert-retention"} <= set(names)
        assert names["storage-health"].everywhere and names["journal-health"].everywhere
        assert not names["unpriced-usage"].everywhere and not names["alert-retention"].everywhere
        async with (
            httpx.AsyncClient(base_url=server.base_url, timeout=30) as http,
            openai.AsyncOpenAI(base_url=server.url, api_key=MASTER_KEY, max_retries=0) as client,
        ):
            for n in range(3):
                await client.chat.completions.create(
                    model="house-llm", messages=[{"role": "user", "content": f"hello {n}"}]
                )
            await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "priced"}]
            )

            await until(lambda: http_receiver.failures >= 2, timeout=20)
            text = (await http.get("/metrics")).text
            assert total(text, "spendgate_alert_deliveries_total", channel="webhook", outcome="retry") >= 1
            assert total(text, "spendgate_alert_outbox_pending") == 1

            http_receiver.fail_with = None
            await until(lambda: http_receiver.on("/hook"), timeout=20)
            await client.chat.completions.create(
                model="house-llm", messages=[{"role": "user", "content": "again"}]
            )
            await asyncio.sleep(1.0)  # five scans of the same day after it: nothing new is decided
            text = (await http.get("/metrics")).text

    [received] = http_receiver.on("/hook")
    Webhook(WHSEC).verify(received.body, received.headers)  # raises if not signed right
    body = orjson.loads(received.body)
    assert (body["kind"], body["alert_type"], body["event"]) == (
        "unpriced_usage",
        "failed_tracking_spend",
        "unpriced_usage",
    )
    assert (body["scope_type"], body["scope_id"], body["scope_name"], body["window"]) == (
        "deployment",
        "house-1",
        "house-llm",
        "1d",
    )
    extra = body["extra"]
    assert 1 <= extra["unpriced_requests"] <= 3 and extra["first_seen_at"]
    assert "had usage but no price" in body["event_message"]
    failures = http_receiver.failures
    assert total(text, "spendgate_alert_deliveries_total", channel="webhook", outcome="sent") == 1
    assert total(text, "spendgate_alert_deliveries_total", channel="webhook", outcome="retry") == failures
    assert total(text, "spendgate_alert_outbox_pending") == 0
    assert_finite(text)
    promtool_check(text)
