"""Injected faults: statuses, mid-stream disconnects, hangs, latency and queued faults."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from spendgate.providers.mock import MockServer

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_status_header_raises_the_sdk_error(
    openai_client: openai.OpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    with pytest.raises(error) as caught:
        openai_client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-mock-status": str(status)}
        )
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and "injected" in caught.value.body["message"]
    if status in (429, 503):
        assert caught.value.response.headers["retry-after"] == "1"


def test_rate_limit_body_and_custom_message(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            extra_headers={
                "x-mock-status": "429",
                "x-mock-retry-after": "2.5",
                "x-mock-error-message": "slow down",
            },
        )
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.message.endswith("slow down")
    assert caught.value.response.headers["retry-after-ms"] == "2500"


def test_sdk_retries_see_each_injected_status(mock: MockServer) -> None:
    mock.queue_faults({"status": 503, "times": 2})
    with openai.OpenAI(base_url=mock.url, api_key="sk-retry", max_retries=2) as client:
        reply = client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-mock-retry-after": "0"}
        )
    assert reply.usage is not None
    assert mock.stats()["by_status"] == {"503": 2, "200": 1}


def test_disconnect_after_truncates_the_stream(openai_client: openai.OpenAI, mock: MockServer) -> None:
    stream = openai_client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        max_tokens=10,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-mock-disconnect-after": "4"},
    )
    received = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 4  # the role chunk and three content deltas
    assert all(chunk.usage is None for chunk in received)
    stats = mock.stats()
    assert stats["in_flight"] == 0
    assert stats["usage"] == {"input_tokens": 0, "output_tokens": 0}  # never reported


async def test_disconnect_with_chunk_delay(async_openai_client: openai.AsyncOpenAI) -> None:
    stream = await async_openai_client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-mock-disconnect-after": "2", "x-mock-chunk-delay-ms": "10"},
    )
    received = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 2


def test_hang_times_out_client_side(mock: MockServer) -> None:
    with openai.OpenAI(base_url=mock.url, api_key="sk-hang", max_retries=0, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="m", messages=MESSAGES, extra_headers={"x-mock-hang": "1"})
        assert time.monotonic() - started < 2
    # The server notices the disconnect and stops counting the request as in flight.
    deadline = time.monotonic() + 3
    while mock.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.02)
    stats = mock.stats()
    assert stats["in_flight"] == 0 and stats["by_status"] == {"499": 1}


def test_latency_and_chunk_delay(openai_client: openai.OpenAI) -> None:
    started = time.monotonic()
    openai_client.chat.completions.create(
        model="m", messages=MESSAGES, extra_headers={"x-mock-latency-ms": "150"}
    )
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    chunks = list(
        openai_client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            max_tokens=5,
            stream=True,
            extra_headers={"x-mock-chunk-delay-ms": "30"},
        )
    )
    assert len(chunks) == 7  # role, 5 deltas, finish
    assert time.monotonic() - started >= 6 * 0.03


def test_queued_faults_match_model_and_key(mock: MockServer) -> None:
    mock.queue_faults(
        {"status": 500, "model": "gpt-4o", "times": 2},
        {"status": 429, "api_key": "sk-b"},
    )
    with (
        openai.OpenAI(base_url=mock.url, api_key="sk-a", max_retries=0) as a,
        openai.OpenAI(base_url=mock.url, api_key="sk-b", max_retries=0) as b,
    ):
        assert a.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).model == "gpt-4o-mini"
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                a.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert a.chat.completions.create(model="gpt-4o", messages=MESSAGES).model == "gpt-4o"
        with pytest.raises(openai.RateLimitError):
            b.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert b.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).usage is not None
    assert httpx.get(f"{mock.base_url}/mock/faults").json() == {"data": []}


def test_queued_stream_faults_by_path(mock: MockServer, openai_client: openai.OpenAI) -> None:
    httpx.post(
        f"{mock.base_url}/mock/faults", json={"disconnect_after": 1, "path": "/v1/chat/completions"}
    ).raise_for_status()
    openai_client.embeddings.create(model="e", input="not affected")
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        list(openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert len(list(openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True))) > 1


def test_bad_faults_are_rejected(mock: MockServer) -> None:
    for bad in ({"status": "x"}, {"sttaus": 500}, {"times": 0}, [1]):
        response = httpx.post(f"{mock.base_url}/mock/faults", json=bad)
        assert response.status_code == 400, bad


def test_server_level_faults() -> None:
    from spendgate.providers.mock import run_mock_provider

    with (
        run_mock_provider(faults=[{"status": 502}]) as server,
        openai.OpenAI(base_url=server.url, api_key="k", max_retries=0) as client,
    ):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=MESSAGES)
        assert client.chat.completions.create(model="m", messages=MESSAGES).usage is not None


def test_disconnect_on_a_non_streaming_response(openai_client: openai.OpenAI, mock: MockServer) -> None:
    with pytest.raises(openai.APIConnectionError):
        openai_client.chat.completions.create(
            model="m", messages=MESSAGES, extra_headers={"x-mock-disconnect-after": "0"}
        )
    assert mock.stats()["usage"]["output_tokens"] == 0
