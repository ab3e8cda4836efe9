"""BatchUpstream against the real mock provider, through both upstream clients: OpenAI files and
batches, Anthropic message batches, errors, and the release of streamed connections."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
import httpx
import pytest
import pytest_asyncio
from mock_helpers import chat_prompt, tokens

import spendgate
from spendgate.batches.output import price_output
from spendgate.core.money import to_nano
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.model import Usage
from spendgate.errors import UpstreamStatusError
from spendgate.providers.base import Target
from spendgate.providers.batch_api import BatchUpstream
from spendgate.providers.http import AiohttpClient, HttpxClient, UpstreamClient, make_upstream_client
from spendgate.providers.mock import MockServer

CLIENTS: list[Literal["aiohttp", "httpx"]] = ["aiohttp", "httpx"]
CLAUDE = "claude-haiku-4-5"


@pytest_asyncio.fixture(params=CLIENTS)
async def client(request: pytest.FixtureRequest) -> AsyncIterator[UpstreamClient]:
    upstream = make_upstream_client(request.param)
    yield upstream
    await upstream.aclose()


def _openai(client: UpstreamClient, mock: MockServer, **headers: str) -> BatchUpstream:
    target = Target("openai", "openai", "gpt-4o-mini", mock.url, api_key="sk-batch", timeout=10)
    return BatchUpstream(client, target, where="mock-openai", headers=headers)


def _anthropic(client: UpstreamClient, mock: MockServer) -> BatchUpstream:
    target = Target("anthropic", "anthropic", CLAUDE, mock.base_url, api_key="ak-batch", timeout=10)
    return BatchUpstream(client, target, where="mock-anthropic")


def _line(custom_id: str, content: str, max_tokens: int) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": content}],
            "max_tokens": max_tokens,
        },
    }


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


async def _read(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


# -- OpenAI files and batches ----------------------------------------------------------------------


async def test_upload_create_poll_and_stream_every_output_line(
    client: UpstreamClient, mock: MockServer
) -> None:
    upstream = _openai(client, mock)
    lines = [_line(f"req-{n}", "word " * n, 1 + n % 7) for n in range(1, 41)]
    lines.append(_line("fail-41", "this one fails", 3))
    data = _jsonl(lines)
    uploaded = await upstream.upload_file("batch.jsonl", data)
    assert uploaded["object"] == "file" and uploaded["purpose"] == "batch"
    assert uploaded["bytes"] == len(data) and uploaded["filename"] == "batch.jsonl"
    assert (await upstream.retrieve_file(uploaded["id"]))["id"] == uploaded["id"]
    async with upstream.file_content(uploaded["id"]) as chunks:
        assert chunks.status_code == 200 and chunks.headers["content-type"] == "application/octet-stream"
        assert await _read(chunks) == data  # the multipart upload kept every byte

    batch = await upstream.create_batch(
        uploaded["id"], "/v1/chat/completions", metadata={"team": "a"}, headers={"x-mock-batch-polls": "3"}
    )
    assert batch["status"] == "validating" and batch["metadata"] == {"team": "a"}
    assert batch["request_counts"]["total"] == 41
    statuses = [(await upstream.retrieve_batch(batch["id"]))["status"] for _ in range(3)]
    assert statuses == ["in_progress", "in_progress", "completed"]
    done = await upstream.retrieve_batch(batch["id"])
    assert done["request_counts"] == {"total": 41, "completed": 40, "failed": 1}

    output = [
        json.loads(row) for row in (await _read(upstream.file_content(done["output_file_id"]))).splitlines()
    ]
    assert [row["custom_id"] for row in output] == [line["custom_id"] for line in lines[:40]]
    for row, line in zip(output, lines, strict=False):
        body = row["response"]["body"]
        assert row["response"]["status_code"] == 200 and row["error"] is None
        assert body["usage"]["prompt_tokens"] == chat_prompt(line["body"]["messages"])
        assert body["usage"]["completion_tokens"] == line["body"]["max_tokens"]
        assert tokens(body["choices"][0]["message"]["content"]) == line["body"]["max_tokens"]
    [error] = [
        json.loads(row) for row in (await _read(upstream.file_content(done["error_file_id"]))).splitlines()
    ]
    assert error["custom_id"] == "fail-41" and error["response"]["status_code"] == 400

    # every call carried the deployment's key
    seen = mock.requests()
    assert seen and {r["api_key"] for r in seen} == {"sk-batch"}
    assert (await upstream.delete_file(uploaded["id"]))["deleted"] is True
    with pytest.raises(UpstreamStatusError) as gone:
        await upstream.retrieve_file(uploaded["id"])
    assert gone.value.status_code == 404


async def test_cancel_and_the_provider_errors(client: UpstreamClient, mock: MockServer) -> None:
    upstream = _openai(client, mock)
    uploaded = await upstream.upload_file("one.jsonl", _jsonl([_line("a", "x", 1)]))
    batch = await upstream.create_batch(uploaded["id"], "/v1/chat/completions")
    assert (await upstream.cancel_batch(batch["id"]))["status"] == "cancelling"
    cancelled = await upstream.retrieve_batch(batch["id"])
    assert cancelled["status"] == "cancelled" and cancelled["output_file_id"] is None
    with pytest.raises(UpstreamStatusError) as again:
        await upstream.cancel_batch(batch["id"])
    assert again.value.status_code == 400 and not again.value.retryable
    assert b"Cannot cancel" in again.value.body

    for call in (
        upstream.retrieve_batch("batch_missing"),
        upstream.cancel_batch("batch_missing"),
        upstream.retrieve_file("file-missing"),
        upstream.delete_file("file-missing"),
        upstream.create_batch("file-missing", "/v1/chat/completions"),
    ):
        with pytest.raises(UpstreamStatusError) as missing:
            await call
        assert missing.value.status_code == 404 and b"No such" in missing.value.body
    stream = upstream.file_content("file-missing")
    with pytest.raises(UpstreamStatusError) as missing:
        async with stream:
            pass
    assert missing.value.status_code == 404
    assert await _read(stream) == b""  # closed: nothing more, no second request
    with pytest.raises(UpstreamStatusError):
        await _read(upstream.file_content("file-missing"))  # the error on first iteration too
    # the client is still fine after all those error answers
    assert (await upstream.retrieve_batch(batch["id"]))["status"] == "cancelled"


# -- Anthropic message batches ---------------------------------------------------------------------


def _request(custom_id: str, text: str, max_tokens: int) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "params": {
            "model": CLAUDE,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text}],
        },
    }


async def test_message_batch_create_poll_to_ended_and_stream_results(
    client: UpstreamClient, mock: MockServer
) -> None:
    upstream = _anthropic(client, mock)
    requests = [_request(f"r{n}", "text " * n, n) for n in range(1, 21)] + [_request("fail-x", "no", 2)]
    created = await upstream.create_message_batch(requests, headers={"x-mock-cached-tokens": "1"})
    assert created["type"] == "message_batch" and created["processing_status"] == "in_progress"
    assert created["results_url"] is None and created["request_counts"]["processing"] == 21
    assert (await upstream.retrieve_message_batch(created["id"]))["processing_status"] == "in_progress"
    ended = await upstream.retrieve_message_batch(created["id"])
    assert ended["processing_status"] == "ended" and ended["results_url"]
    assert ended["request_counts"]["succeeded"] == 20 and ended["request_counts"]["errored"] == 1

    by_url = await _read(upstream.message_batch_results(created["id"], ended["results_url"]))
    by_id = await _read(upstream.message_batch_results(created["id"]))
    assert by_url == by_id
    rows = [json.loads(row) for row in by_id.splitlines()]
    assert [row["custom_id"] for row in rows] == [r["custom_id"] for r in requests]
    for row, request in zip(rows[:20], requests[:20], strict=True):
        message = row["result"]["message"]
        assert row["result"]["type"] == "succeeded" and message["model"] == CLAUDE
        assert message["usage"]["output_tokens"] == request["params"]["max_tokens"]
        assert message["usage"]["cache_read_input_tokens"] == 1
        prompt = chat_prompt(request["params"]["messages"])
        assert message["usage"]["input_tokens"] == prompt - 1
    assert rows[20]["result"]["type"] == "errored"
    assert {r["api_key"] for r in mock.requests()} == {"ak-batch"}


async def test_message_batch_cancel_and_errors(client: UpstreamClient, mock: MockServer) -> None:
    upstream = _anthropic(client, mock)
    created = await upstream.create_message_batch([_request("a", "x", 1)])
    with pytest.raises(UpstreamStatusError) as early:
        await _read(upstream.message_batch_results(created["id"]))  # not ended yet
    assert early.value.status_code == 400
    canceling = await upstream.cancel_message_batch(created["id"])
    assert canceling["processing_status"] == "canceling" and canceling["cancel_initiated_at"]
    ended = await upstream.retrieve_message_batch(created["id"])
    assert ended["processing_status"] == "ended" and ended["request_counts"]["canceled"] == 1
    [row] = (await _read(upstream.message_batch_results(created["id"]))).splitlines()
    assert json.loads(row)["result"] == {"type": "canceled"}
    for call in (
        upstream.retrieve_message_batch("msgbatch_missing"),
        upstream.cancel_message_batch("msgbatch_missing"),
    ):
        with pytest.raises(UpstreamStatusError) as missing:
            await call
        assert missing.value.status_code == 404
    with pytest.raises(UpstreamStatusError) as bad:
        await upstream.create_message_batch([])
    assert bad.value.status_code == 400


# -- streamed content: the connection is released, never leaked ------------------------------------


def _one_connection_client(kind: Literal["aiohttp", "httpx"]) -> UpstreamClient:
    """A pool of one connection: a connection leaked by a stream would block the next call."""
    if kind == "aiohttp":
        return AiohttpClient(max_connections=1)
    return HttpxClient(httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=5))


@pytest.mark.parametrize("kind", CLIENTS)
async def test_an_early_closed_content_stream_does_not_leak_its_connection(
    kind: Literal["aiohttp", "httpx"], mock: MockServer
) -> None:
    client = _one_connection_client(kind)
    try:
        upstream = _openai(client, mock)
        # just under aiohttp's 1 MiB "large raw body" warning, far over the socket buffers
        big = b"".join(b'{"custom_id": "line-%08d", "pad": "%s"}\n' % (n, b"x" * 200) for n in range(3_500))
        uploaded = await upstream.upload_file("big.jsonl", big)

        # 1. closed early through the context manager
        async with upstream.file_content(uploaded["id"]) as chunks:
            first = await anext(chunks)
            assert big.startswith(first) and len(first) < len(big)
        assert (await asyncio.wait_for(upstream.retrieve_file(uploaded["id"]), 5))["bytes"] == len(big)

        # 2. abandoned by a `break`, then closed by hand
        stream = upstream.file_content(uploaded["id"])
        async for _chunk in stream:
            break
        await stream.aclose()
        await stream.aclose()  # idempotent
        assert await _read(stream) == b""

        # 3. cancelled while reading
        async def consume() -> None:
            async with upstream.file_content(uploaded["id"]) as chunks:
                async for _chunk in chunks:
                    await asyncio.sleep(10)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        # the one connection is free each time, and a full read still returns every byte
        assert await asyncio.wait_for(_read(upstream.file_content(uploaded["id"])), 10) == big
        assert (await asyncio.wait_for(upstream.retrieve_file(uploaded["id"]), 5))["id"] == uploaded["id"]
        if isinstance(client, AiohttpClient):
            connector = client.session.connector
            assert isinstance(connector, aiohttp.TCPConnector)
            assert not connector._acquired  # nothing checked out of the pool
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_fully_read_stream_goes_back_to_the_pool(
    kind: Literal["aiohttp", "httpx"], mock: MockServer
) -> None:
    client = _one_connection_client(kind)
    try:
        upstream = _anthropic(client, mock)
        created = await upstream.create_message_batch(
            [_request("a", "hi", 2)], headers={"x-mock-batch-polls": "0"}
        )
        for _ in range(5):  # five full reads over one pooled connection, none waits for the pool
            body = await asyncio.wait_for(_read(upstream.message_batch_results(created["id"])), 5)
            assert json.loads(body)["result"]["type"] == "succeeded"
        if isinstance(client, AiohttpClient):
            connector = client.session.connector
            assert isinstance(connector, aiohttp.TCPConnector)
            assert not connector._acquired
    finally:
        await client.aclose()


# -- the poller's path: the streamed output priced line by line -------------------------------------


AT = datetime(2026, 6, 1, tzinfo=UTC)


def _price_line(model: str, usage: Usage) -> CostBreakdown:
    return spendgate.price(model, usage, service_tier="batch", at=AT)


async def test_streamed_output_priced_as_each_line_with_completion_cost(
    client: UpstreamClient, mock: MockServer
) -> None:
    openai_side, anthropic_side = _openai(client, mock), _anthropic(client, mock)
    lines = [_line(f"r{n}", "token " * (n * 13), 1 + n * 5) for n in range(60)]
    uploaded = await openai_side.upload_file("p.jsonl", _jsonl(lines))
    batch = await openai_side.create_batch(
        uploaded["id"],
        "/v1/chat/completions",
        headers={"x-mock-batch-polls": "0", "x-mock-cached-tokens": "3"},
    )
    async with openai_side.file_content(batch["output_file_id"]) as chunks:
        totals = await price_output(chunks, _price_line, api="openai")
    bodies = [
        json.loads(row)["response"]["body"]
        for row in (await _read(openai_side.file_content(batch["output_file_id"]))).splitlines()
    ]
    assert totals.lines_ok == len(bodies) == 60 and totals.unpriced_lines == 0 and totals.cost_nanos > 0
    assert totals.cost_nanos == sum(to_nano(spendgate.completion_cost(b, batch=True, at=AT)) for b in bodies)

    created = await anthropic_side.create_message_batch(
        [_request(f"m{n}", "word " * (n * 7), 1 + n) for n in range(40)], headers={"x-mock-batch-polls": "0"}
    )
    ended = await anthropic_side.retrieve_message_batch(created["id"])
    async with anthropic_side.message_batch_results(created["id"], ended["results_url"]) as chunks:
        totals = await price_output(chunks, _price_line, api="anthropic")
    raw = await _read(anthropic_side.message_batch_results(created["id"]))
    messages = [json.loads(row)["result"]["message"] for row in raw.splitlines()]
    assert totals.lines_ok == len(messages) == 40 and totals.unpriced_lines == 0
    assert totals.cost_nanos == sum(
        to_nano(spendgate.completion_cost(m, batch=True, at=AT)) for m in messages
    )
    assert totals.cost_nanos > 0


async def test_a_file_of_several_mebibytes_uploads_whole(client: UpstreamClient, mock: MockServer) -> None:
    """Past 1 MiB aiohttp warns that a raw bytes body may block the event loop (an error
    under this suite's warning filter): the client streams such a body instead."""
    upstream = _openai(client, mock)
    big = b"".join(b'{"custom_id": "line-%08d", "pad": "%s"}\n' % (n, b"y" * 400) for n in range(8_000))
    assert len(big) > 3 << 20
    uploaded = await upstream.upload_file("big.jsonl", big)
    assert uploaded["bytes"] == len(big)
    async with upstream.file_content(uploaded["id"]) as chunks:
        assert await _read(chunks) == big
