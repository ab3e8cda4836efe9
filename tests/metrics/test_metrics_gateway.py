"""/metrics of a real gateway (uvicorn on a loopback port) after a known load through it,
driven with the official openai SDK against the mock provider: the format passes promtool,
the counters equal the ledger, budgets show only when limited, labels stay bounded."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config
from metrics_helpers import assert_finite, ledger_sums, promtool_check, samples, total
from prometheus_client.parser import text_string_to_metric_families

from spendgate.metrics import NANOS_PER_USD
from spendgate.providers.mock import MockServer

ROOT = Path(__file__).resolve().parents[2]


class Loaded:
    def __init__(self, server: GatewayServer, db: Path, rated_scrape: str) -> None:
        self.server = server
        self.db = db
        self.rated_scrape = rated_scrape

    def scrape(self, **headers: str) -> httpx.Response:
        return httpx.get(f"{self.server.base_url}/metrics", headers=headers, timeout=30)


def _admin(server: GatewayServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(
        f"{server.base_url}{path}", json=body, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.fixture(scope="module")
def loaded(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """A gateway that served a known load: chat (plain and streamed) on two models, with and
    without end users and keys of a limited and an unlimited team, plus failed requests."""
    base = tmp_path_factory.mktemp("metrics")
    config = make_config(mock_server.base_url, base / "spendgate.db", base / "journal")
    with GatewayServer(config) as server:
        _admin(
            server,
            "/team/new",
            {"team_id": "limited", "team_alias": "Limited", "max_budget": 10, "budget_duration": "1mo"},
        )
        _admin(server, "/team/new", {"team_id": "unlimited"})
        limited_key = _admin(server, "/key/generate", {"team_id": "limited", "max_budget": 5})["key"]
        open_key = _admin(server, "/key/generate", {"team_id": "unlimited", "key_alias": "open-key"})["key"]
        rated_key = _admin(
            server,
            "/key/generate",
            {
                "key_alias": "rated",
                "metadata": {"model_rpm_limit": {"gpt-4o": 50}, "model_tpm_limit": {"gpt-4o": 90000}},
            },
        )["key"]
        # The rate window slides by the minute: the two requests and the scrape that reads
        # what they left must fall in one minute, else the previous minute's weight (the part
        # of it still inside the window) makes the remainder a moving figure.
        if time.time() % 60 > 45:
            time.sleep(60.5 - time.time() % 60)
        minute = int(time.time() // 60)
        with openai.OpenAI(base_url=server.url, api_key=rated_key, max_retries=0, timeout=20) as client:
            for _ in range(2):
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "rated"}]
                )
        rated_scrape = httpx.get(f"{server.base_url}/metrics", timeout=30).text
        assert int(time.time() // 60) == minute, "two requests and a scrape took over 15 s"
        for key in (MASTER_KEY, limited_key, open_key):
            with openai.OpenAI(base_url=server.url, api_key=key, max_retries=0, timeout=20) as client:
                for i in range(6):
                    client.chat.completions.create(
                        model="gpt-4o" if i % 2 else "my-llama",
                        messages=[{"role": "user", "content": f"hello number {i} " * (i + 1)}],
                        user=f"customer-{i}" if i % 3 == 0 else openai.omit,
                    )
                stream = client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "stream please"}], stream=True
                )
                for _ in stream:
                    pass
                with pytest.raises(openai.NotFoundError):
                    client.chat.completions.create(
                        model="no-such-model", messages=[{"role": "user", "content": "x"}]
                    )
        Ledger(base / "spendgate.db").wait(3 * 7 + 2)
        time.sleep(1.1)  # scrapes within a second of the last one reuse its budget snapshot
        yield Loaded(server, base / "spendgate.db", rated_scrape)


def test_metrics_pass_promtool_and_have_no_made_up_values(loaded: Loaded) -> None:
    answer = loaded.scrape()
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    promtool_check(answer.text)
    assert_finite(answer.text)
    assert 'le="+Inf"' in answer.text  # histograms are there, with their required +Inf bucket


def test_counters_equal_the_ledger(loaded: Loaded) -> None:
    text = loaded.scrape().text
    events, nanos, input_tokens, output_tokens = ledger_sums(loaded.db)
    assert events == 23 and nanos > 0
    # Spend is summed in integer nano-USD and added to the float counter once per scrape
    # (per label set); a float (53 bits) holds these sums exactly to far below one nano-USD,
    # so the counter rounds back to the ledger's integer sum exactly.
    for name in ("spendgate_spend_usd_total", "litellm_spend_metric_total"):
        assert round(total(text, name) * NANOS_PER_USD) == nanos, name
    assert total(text, "litellm_input_tokens_metric_total") == input_tokens
    assert total(text, "litellm_output_tokens_metric_total") == output_tokens
    assert total(text, "litellm_total_tokens_metric_total") == input_tokens + output_tokens
    assert total(text, "litellm_requests_metric_total") == events
    assert total(text, "spendgate_request_duration_seconds_count") == events
    # 3 refused (unknown model) requests: failed and in the total.
    assert total(text, "litellm_proxy_failed_requests_metric_total", exception_status="404") == 3
    assert total(text, "litellm_proxy_total_requests_metric_total") == events + 3
    # Per team, as a dashboard groups it.
    with sqlite3.connect(loaded.db) as conn:
        (team_nanos,) = conn.execute(
            "SELECT sum(cost_nanos) FROM spend_events WHERE team_id = 'limited'"
        ).fetchone()
    assert round(total(text, "spendgate_spend_usd_total", team="limited") * NANOS_PER_USD) == team_nanos


def test_an_unlimited_budget_has_no_series(loaded: Loaded) -> None:
    text = loaded.scrape().text
    teams = {s.labels["team"]: s.value for s in samples(text, "litellm_remaining_team_budget_metric")}
    assert set(teams) == {"limited"}  # the unlimited team: no series at all, never +Inf
    with sqlite3.connect(loaded.db) as conn:
        (spent,) = conn.execute(
            "SELECT sum(cost_nanos) FROM spend_events WHERE team_id = 'limited'"
        ).fetchone()
    assert teams["limited"] == pytest.approx(10 - spent / NANOS_PER_USD, abs=1e-9)
    assert [s.labels["team_alias"] for s in samples(text, "litellm_remaining_team_budget_metric")] == [
        "Limited"
    ]
    assert total(text, "litellm_team_max_budget_metric") == 10
    hours = samples(text, "litellm_team_budget_remaining_hours_metric")
    assert len(hours) == 1 and 0 < hours[0].value <= 31 * 24
    keys = samples(text, "litellm_remaining_api_key_budget_metric")
    assert len(keys) == 1 and keys[0].value == pytest.approx(5 - spent / NANOS_PER_USD, abs=1e-9)
    assert samples(text, "litellm_api_key_budget_remaining_hours_metric") == []  # lifetime: no reset


def test_labels_stay_bounded_with_1000_end_users_and_unknown_models(loaded: Loaded) -> None:
    async def drive() -> None:
        async with openai.AsyncOpenAI(
            base_url=loaded.server.url, api_key=MASTER_KEY, max_retries=0, timeout=30
        ) as client:
            gate = asyncio.Semaphore(20)

            async def one(i: int) -> None:
                async with gate:
                    await client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], user=f"end-user-{i}"
                    )

            await asyncio.gather(*(one(i) for i in range(1000)))

            async def unknown(i: int) -> None:
                with pytest.raises(openai.NotFoundError):
                    await client.chat.completions.create(
                        model=f"made-up-model-{i}", messages=[{"role": "user", "content": "hi"}]
                    )

            await asyncio.gather(*(unknown(i) for i in range(100)))

    before = len(loaded.scrape().text.splitlines())
    asyncio.run(drive())
    text = loaded.scrape().text
    assert len(text.splitlines()) - before < 20  # not one series per end user
    end_users = {s.labels["end_user"] for s in samples(text, "litellm_spend_metric_total")}
    assert end_users == {""}
    assert len(samples(text, "litellm_spend_metric_total")) < 20
    configured = {"gpt-4o", "openai/gpt-4o", "my-llama", "hosted_vllm/my-llama", "other"}
    for name in ("litellm_spend_metric_total", "litellm_requests_metric_total"):
        for sample in samples(text, name):
            assert {sample.labels["model"], sample.labels["requested_model"]} <= configured, sample
    assert "made-up-model" not in text


def test_the_grafana_dashboard_uses_metrics_that_exist(loaded: Loaded) -> None:
    text = loaded.scrape().text
    exposed = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    dashboards = sorted((ROOT / "examples").glob("grafana-*.json"))
    assert dashboards
    for path in dashboards:
        board = json.loads(path.read_text())
        exprs = [t["expr"] for panel in board["panels"] for t in panel.get("targets", [])]
        assert len(exprs) >= 5
        names = {n for expr in exprs for n in re.findall(r"\b(?:litellm|spendgate)_[a-z_]+", expr)}
        assert names and names <= exposed, names - exposed


def test_a_keys_rate_limits_per_model(loaded: Loaded) -> None:
    text = loaded.rated_scrape
    requests = samples(text, "litellm_remaining_api_key_requests_for_model")
    tokens = samples(text, "litellm_remaining_api_key_tokens_for_model")
    with sqlite3.connect(loaded.db) as conn:
        (used,) = conn.execute(
            "SELECT sum(input_tokens + output_tokens) FROM spend_events e JOIN virtual_keys k "
            "ON e.api_key = k.key_id WHERE k.key_alias = 'rated'"
        ).fetchone()
    assert used > 0
    # Two requests in the current minute, scraped in that minute (the sliding window weighs
    # the previous minute's by the part of it still inside the window: none here, the key
    # was made just now).
    assert [(s.labels["api_key_alias"], s.labels["model"], s.value) for s in requests] == [
        ("rated", "gpt-4o", 48)
    ]
    assert [(s.labels["api_key_alias"], s.labels["model"], s.value) for s in tokens] == [
        ("rated", "gpt-4o", 90000 - used)
    ]
