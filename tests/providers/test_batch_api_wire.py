"""BatchUpstream's requests on the wire (URLs, auth headers, bodies) for OpenAI, Azure and
Anthropic deployments, recorded by an ``httpx.MockTransport``; and its failures."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Literal

import httpx
import pytest

from spendgate.errors import ConfigurationError, UpstreamConnectError, UpstreamError, UpstreamStatusError
from spendgate.providers.base import Target
from spendgate.providers.batch_api import BatchUpstream
from spendgate.providers.http import make_upstream_client
from spendgate.providers.mock._multipart import parse_form

_Handler = Callable[[httpx.Request], httpx.Response]


class _Recorder:
    def __init__(self, answer: _Handler | None = None) -> None:
        self.seen: list[httpx.Request] = []
        self._answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if self._answer is not None:
            return self._answer(request)
        return httpx.Response(200, json={"id": "x", "object": "echo"})


async def _upstream(target: Target, recorder: _Recorder, **kwargs: object) -> AsyncIterator[BatchUpstream]:
    client = make_upstream_client("httpx", transport=httpx.MockTransport(recorder))
    try:
        yield BatchUpstream(client, target, **kwargs)  # type: ignore[arg-type]
    finally:
        await client.aclose()


async def test_azure_urls_and_api_key() -> None:
    target = Target(
        "azure",
        "azure",
        "gpt4o-deploy",
        "https://res.openai.azure.com/",
        api_key="az",
        api_version="2024-10-21",
    )
    recorder = _Recorder()
    async for upstream in _upstream(target, recorder, headers={"X-Extra": "1"}):
        await upstream.upload_file("in.jsonl", b'{"a": 1}\n')
        await upstream.retrieve_file("file-1")
        await upstream.delete_file("file-1")
        async with upstream.file_content("file-1") as chunks:
            assert b"".join([c async for c in chunks]) == b'{"id":"x","object":"echo"}'
        await upstream.create_batch("file-1", "/chat/completions", metadata={"k": "v"})
        await upstream.retrieve_batch("batch_1")
        await upstream.cancel_batch("batch_1")
    calls = [(r.method, str(r.url)) for r in recorder.seen]
    base = "https://res.openai.azure.com/openai"
    query = "?api-version=2024-10-21"
    assert calls == [
        ("POST", f"{base}/files{query}"),
        ("GET", f"{base}/files/file-1{query}"),
        ("DELETE", f"{base}/files/file-1{query}"),
        ("GET", f"{base}/files/file-1/content{query}"),
        ("POST", f"{base}/batches{query}"),
        ("GET", f"{base}/batches/batch_1{query}"),
        ("POST", f"{base}/batches/batch_1/cancel{query}"),
    ]
    for request in recorder.seen:
        assert request.headers["api-key"] == "az" and "authorization" not in request.headers
        assert request.headers["x-extra"] == "1"
    assert json.loads(recorder.seen[4].content) == {
        "input_file_id": "file-1",
        "endpoint": "/chat/completions",
        "completion_window": "24h",
        "metadata": {"k": "v"},
    }


async def test_openai_urls_multipart_body_and_quoted_ids() -> None:
    target = Target("openai", "groq", "m", "http://vllm:8000", api_key="sk")  # no path: /v1 added
    recorder = _Recorder()
    async for upstream in _upstream(target, recorder):
        await upstream.upload_file("my batch.jsonl", b"line\r\n--not-a-boundary\n", purpose="batch")
        await upstream.retrieve_batch("a/b?c")
        await upstream.create_batch("file-1", "/v1/embeddings")
        with pytest.raises(ValueError):
            await upstream.retrieve_file("..")
    upload, retrieve, create = recorder.seen
    assert str(upload.url) == "http://vllm:8000/v1/files"
    assert upload.headers["authorization"] == "Bearer sk" and "api-key" not in upload.headers
    form = parse_form(upload.content, upload.headers["content-type"])
    assert form == {
        "purpose": "batch",
        "file": b"line\r\n--not-a-boundary\n",
        "file.filename": "my batch.jsonl",
    }
    assert retrieve.url.raw_path == b"/v1/batches/a%2Fb%3Fc"
    assert json.loads(create.content) == {
        "input_file_id": "file-1",
        "endpoint": "/v1/embeddings",
        "completion_window": "24h",
    }
    assert create.headers["content-type"] == "application/json"


async def test_anthropic_headers_and_results_url_origin() -> None:
    target = Target("anthropic", "anthropic", "claude", "https://api.anthropic.com/v1", api_key="ak")
    recorder = _Recorder()
    async for upstream in _upstream(target, recorder):
        await upstream.create_message_batch(
            [{"custom_id": "a", "params": {}}], headers={"anthropic-beta": "b1"}
        )
        await upstream.retrieve_message_batch("msgbatch_1")
        await upstream.cancel_message_batch("msgbatch_1")
        own = "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results"
        for results_url in (own + "?page=2", "https://elsewhere.example/steal", None):
            async with upstream.message_batch_results("msgbatch_1", results_url) as chunks:
                assert [c async for c in chunks]
    base = "https://api.anthropic.com/v1/messages/batches"
    assert [(r.method, str(r.url)) for r in recorder.seen] == [
        ("POST", base),
        ("GET", f"{base}/msgbatch_1"),
        ("POST", f"{base}/msgbatch_1/cancel"),
        ("GET", f"{base}/msgbatch_1/results?page=2"),  # the batch's own URL, same origin
        ("GET", f"{base}/msgbatch_1/results"),  # another host never gets the key
        ("GET", f"{base}/msgbatch_1/results"),
    ]
    for request in recorder.seen:
        assert request.headers["x-api-key"] == "ak" and request.headers["anthropic-version"] == "2023-06-01"
    create = recorder.seen[0]
    assert create.headers["anthropic-beta"] == "b1" and create.headers["content-type"] == "application/json"
    assert json.loads(create.content) == {"requests": [{"custom_id": "a", "params": {}}]}


async def test_the_wrong_protocol_family_is_refused_before_sending() -> None:
    recorder = _Recorder()
    anthropic = Target("anthropic", "anthropic", "claude", "https://api.anthropic.com", api_key="ak")
    openai = Target("openai", "openai", "gpt", "https://api.openai.com/v1", api_key="sk")
    async for upstream in _upstream(anthropic, recorder):
        with pytest.raises(ConfigurationError, match="no OpenAI files"):
            await upstream.upload_file("a.jsonl", b"{}")
        with pytest.raises(ConfigurationError):
            upstream.file_content("file-1")
        with pytest.raises(ConfigurationError):
            await upstream.create_batch("file-1", "/v1/chat/completions")
    async for upstream in _upstream(openai, recorder):
        with pytest.raises(ConfigurationError, match="no message batches"):
            await upstream.create_message_batch([])
        with pytest.raises(ConfigurationError):
            upstream.message_batch_results("msgbatch_1")
    assert recorder.seen == []


async def test_status_errors_and_bodies_that_are_not_json_objects() -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"retry-after": "7"}, json={"error": {"message": "slow down"}}),
            httpx.Response(503, text="unavailable"),
            httpx.Response(200, text="<html>proxy login</html>"),
            httpx.Response(200, json=["a", "list"]),
        ]
    )
    recorder = _Recorder(lambda request: next(answers))
    target = Target("openai", "openai", "gpt", "https://api.openai.com/v1", api_key="sk")
    async for upstream in _upstream(target, recorder, where="dep-1"):
        with pytest.raises(UpstreamStatusError) as limited:
            await upstream.retrieve_batch("b")
        assert limited.value.status_code == 429 and limited.value.retryable
        assert limited.value.headers == {"retry-after": "7"} and b"slow down" in limited.value.body
        stream = upstream.file_content("f")
        with pytest.raises(UpstreamStatusError) as down:
            await stream.open()
        assert down.value.status_code == 503 and down.value.body == b"unavailable"
        for _ in range(2):
            with pytest.raises(
                UpstreamError, match=r"dep-1: GET /v1/batches/b answered 200 .* not a JSON object"
            ):
                await upstream.retrieve_batch("b")


async def test_an_unreachable_provider_is_an_upstream_connect_error() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    kinds: tuple[Literal["aiohttp", "httpx"], ...] = ("aiohttp", "httpx")
    for kind in kinds:
        client = make_upstream_client(kind)
        try:
            target = Target("openai", "openai", "gpt", f"http://127.0.0.1:{port}/v1", timeout=5)
            upstream = BatchUpstream(client, target, where="gone")
            with pytest.raises(UpstreamConnectError, match="gone: cannot connect"):
                await upstream.retrieve_batch("b")
            with pytest.raises(UpstreamConnectError):
                async with upstream.file_content("f"):
                    pass
        finally:
            await client.aclose()
