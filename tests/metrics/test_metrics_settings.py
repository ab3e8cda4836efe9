"""The metrics settings: bounded labels, the end-user switch, auth on /metrics, metrics off,
and the multiprocess directory ``serve`` prepares."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, make_config
from metrics_helpers import samples, total
from prometheus_client import CollectorRegistry, Histogram

from spendgate.metrics import (
    MULTIPROC_ENV,
    OTHER,
    LabelPolicy,
    MetricsExporter,
    RequestMetrics,
    prepare_multiprocess_dir,
)
from spendgate.metrics.requests import _DURATION_BUCKETS
from spendgate.providers.mock import MockServer


def test_unknown_models_collapse_and_end_users_are_off_by_default() -> None:
    policy = LabelPolicy(["gpt-4o", "openai/gpt-4o"])
    assert policy.model("gpt-4o") == "gpt-4o"
    assert policy.model("gpt-4o-2099-01-01") == OTHER
    assert policy.model(None) == OTHER
    assert policy.customer("alice") == ""
    assert LabelPolicy([], end_user=True).customer("alice") == "alice"


def test_end_user_label_when_turned_on(mock_server: MockServer, tmp_path: Path) -> None:
    config = make_config(
        mock_server.base_url,
        tmp_path / "db.sqlite",
        tmp_path / "journal",
        litellm_settings={"enable_end_user_cost_tracking_prometheus_only": True},
    )
    with GatewayServer(config) as server:
        with openai.OpenAI(base_url=server.url, api_key=MASTER_KEY, max_retries=0) as client:
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], user="alice"
            )
        text = httpx.get(f"{server.base_url}/metrics").text
    assert {s.labels["end_user"] for s in samples(text, "litellm_spend_metric_total")} == {"alice"}


def test_metrics_endpoint_can_require_a_key(mock_server: MockServer, tmp_path: Path) -> None:
    config = make_config(
        mock_server.base_url,
        tmp_path / "db.sqlite",
        tmp_path / "journal",
        litellm_settings={"require_auth_for_metrics_endpoint": True},
    )
    with GatewayServer(config) as server:
        refused = httpx.get(f"{server.base_url}/metrics")
        assert refused.status_code == 401 and refused.json()["error"]["type"]
        wrong = httpx.get(f"{server.base_url}/metrics", headers={"authorization": "Bearer sk-nope"})
        assert wrong.status_code == 401
        ok = httpx.get(f"{server.base_url}/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"})
        assert ok.status_code == 200 and "litellm_spend_metric" in ok.text


def test_metrics_off_means_no_endpoint_and_nothing_counted(mock_server: MockServer, tmp_path: Path) -> None:
    config = make_config(
        mock_server.base_url,
        tmp_path / "db.sqlite",
        tmp_path / "journal",
        general_settings={"metrics_enabled": False},
    )
    with GatewayServer(config) as server:
        with openai.OpenAI(base_url=server.url, api_key=MASTER_KEY, max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert httpx.get(f"{server.base_url}/metrics").status_code == 404
        assert server.app.state.services.pipeline.metrics is None


def test_serve_prepares_a_fresh_multiprocess_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    clean = prepare_multiprocess_dir()
    made = Path(os.environ[MULTIPROC_ENV])
    assert made.is_dir() and not any(made.iterdir())
    (made / "counter_123.db").write_bytes(b"x")
    clean()
    assert not made.exists() and MULTIPROC_ENV not in os.environ
    # An operator's own directory: last run's files are removed, the directory is kept.
    own = tmp_path / "prom"
    own.mkdir()
    (own / "counter_999.db").write_bytes(b"stale")
    (own / "notes.txt").write_text("kept")
    monkeypatch.setenv(MULTIPROC_ENV, str(own))
    clean = prepare_multiprocess_dir()
    assert sorted(p.name for p in own.iterdir()) == ["notes.txt"]
    (own / "gauge_livesum_1.db").write_bytes(b"x")
    clean()
    assert sorted(p.name for p in own.iterdir()) == ["notes.txt"]


def test_health_and_batch_cost_gauges() -> None:
    metrics = RequestMetrics(LabelPolicy([]))
    metrics.health(in_flight=3, queue_depth=7, journal_bytes=2048, dead_lettered=1)
    metrics.batch_cycle(seen=5, settled=2, errors=1)
    metrics.batch_cycle(seen=0, settled=0, errors=0)
    text = asyncio.run(MetricsExporter(metrics).scrape()).decode()
    assert total(text, "spendgate_requests_in_flight") == 3
    assert total(text, "spendgate_recorder_queue_depth") == 7
    assert total(text, "spendgate_recorder_journal_bytes") == 2048
    assert total(text, "spendgate_recorder_dead_lettered_events") == 1
    assert total(text, "litellm_check_batch_cost_jobs_polled") == 0  # the last cycle's
    assert total(text, "litellm_check_batch_cost_jobs_processed_total") == 2
    assert total(text, "litellm_check_batch_cost_errors_total") == 1
    assert total(text, "spendgate_batch_poller_cycles_total") == 2
    assert 0 < time.time() - total(text, "litellm_check_batch_cost_last_run_timestamp") < 60


def test_pending_observations_reach_the_histograms_exactly() -> None:
    """observe() buckets by bisection and flush() adds the counts: the same buckets, count
    and sum as prometheus-client's own observe() of each value (le is inclusive)."""
    metrics = RequestMetrics(LabelPolicy(["m"]))
    durations = [0.005, 0.0051, 0.3, 1.0, 400.0, 0.0]
    for d in durations:
        metrics.observe(
            route="chat",
            requested_model="m",
            model="m",
            provider="openai",
            api_key=None,
            user=None,
            team=None,
            end_user=None,
            input_tokens=1,
            output_tokens=2,
            nanos=1,
            outcome="success",
            duration=d,
            overhead=d / 1000,
        )
    text = asyncio.run(MetricsExporter(metrics).scrape()).decode()
    reference = Histogram("ref", "ref", buckets=_DURATION_BUCKETS, registry=CollectorRegistry())
    for d in durations:
        reference.observe(d)
    expected = {
        s.labels["le"]: s.value for s in next(iter(reference.collect())).samples if s.name == "ref_bucket"
    }
    got = {s.labels["le"]: s.value for s in samples(text, "spendgate_request_duration_seconds_bucket")}
    assert got == expected
    assert total(text, "spendgate_request_duration_seconds_count") == len(durations)
    assert total(text, "spendgate_request_duration_seconds_sum") == pytest.approx(sum(durations))
    assert total(text, "litellm_overhead_latency_metric_count") == len(durations)
    assert total(text, "litellm_spend_metric_total") == pytest.approx(6e-9)
    # A second scrape adds nothing that was already flushed.
    again = asyncio.run(MetricsExporter(metrics).scrape()).decode()
    assert total(again, "spendgate_request_duration_seconds_count") == len(durations)
