"""When OpenTelemetry is on, what a spend event becomes, and what a failing observer cannot break."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from otlp_receiver import OtlpReceiver

from spendgate.config import OtelSettings, parse_config
from spendgate.core.usage.model import Usage
from spendgate.errors import ConfigurationError
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.telemetry import ObservedSink, otel_settings, start_telemetry
from spendgate.telemetry.attributes import operation_name, provider_name, span_attributes, unix_nanos
from spendgate.telemetry.otel import OtelTelemetry

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _settings(raw: dict[str, Any], environ: dict[str, str] | None = None) -> OtelSettings | None:
    return otel_settings(parse_config(raw, environ={}), environ or {})


def test_off_unless_configured() -> None:
    assert _settings({}) is None
    assert _settings({"litellm_settings": {"callbacks": ["prometheus"]}}) is None
    assert _settings({"litellm_settings": {"callbacks": ["otel"]}}) == OtelSettings()
    assert _settings({"general_settings": {"otel": {}}}) == OtelSettings()
    assert _settings({"general_settings": {"otel": {"enabled": False}}, "litellm_settings": {}}) is None
    assert _settings({"general_settings": {"otel": {"traces": False, "metrics": False}}}) is None
    on = {"litellm_settings": {"callbacks": ["otel"]}}
    assert _settings(on, {"OTEL_SDK_DISABLED": "true"}) is None
    assert _settings(on, {"OTEL_SDK_DISABLED": "false"}) is not None


def test_other_callbacks_still_warn_and_bad_settings_are_named() -> None:
    config = parse_config({"litellm_settings": {"callbacks": ["otel", "langfuse"]}}, environ={})
    assert config.warnings == (
        "litellm_settings.callbacks: 'langfuse' not implemented by spendgate; ignored",
    )
    with pytest.raises(ConfigurationError, match=r"general_settings\.otel\.endpoint"):
        parse_config({"general_settings": {"otel": {"endpoint": "grpc://collector:4317"}}}, environ={})
    with pytest.raises(ConfigurationError, match=r"general_settings\.otel\.sampler"):
        parse_config({"general_settings": {"otel": {"sampler": "always_on"}}}, environ={})


def test_names_in_the_genai_conventions() -> None:
    assert [
        operation_name(p)
        for p in ("/v1/chat/completions", "/chat/completions", "/v1/messages", "/v1/completions")
    ] == ["chat", "chat", "chat", "text_completion"]
    assert operation_name("/v1/embeddings") == "embeddings"
    assert operation_name("/v1/audio/transcriptions") == "transcription"
    assert [provider_name(p) for p in ("openai", "azure", "mistral", "xai", "groq", None)] == [
        "openai",
        "azure.ai.openai",
        "mistral_ai",
        "x_ai",
        "groq",
        "unknown",
    ]
    assert unix_nanos(AT) == 1772366400_123456000


def _event(**fields: Any) -> SpendEvent:
    values: dict[str, Any] = {
        "event_id": "req-1",
        "occurred_at": AT,
        "started_at": AT - timedelta(seconds=2),
        "cost_nanos": 62_500,
        "usage": Usage(input_tokens=10, output_tokens=5),
        "requested_model": "gpt-4o",
        "model": "gpt-4o",
        "provider": "openai",
        "endpoint": "/v1/chat/completions",
        "operation_id": "req-1",
        **fields,
    }
    return SpendEvent(**values)


def test_an_unpriced_call_has_no_made_up_cost() -> None:
    attributes = span_attributes(_event(cost_nanos=0, unpriced=True, unpriced_reason="no price for x"))
    assert "gen_ai.usage.cost.amount" not in attributes
    assert attributes["spendgate.cost.usd"] == "unpriced"
    assert attributes["spendgate.unpriced_reason"] == "no price for x"
    priced = span_attributes(_event())
    assert priced["spendgate.cost.usd"] == "0.0000625" and priced["gen_ai.usage.cost.amount"] == 6.25e-05
    cancelled = span_attributes(_event(status=EventStatus.CANCELLED))
    assert cancelled["error.type"] == "cancelled" and "error.type" not in priced


def test_a_batch_is_a_span_and_tokens_but_no_operation_duration(receiver: OtlpReceiver) -> None:
    telemetry = OtelTelemetry(OtelSettings(endpoint=receiver.url, metric_export_interval_seconds=3600))
    batch = _event(
        event_id="batch:b1",
        operation_id="b1",
        batch_id="b1",
        started_at=AT - timedelta(hours=3),
        usage=Usage(input_tokens=1000, output_tokens=300),
        tags=("nightly",),
    )
    telemetry.observe(batch)
    telemetry.observe(_event())
    telemetry.shutdown()
    spans = {s.attributes["spendgate.event_id"]: s for s in receiver.spans()}
    assert spans["batch:b1"].attributes["spendgate.batch_id"] == "b1"
    assert spans["batch:b1"].attributes["spendgate.tags"] == ("nightly",)
    assert spans["batch:b1"].end_ns - spans["batch:b1"].start_ns == 3 * 3600 * 10**9
    assert spans["req-1"].end_ns == unix_nanos(AT)
    points = receiver.points()
    inputs = [p for p in points if p.attributes.get("gen_ai.token.type") == "input"]
    assert sum(p.total for p in inputs) == 1010
    durations = [p for p in points if p.metric == "gen_ai.client.operation.duration"]
    assert sum(p.count for p in durations) == 1 and sum(p.total for p in durations) == 2.0


class _ListSink:
    def __init__(self) -> None:
        self.events: list[SpendEvent] = []

    def record(self, event: SpendEvent) -> int:
        self.events.append(event)
        return len(self.events)

    async def record_durable(self, event: SpendEvent) -> None:
        self.record(event)


def test_a_failing_observer_never_fails_the_recording(caplog: pytest.LogCaptureFixture) -> None:
    def observe(event: SpendEvent) -> None:
        raise RuntimeError("collector client broke")

    inner = _ListSink()
    sink = ObservedSink(inner, observe)
    assert sink.record(_event()) == 1
    assert [e.event_id for e in inner.events] == ["req-1"]
    assert "could not observe spend event req-1" in caplog.text


async def test_durable_records_are_observed_once() -> None:
    seen: list[str] = []
    inner = _ListSink()
    sink = ObservedSink(inner, lambda event: seen.append(event.event_id))
    await sink.record_durable(_event(event_id="batch:b2"))
    assert seen == ["batch:b2"] and len(inner.events) == 1


def test_turned_on_without_the_sdk_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "spendgate.telemetry.otel", raising=False)
    config = parse_config({"litellm_settings": {"callbacks": ["otel"]}}, environ={})
    with pytest.raises(ConfigurationError, match=r"pip install 'spendgate\[otel\]'"):
        start_telemetry(config)
