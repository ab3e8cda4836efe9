"""Every OpenAI route through the official SDK: one ledger row each, priced exactly, with the
spendgate headers; and the same routes without the /v1 prefix."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import httpx
import openai
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger

import spendgate
from spendgate import Usage
from spendgate.core.usage import from_openai_image, from_openai_responses


def _row(ledger: Ledger, headers: Mapping[str, str]) -> dict[str, object]:
    """The one ledger row of the call whose response headers these are (httpx or the SDK's httpx2)."""
    assert float(headers["x-spendgate-overhead-ms"]) >= 0
    rows = ledger.operation(headers["x-spendgate-request-id"], 1)
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "success" and not row["unpriced"]
    assert Decimal(headers["x-spendgate-response-cost"]) == spendgate.from_nano(int(str(row["cost_nanos"])))
    return row


def test_completions(client: openai.OpenAI, ledger: Ledger) -> None:
    raw = client.completions.with_raw_response.create(model="gpt-4o", prompt="Once upon", max_tokens=7)
    reply = raw.parse()
    assert reply.usage is not None
    row = _row(ledger, raw.headers)
    usage = Usage(input_tokens=reply.usage.prompt_tokens, output_tokens=7)
    assert row["cost_nanos"] == spendgate.price("gpt-4o", usage).total_nanos > 0
    assert row["endpoint"] == "/v1/completions"


def test_embeddings(client: openai.OpenAI, ledger: Ledger) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["hello", "world!"]
    )
    reply = raw.parse()
    row = _row(ledger, raw.headers)
    assert row["input_tokens"] == reply.usage.prompt_tokens and row["output_tokens"] == 0
    usage = Usage(input_tokens=reply.usage.prompt_tokens)
    assert row["cost_nanos"] == spendgate.price("text-embedding-3-small", usage).total_nanos > 0


def test_responses_plain_and_streamed(client: openai.OpenAI, ledger: Ledger) -> None:
    raw = client.responses.with_raw_response.create(
        model="gpt-4o", input="Tell me a story", max_output_tokens=9
    )
    reply = raw.parse()
    row = _row(ledger, raw.headers)
    usage = from_openai_responses(reply.model_dump())
    assert (row["input_tokens"], row["output_tokens"]) == (usage.input_tokens, 9)
    assert row["cost_nanos"] == spendgate.price("gpt-4o", usage).total_nanos

    with client.responses.stream(model="gpt-4o", input="Tell me a story", max_output_tokens=9) as stream:
        final = stream.get_final_response()
        request_id = stream._response.headers["x-spendgate-request-id"]
    streamed = ledger.operation(request_id, 1)[0]
    assert final.usage is not None
    assert streamed["cost_nanos"] == row["cost_nanos"] and not streamed["estimated"]
    # The terminal event's usage carries the cost the ledger recorded.
    assert (final.usage.model_extra or {})["cost"] == float(spendgate.from_nano(streamed["cost_nanos"]))


def test_images(client: openai.OpenAI, ledger: Ledger) -> None:
    raw = client.images.with_raw_response.generate(model="gpt-image-1", prompt="a red fox")
    reply = raw.parse()
    row = _row(ledger, raw.headers)
    usage = from_openai_image(reply.model_dump())
    assert row["images"] == 1
    assert row["cost_nanos"] == spendgate.price("gpt-image-1", usage).total_nanos > 0


def test_transcription_multipart(client: openai.OpenAI, ledger: Ledger, mock: object) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="whisper-1",
        file=("clip.wav", b"RIFF....WAVEfmt fake audio"),
        extra_headers={"x-mock-audio-seconds": "7"},
    )
    assert raw.parse().text
    row = _row(ledger, raw.headers)
    assert row["seconds_micros"] == 7_000_000
    assert row["cost_nanos"] == spendgate.price("whisper-1", Usage(seconds=Decimal(7))).total_nanos > 0


def test_speech(client: openai.OpenAI, ledger: Ledger) -> None:
    raw = client.audio.speech.with_raw_response.create(model="tts-1", voice="alloy", input="hello there")
    assert raw.content
    row = _row(ledger, raw.headers)
    assert row["input_characters"] == 11
    assert row["cost_nanos"] == spendgate.price("tts-1", Usage(input_characters=11)).total_nanos > 0


def test_per_deployment_prices(client: openai.OpenAI, ledger: Ledger) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="my-llama", messages=[{"role": "user", "content": "hi"}], max_tokens=10
    )
    reply = raw.parse()
    assert reply.usage is not None
    row = _row(ledger, raw.headers)
    expected = Decimal("0.000001") * reply.usage.prompt_tokens + Decimal("0.000002") * 10
    assert spendgate.from_nano(int(str(row["cost_nanos"]))) == expected
    assert row["price_source"] == "deployment:my-llama#1"


def test_models_lists_the_groups(client: openai.OpenAI) -> None:
    ids = {m.id for m in client.models.list()}
    assert {"gpt-4o", "claude-sonnet-4-6", "text-embedding-3-small", "flaky"} <= ids


def test_routes_without_v1_and_health(gateway: GatewayServer, ledger: Ledger) -> None:
    auth = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=gateway.base_url, timeout=10) as http:
        r = http.post(
            "/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            headers=auth,
        )
        assert r.status_code == 200
        # The ledger records the endpoint's canonical path, whichever route served it.
        assert _row(ledger, r.headers)["endpoint"] == "/v1/chat/completions"
        r = http.get("/models", headers=auth)
        assert r.status_code == 200 and r.headers["x-spendgate-request-id"]
        for path in ("/health/liveliness", "/health/readiness"):
            r = http.get(path)
            assert r.status_code == 200, r.text
            assert r.headers["x-spendgate-request-id"] and r.headers["x-spendgate-response-cost"] == "0"
        assert http.get("/health/readiness").json()["database"] == "connected"
