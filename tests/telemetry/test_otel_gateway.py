"""OpenTelemetry from a real gateway (uvicorn on a loopback port) to a real OTLP/HTTP receiver,
driven with the official openai and anthropic SDKs against the mock provider: one CLIENT
span per spend event with the GenAI attributes and the exact cost of the response header,
error status on a failed attempt, and the GenAI token and duration histograms."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config
from otlp_receiver import OtlpReceiver, Point, Span

from spendgate.providers.mock import MockServer
from spendgate.telemetry.otel import DURATION_BUCKETS, TOKEN_BUCKETS

SPAN_KIND_CLIENT = 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_UNSET, STATUS_ERROR = 0, 2


@dataclass
class Run:
    """What the load sent and got back, and what the receiver and the ledger hold after it."""

    answers: dict[str, Any] = field(default_factory=dict)
    """Name of a call → its raw response (headers) and parsed body."""
    spans: list[Span] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    receiver: OtlpReceiver | None = None

    def span(self, event_id: str) -> Span:
        found = [s for s in self.spans if s.attributes.get("spendgate.event_id") == event_id]
        assert len(found) == 1, (event_id, [s.attributes.get("spendgate.event_id") for s in self.spans])
        return found[0]

    def row(self, event_id: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["event_id"] == event_id)


@pytest.fixture(scope="module")
def run(mock_server: MockServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    base = tmp_path_factory.mktemp("otel")
    result = Run()
    with OtlpReceiver() as receiver:
        config = make_config(
            mock_server.base_url,
            base / "spendgate.db",
            base / "journal",
            general_settings={
                "otel": {
                    "endpoint": receiver.url,
                    "headers": {"x-otlp-token": "secret"},
                    "service_name": "gw-test",
                    "metric_export_interval_seconds": 3600,  # the stop exports them
                }
            },
        )
        with GatewayServer(config) as server:
            bearer = {"authorization": f"Bearer {MASTER_KEY}"}
            with httpx.Client(base_url=server.base_url, headers=bearer, timeout=30) as admin:
                assert admin.post("/team/new", json={"team_id": "otel-team"}).status_code == 200
                team_key = admin.post("/key/generate", json={"team_id": "otel-team"}).json()["key"]
            _load(server, team_key, result.answers)
            expected = 6  # chat, stream, embeddings, messages, flaky's failed attempt + answer
            result.rows = Ledger(base / "spendgate.db").wait(expected)
            assert len(result.rows) == expected
        # Stopping the gateway flushed the span queue and exported the metrics once more.
        result.spans = receiver.spans()
        result.points = receiver.points()
        result.receiver = receiver
    yield result


def _load(server: GatewayServer, team_key: str, answers: dict[str, Any]) -> None:
    with openai.OpenAI(base_url=server.url, api_key=team_key, max_retries=0, timeout=20) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hello there, how are you"}],
            extra_headers={"x-mock-cached-tokens": "8", "x-mock-reasoning-tokens": "4"},
        )
        answers["chat"] = (raw.headers, raw.parse())
    with openai.OpenAI(base_url=server.url, api_key=MASTER_KEY, max_retries=0, timeout=20) as client:
        raw_stream = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "stream please"}], stream=True
        )
        chunks = list(raw_stream.parse())
        answers["stream"] = (raw_stream.headers, chunks)
        raw_embedding = client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input="embed me"
        )
        answers["embeddings"] = (raw_embedding.headers, raw_embedding.parse())
        raw_flaky = client.chat.completions.with_raw_response.create(
            model="flaky", messages=[{"role": "user", "content": "the cheap one is down"}]
        )
        answers["flaky"] = (raw_flaky.headers, raw_flaky.parse())
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    with anthropic.Anthropic(
        base_url=server.base_url, api_key=MASTER_KEY, max_retries=0, timeout=20
    ) as claude:
        raw_message = claude.messages.with_raw_response.create(
            model="claude-sonnet-4-6",
            max_tokens=11,
            messages=[{"role": "user", "content": "Hello, Claude"}],
            extra_headers={"x-mock-cached-tokens": "3", "x-mock-cache-write-tokens": "2"},
        )
        answers["messages"] = (raw_message.headers, raw_message.parse())


def test_one_client_span_per_spend_event(run: Run) -> None:
    assert sorted(str(s.attributes["spendgate.event_id"]) for s in run.spans) == sorted(
        r["event_id"] for r in run.rows
    )
    for span in run.spans:
        assert span.kind == SPAN_KIND_CLIENT
        assert span.scope == "spendgate"
        assert span.resource["service.name"] == "gw-test"
        assert 0 < span.start_ns <= span.end_ns
    assert run.receiver is not None
    assert run.receiver.received.bad_requests == 0
    # Every export carried the configured headers.
    assert run.receiver.received.headers
    assert all(h.get("x-otlp-token") == "secret" for h in run.receiver.received.headers)


def test_chat_span_has_the_genai_attributes_and_the_exact_cost(run: Run) -> None:
    headers, completion = run.answers["chat"]
    request_id = headers["x-spendgate-request-id"]
    span = run.span(request_id)
    row = run.row(request_id)
    a = span.attributes
    assert span.name == "chat gpt-4o"
    assert span.status_code == STATUS_UNSET
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o"
    assert a["gen_ai.response.model"] == "gpt-4o"
    assert a["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert a["gen_ai.usage.cache_read.input_tokens"] == 8
    assert a["gen_ai.usage.reasoning.output_tokens"] == 4
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 0
    # The cost: exactly the header's text, and the integer the ledger holds.
    cost = headers["x-spendgate-response-cost"]
    assert Decimal(cost) > 0
    assert a["spendgate.cost.usd"] == cost
    assert a["spendgate.cost.nanos"] == row["cost_nanos"] == int(Decimal(cost) * 10**9)
    assert a["gen_ai.usage.cost.amount"] == float(Decimal(cost))
    assert a["gen_ai.usage.cost.currency"] == "USD"
    assert a["gen_ai.usage.cost.source"] == "local"
    # Who is billed: the key's stable hash (never the key) and its team.
    assert a["spendgate.request_id"] == request_id
    assert a["spendgate.hashed_api_key"] == row["api_key"]
    assert a["spendgate.team_id"] == "otel-team"
    assert a["spendgate.outcome"] == "success"
    assert a["spendgate.deployment_id"] == row["deployment_id"]
    assert a["spendgate.catalogue_version"] == row["catalogue_version"]
    assert not any(str(v).startswith("sk-") for v in a.values())


def test_stream_embeddings_and_anthropic_spans(run: Run) -> None:
    headers, _chunks = run.answers["stream"]
    stream_id = headers["x-spendgate-request-id"]
    stream = run.span(stream_id)
    row = run.row(stream_id)
    assert stream.name == "chat gpt-4o"
    assert stream.attributes["gen_ai.usage.output_tokens"] == row["output_tokens"] > 0
    assert stream.attributes["spendgate.cost.nanos"] == row["cost_nanos"] > 0
    assert "spendgate.team_id" not in stream.attributes  # the master key has no team

    headers, embedding = run.answers["embeddings"]
    span = run.span(headers["x-spendgate-request-id"])
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes["gen_ai.operation.name"] == "embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == embedding.usage.prompt_tokens
    assert span.attributes["spendgate.cost.usd"] == headers["x-spendgate-response-cost"]

    headers, message = run.answers["messages"]
    span = run.span(headers["x-spendgate-request-id"])
    a = span.attributes
    assert span.name == "chat claude-sonnet-4-6"
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.usage.cache_read.input_tokens"] == 3 == message.usage.cache_read_input_tokens
    assert a["gen_ai.usage.cache_creation.input_tokens"] == 2 == message.usage.cache_creation_input_tokens
    # Anthropic's input_tokens leave out the cache; the conventions' (and spendgate's) include it.
    assert a["gen_ai.usage.input_tokens"] == message.usage.input_tokens + 3 + 2
    assert a["spendgate.cost.usd"] == headers["x-spendgate-response-cost"]


def test_a_failed_attempt_is_an_error_span(run: Run) -> None:
    headers, _completion = run.answers["flaky"]
    request_id = headers["x-spendgate-request-id"]
    failed = run.span(f"{request_id}.1")
    served = run.span(request_id)
    assert failed.status_code == STATUS_ERROR and failed.status_message == "error"
    assert failed.attributes["error.type"] == "error"
    assert failed.attributes["spendgate.deployment_id"] == "flaky-dead"
    assert failed.attributes["spendgate.request_id"] == request_id  # the attempts share it
    assert failed.attributes["spendgate.cost.nanos"] == 0
    assert served.status_code == STATUS_UNSET and "error.type" not in served.attributes
    assert served.attributes["spendgate.deployment_id"] == "flaky-alive"
    assert served.attributes["gen_ai.request.model"] == "flaky"
    assert served.attributes["gen_ai.response.model"] == "gpt-4o"
    assert served.attributes["spendgate.cost.usd"] == headers["x-spendgate-response-cost"]


def test_token_and_duration_histograms(run: Run) -> None:
    tokens = [p for p in run.points if p.metric == "gen_ai.client.token.usage"]
    durations = [p for p in run.points if p.metric == "gen_ai.client.operation.duration"]
    assert {p.unit for p in tokens} == {"{token}"} and {p.unit for p in durations} == {"s"}
    assert {p.bounds for p in tokens} == {TOKEN_BUCKETS}
    assert {p.bounds for p in durations} == {DURATION_BUCKETS}
    by_type = {
        kind: sum(p.total for p in tokens if p.attributes["gen_ai.token.type"] == kind)
        for kind in ("input", "output")
    }
    assert by_type["input"] == sum(r["input_tokens"] for r in run.rows)
    assert by_type["output"] == sum(r["output_tokens"] for r in run.rows)
    # One observation per token type per call that used tokens (the failed attempt used none).
    used = [r for r in run.rows if r["input_tokens"] or r["output_tokens"]]
    assert sum(p.count for p in tokens) == 2 * len(used) == 10
    # One duration per spend event; the failed attempt's carries error.type.
    assert sum(p.count for p in durations) == len(run.rows)
    assert sum(p.count for p in durations if p.attributes.get("error.type") == "error") == 1
    anthropic_points = [p for p in tokens if p.attributes["gen_ai.provider.name"] == "anthropic"]
    assert {p.attributes["gen_ai.request.model"] for p in anthropic_points} == {"claude-sonnet-4-6"}
    for point in tokens + durations:  # bounded attributes only: nothing per request or per key
        assert set(point.attributes) <= {
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.response.model",
            "gen_ai.token.type",
            "error.type",
        }


def test_the_standard_endpoint_variable_and_litellm_callbacks(
    mock_server: MockServer, receiver: OtlpReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``litellm_settings.callbacks: ["otel"]`` with only ``OTEL_EXPORTER_OTLP_ENDPOINT`` and
    ``OTEL_SERVICE_NAME`` set, as a LiteLLM user's deployment has them."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    config = make_config(
        mock_server.base_url,
        tmp_path / "spendgate.db",
        tmp_path / "journal",
        litellm_settings={"callbacks": ["otel"]},
    )
    with GatewayServer(config) as server:
        with openai.OpenAI(base_url=server.url, api_key=MASTER_KEY, max_retries=0, timeout=20) as client:
            raw = client.chat.completions.with_raw_response.create(
                model="my-llama", messages=[{"role": "user", "content": "hi"}]
            )
    spans = receiver.spans()
    assert [s.attributes["spendgate.request_id"] for s in spans] == [raw.headers["x-spendgate-request-id"]]
    assert spans[0].resource["service.name"] == "from-env"
    assert spans[0].attributes["gen_ai.provider.name"] == "hosted_vllm"
    assert spans[0].attributes["spendgate.cost.usd"] == raw.headers["x-spendgate-response-cost"]
    assert receiver.points()  # the metrics went to the same endpoint
