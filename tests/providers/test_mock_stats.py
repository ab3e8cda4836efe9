"""GET /mock/stats: totals, in-flight gauges (overall and per key), statuses, usage; reset."""

from __future__ import annotations

import asyncio

import httpx
import openai
from openai.types.chat import ChatCompletionMessageParam

from spendgate.providers.mock import MockServer

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


async def test_max_in_flight_under_concurrency(mock: MockServer) -> None:
    async with (
        openai.AsyncOpenAI(base_url=mock.url, api_key="sk-one", max_retries=0) as one,
        openai.AsyncOpenAI(base_url=mock.url, api_key="sk-two", max_retries=0) as two,
    ):
        slow = {"x-mock-latency-ms": "300"}
        calls = [
            (one if i < 5 else two).chat.completions.create(model="m", messages=MESSAGES, extra_headers=slow)
            for i in range(8)
        ]
        await asyncio.gather(*calls)
    stats = mock.stats()
    assert stats["requests"] == 8
    assert stats["max_in_flight"] == 8
    assert stats["in_flight"] == 0
    assert stats["by_key"]["sk-one"] == {"requests": 5, "in_flight": 0, "max_in_flight": 5}
    assert stats["by_key"]["sk-two"] == {"requests": 3, "in_flight": 0, "max_in_flight": 3}
    assert stats["by_path"] == {"/v1/chat/completions": 8}
    assert stats["by_status"] == {"200": 8}
    assert stats["usage"] == {"input_tokens": 8 * 6, "output_tokens": 8 * 16}


async def test_in_flight_is_live(mock: MockServer) -> None:
    async with openai.AsyncOpenAI(base_url=mock.url, api_key="sk-live", max_retries=0) as client:
        task = asyncio.create_task(
            client.chat.completions.create(
                model="m", messages=MESSAGES, extra_headers={"x-mock-latency-ms": "400"}
            )
        )
        async with httpx.AsyncClient() as admin:
            for _ in range(100):
                stats = (await admin.get(f"{mock.base_url}/mock/stats")).json()
                if stats["in_flight"] == 1:
                    break
                await asyncio.sleep(0.01)
            assert stats["in_flight"] == 1 and stats["by_key"]["sk-live"]["in_flight"] == 1
            # A reset while a request is in flight keeps it counted.
            await admin.post(f"{mock.base_url}/mock/reset")
            stats = (await admin.get(f"{mock.base_url}/mock/stats")).json()
            assert stats["requests"] == 0 and stats["in_flight"] == 1 and stats["max_in_flight"] == 1
        await task
    assert mock.stats()["in_flight"] == 0


def test_reset_and_request_log(openai_client: openai.OpenAI, mock: MockServer) -> None:
    openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ).close()
    [record] = mock.requests()
    assert record["path"] == "/v1/chat/completions"
    assert record["api_key"] == "sk-test" and record["model"] == "gpt-4o"
    assert record["body"]["stream_options"] == {"include_usage": True}
    mock.reset()
    stats = mock.stats()
    assert (stats["requests"], stats["max_in_flight"], stats["by_path"], mock.requests()) == (0, 0, {}, [])


def test_admin_routes_are_not_counted(mock: MockServer) -> None:
    httpx.get(f"{mock.base_url}/mock/health").raise_for_status()
    httpx.get(f"{mock.base_url}/v1/mock/stats").raise_for_status()
    assert mock.stats()["requests"] == 0
    assert httpx.get(f"{mock.base_url}/mock/nope").status_code == 404
