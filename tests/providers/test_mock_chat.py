"""Chat completions against the mock provider with the official openai SDK."""

from __future__ import annotations

import httpx
import openai
import pytest
from mock_helpers import chat_prompt, tokens
from openai.types.chat import ChatCompletionMessageParam

from spendgate.providers.mock import MockServer

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France? Answer in one word."},
]


def test_usage_follows_the_formula_and_text_matches_it(openai_client: openai.OpenAI) -> None:
    reply = openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=9)
    assert reply.model == "gpt-4o-mini"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == chat_prompt(MESSAGES) == 4 + 4 + 4 + 13
    assert reply.usage.completion_tokens == 9
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 9
    text = reply.choices[0].message.content
    assert text is not None and tokens(text) == 9
    assert reply.choices[0].finish_reason == "stop"


def test_completion_tokens_sources(openai_client: openai.OpenAI, mock: MockServer) -> None:
    create = openai_client.chat.completions.create
    assert create(model="m", messages=MESSAGES).usage.completion_tokens == 16  # type: ignore[union-attr]
    usage = create(model="m", messages=MESSAGES, max_tokens=3, max_completion_tokens=5).usage
    assert usage is not None and usage.completion_tokens == 5
    usage = create(
        model="m", messages=MESSAGES, max_tokens=3, extra_headers={"x-mock-completion-tokens": "40"}
    ).usage
    assert usage is not None and usage.completion_tokens == 40
    usage = create(model="m", messages=MESSAGES, max_tokens=0).usage
    assert usage is not None and usage.completion_tokens == 0


def test_n_choices_multiply_completion_tokens(openai_client: openai.OpenAI) -> None:
    reply = openai_client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=4, n=3)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert reply.usage is not None and reply.usage.completion_tokens == 12


def test_cached_and_reasoning_tokens(openai_client: openai.OpenAI) -> None:
    reply = openai_client.chat.completions.create(
        model="o4-mini",
        messages=MESSAGES,
        max_completion_tokens=20,
        extra_headers={"x-mock-cached-tokens": "10", "x-mock-reasoning-tokens": "12"},
    )
    usage = reply.usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 10
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 12
    assert usage.completion_tokens == 20
    assert tokens(reply.choices[0].message.content or "") == 8  # visible = completion − reasoning


def test_cached_tokens_are_capped_at_the_prompt(openai_client: openai.OpenAI) -> None:
    reply = openai_client.chat.completions.create(
        model="m", messages=MESSAGES, extra_headers={"x-mock-cached-tokens": "100000"}
    )
    assert reply.usage is not None and reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == reply.usage.prompt_tokens


def test_content_parts_count_their_text(openai_client: openai.OpenAI) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "describe"},
                {"type": "image_url", "image_url": {"url": "https://example.invalid/a.png"}},
                {"type": "text", "text": " this picture"},
            ],
        }
    ]
    reply = openai_client.chat.completions.create(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    assert reply.usage is not None and reply.usage.prompt_tokens == 4 + tokens("describe this picture")


def test_stream_with_usage_chunk(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        max_tokens=7,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-mock-cached-tokens": "3"},
    )
    chunks = list(stream)
    assert all(chunk.model == "gpt-4o" for chunk in chunks)
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.prompt_tokens == chat_prompt(MESSAGES)
    assert last.usage.completion_tokens == 7
    assert (
        last.usage.prompt_tokens_details is not None and last.usage.prompt_tokens_details.cached_tokens == 3
    )
    assert all(chunk.usage is None for chunk in body)
    assert body[0].choices[0].delta.role == "assistant"
    assert body[-1].choices[0].finish_reason == "stop"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in body)
    assert tokens(text) == 7
    assert sum(1 for chunk in body if chunk.choices[0].delta.content) == 7  # one delta per token


def test_stream_without_include_usage_has_no_usage_chunk(openai_client: openai.OpenAI) -> None:
    chunks = list(
        openai_client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=3, stream=True)
    )
    assert all(chunk.choices and chunk.usage is None for chunk in chunks)


def test_no_usage_header(openai_client: openai.OpenAI) -> None:
    headers = {"x-mock-no-usage": "1"}
    reply = openai_client.chat.completions.create(model="m", messages=MESSAGES, extra_headers=headers)
    assert reply.usage is None
    chunks = list(
        openai_client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
    )
    assert all(chunk.choices for chunk in chunks)


async def test_async_stream(async_openai_client: openai.AsyncOpenAI) -> None:
    stream = await async_openai_client.chat.completions.create(
        model="gpt-4.1", messages=MESSAGES, max_tokens=5, stream=True, stream_options={"include_usage": True}
    )
    text = ""
    usage = None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    assert tokens(text) == 5
    assert usage is not None and usage.total_tokens == chat_prompt(MESSAGES) + 5


def test_service_tier_is_echoed(openai_client: openai.OpenAI) -> None:
    reply = openai_client.chat.completions.create(model="m", messages=MESSAGES, service_tier="flex")
    assert reply.service_tier == "flex"
    assert openai_client.chat.completions.create(model="m", messages=MESSAGES).service_tier == "default"


@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_routes_answer_with_and_without_v1(mock: MockServer, prefix: str) -> None:
    response = httpx.post(
        f"{mock.base_url}{prefix}/chat/completions",
        json={"model": "m", "messages": MESSAGES, "max_tokens": 2},
    )
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 2
    assert response.headers["x-request-id"].startswith("req_")


def test_fast_path_equals_the_payload_builder() -> None:
    import orjson

    from spendgate.providers.mock import Controls, MockOptions
    from spendgate.providers.mock.openai_api import chat_completion, chat_completion_payload

    body = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 5, "n": 2, "service_tier": "priority"}
    for controls in (Controls(), Controls(cached_tokens=3, reasoning_tokens=2), Controls(no_usage=True)):
        fast = orjson.loads(chat_completion(body, controls, MockOptions()).body)
        slow = chat_completion_payload(body, controls, MockOptions())
        for key in ("id", "created"):
            fast.pop(key), slow.pop(key)
        assert fast == slow
