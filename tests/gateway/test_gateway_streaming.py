"""Streams: usage asked upstream always, shown (with its cost) only to clients that asked,
billed the same as unstreamed, and billed when the client or the upstream goes away."""

from __future__ import annotations

import math
import time

import httpx
import openai
import pytest
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

import spendgate
from spendgate import Usage
from spendgate.providers.mock import MockServer

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Count the stars, please"},
]


def _request_id(stream: openai.Stream[ChatCompletionChunk] | openai.AsyncStream[ChatCompletionChunk]) -> str:
    return str(stream.response.headers["x-spendgate-request-id"])


def test_stream_with_usage_carries_cost_and_matches_unstreamed(client: openai.OpenAI, ledger: Ledger) -> None:
    plain = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    plain_row = ledger.operation(plain.headers["x-spendgate-request-id"], 1)[0]

    stream = client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=20, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1]
    usage = usage_chunks[0].usage
    assert usage is not None and usage.completion_tokens == 20
    row = ledger.operation(_request_id(stream), 1)[0]
    assert row["status"] == "success" and not row["estimated"]
    assert (row["input_tokens"], row["output_tokens"]) == (
        plain_row["input_tokens"],
        plain_row["output_tokens"],
    )
    assert row["cost_nanos"] == plain_row["cost_nanos"] > 0
    cost = (usage.model_extra or {})["cost"]
    assert math.isclose(cost, float(spendgate.from_nano(row["cost_nanos"])), rel_tol=1e-12)
    assert "x-spendgate-overhead-ms" in stream.response.headers


def test_usage_chunk_is_withheld_from_a_client_that_did_not_ask(
    client: openai.OpenAI, ledger: Ledger
) -> None:
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=8, stream=True)
    chunks = list(stream)
    assert chunks and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    row = ledger.operation(_request_id(stream), 1)[0]
    assert row["output_tokens"] == 8 and row["cost_nanos"] > 0 and not row["estimated"]


async def test_async_stream_is_billed(async_client: openai.AsyncOpenAI, ledger: Ledger) -> None:
    stream = await async_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=5, stream=True, stream_options={"include_usage": True}
    )
    usage = None
    async for chunk in stream:
        usage = chunk.usage or usage
    assert usage is not None
    row = ledger.operation(_request_id(stream), 1)[0]
    expected = spendgate.price("gpt-4o", Usage(input_tokens=usage.prompt_tokens, output_tokens=5)).total_nanos
    assert row["cost_nanos"] == expected


def test_stream_without_upstream_usage_is_estimated(client: openai.OpenAI, ledger: Ledger) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=10,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-mock-no-usage": "1"},
    )
    assert all(c.usage is None for c in stream)
    row = ledger.operation(_request_id(stream), 1)[0]
    assert row["estimated"] and row["status"] == "success"
    # The mock counts 4 characters a token, as the estimate does: the estimate is exact here.
    assert row["output_tokens"] == 10
    assert (
        row["cost_nanos"]
        == spendgate.price("gpt-4o", Usage(input_tokens=row["input_tokens"], output_tokens=10)).total_nanos
    )


def test_client_disconnect_mid_stream_is_billed(
    gateway: GatewayServer, mock: MockServer, ledger: Ledger
) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 400, "stream": True}
    headers = {"authorization": f"Bearer {MASTER_KEY}", "x-mock-chunk-delay-ms": "5"}
    with (
        httpx.Client(timeout=10) as http,
        http.stream("POST", f"{gateway.url}/chat/completions", json=body, headers=headers) as r,
    ):
        request_id = r.headers["x-spendgate-request-id"]
        received = b""
        for piece in r.iter_raw():
            received += piece
            if received.count(b"data:") >= 5:
                break
    rows = ledger.operation(request_id, 1)
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "cancelled" and row["estimated"]
    # The gateway stopped reading and closed the upstream: the mock is not streaming on.
    deadline = time.monotonic() + 1
    while mock.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mock.stats()["in_flight"] == 0
    assert 4 <= row["output_tokens"] < 400
    assert row["input_tokens"] > 0 and row["cost_nanos"] > 0


def test_upstream_failure_mid_stream_bills_what_was_produced(client: openai.OpenAI, ledger: Ledger) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=50,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-mock-disconnect-after": "6"},
    )
    request_id = _request_id(stream)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    row = ledger.operation(request_id, 1)[0]
    assert row["status"] == "partial" and row["estimated"]
    assert 0 < row["output_tokens"] < 50 and row["cost_nanos"] > 0
