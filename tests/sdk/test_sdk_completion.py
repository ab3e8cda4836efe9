"""LiteLLM-style entry points (issue #14 item 2): spendgate.completion / acompletion /
embedding / aembedding, with provider-prefixed models, api_base / api_key or the environment,
stream=True and mock_response, on the metered path (same price, callbacks and budget).

LiteLLM's cost-tracking examples run with ``litellm`` replaced by ``spendgate``; calls against
the mock provider cost ``completion_cost`` of the usage they returned, to the nano-USD, and
an anthropic/ call costs what the instrumented Anthropic client pays for the same request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

import spendgate
from spendgate.core.usage.model import Usage
from spendgate.errors import ConfigurationError
from spendgate.providers.mock import MockServer, run_mock_provider
from spendgate.sdk.completion_clients import reset_clients

MESSAGES: list[Any] = [{"role": "user", "content": "Hey, how's it going?"}]
MOCK_TEXT = "It's simple to use and easy to get started"


@pytest.fixture(autouse=True)
def fresh_clients() -> Iterator[None]:
    """The SDK's state is reset by ``conftest.fresh_sdk_state``; the completion clients here."""
    yield
    reset_clients()


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


def _usage_cost(model: str, prompt: int, completion: int, provider: str | None = None) -> Decimal:
    usage = Usage(input_tokens=prompt, output_tokens=completion)
    return spendgate.completion_cost(model=model, usage=usage, custom_llm_provider=provider)


# -- LiteLLM's documented examples, with mock_response (no network) ----------------------------


def test_litellm_documented_completion_cost_with_mock_response(capsys: pytest.CaptureFixture[str]) -> None:
    # LiteLLM docs, "completion_cost": litellm → spendgate.
    response = spendgate.completion(model="gpt-3.5-turbo", messages=MESSAGES, mock_response=MOCK_TEXT)
    cost = spendgate.completion_cost(completion_response=response)
    formatted_string = f"${float(cost):.10f}"
    print(formatted_string)

    assert isinstance(response, ChatCompletion)
    assert response.choices[0].message.content == MOCK_TEXT
    # Usage counted from the text at ~4 characters a token (+4 per message of framing).
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (9, 11)
    # gpt-3.5-turbo: $0.50 / $1.50 per million tokens.
    assert cost == Decimal("0.000021") == 9 * Decimal("0.0000005") + 11 * Decimal("0.0000015")
    assert capsys.readouterr().out == "$0.0000210000\n"
    assert spendgate.cost_of(response) == cost
    assert response._hidden_params["response_cost"] == float(cost)  # type: ignore[attr-defined]
    assert response._hidden_params["spendgate_cost"] == cost  # type: ignore[attr-defined]


def test_litellm_documented_success_callback_prints_the_cost(capsys: pytest.CaptureFixture[str]) -> None:
    def track_cost_callback(
        kwargs: dict[str, Any], completion_response: Any, start_time: Any, end_time: Any
    ) -> None:
        try:
            response_cost = kwargs.get("response_cost", 0)
            print("streaming response_cost", response_cost)
        except Exception:
            pass

    spendgate.success_callback = [track_cost_callback]
    response = spendgate.completion(
        model="openai/gpt-4o", messages=MESSAGES, mock_response="Hi there!", metadata={"tags": ["a"]}
    )
    cost = spendgate.cost_of(response)
    assert cost == _usage_cost("gpt-4o", 9, 3) > 0
    assert capsys.readouterr().out == f"streaming response_cost {float(cost)}\n"


def test_mock_response_goes_through_the_callbacks_and_the_global_budget() -> None:
    seen: list[dict[str, Any]] = []
    spendgate.success_callback = [lambda kwargs, *_: seen.append(kwargs)]
    metadata = {"tags": ["batch-7"], "user": "u-1"}
    response = spendgate.completion(
        model="anthropic/claude-sonnet-4-6",
        messages=MESSAGES,
        mock_response="Hello!",
        metadata=metadata,
        user="customer-9",
    )
    assert response.model == "claude-sonnet-4-6"
    assert response._hidden_params["custom_llm_provider"] == "anthropic"
    assert spendgate.cost_of(response) == _usage_cost("claude-sonnet-4-6", 9, 2, "anthropic")
    (kwargs,) = seen
    assert kwargs["litellm_params"]["metadata"] == metadata
    assert kwargs["standard_logging_object"]["request_tags"] == ["batch-7"]
    assert kwargs["standard_logging_object"]["end_user"] == "customer-9"
    assert kwargs["custom_llm_provider"] == "anthropic"
    assert spendgate.current_cost == spendgate.cost_of(response)

    spendgate.max_budget = 0.000001  # LiteLLM's max_budget: the next call cannot fit
    with pytest.raises(spendgate.BudgetExceededError):
        spendgate.completion(model="gpt-4o", messages=MESSAGES, mock_response="x")
    assert len(seen) == 1  # refused before it was sent


def test_mock_stream_and_embedding() -> None:
    stream = spendgate.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="a b c", stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "a b c"
    assert all(c.usage is None for c in chunks)  # the caller did not ask for usage
    assert spendgate.cost_of(stream) == _usage_cost("gpt-4o-mini", 9, 2)
    assert stream._hidden_params["response_cost"] == float(spendgate.cost_of(stream))

    vectors = spendgate.embedding(
        model="text-embedding-3-small", input=["hello world", "bye"], mock_response=[0.5, 0.25]
    )
    assert isinstance(vectors, CreateEmbeddingResponse)
    assert [d.embedding for d in vectors.data] == [[0.5, 0.25], [0.5, 0.25]]
    assert vectors.usage.prompt_tokens == 3 + 1
    cost = spendgate.completion_cost(model="text-embedding-3-small", usage=Usage(input_tokens=4))
    assert spendgate.cost_of(vectors) == cost > 0


# -- against the mock provider ------------------------------------------------------------------


def test_openai_compatible_models_with_api_base(mock: MockServer) -> None:
    before = len(mock.requests())
    response = spendgate.completion(
        model="openai/gpt-4o-mini", messages=MESSAGES, api_base=mock.url, api_key="sk-test", max_tokens=7
    )
    assert isinstance(response, ChatCompletion) and response.usage is not None
    usage = response.usage
    assert usage.completion_tokens == 7
    assert spendgate.cost_of(response) == _usage_cost("gpt-4o-mini", usage.prompt_tokens, 7)

    groq = spendgate.completion(
        model="groq/llama-3.1-8b-instant", messages=MESSAGES, api_base=mock.url, api_key="gk", max_tokens=4
    )
    assert groq.usage is not None
    expected = _usage_cost("llama-3.1-8b-instant", groq.usage.prompt_tokens, 4, "groq")
    assert spendgate.cost_of(groq) == expected > 0
    assert groq._hidden_params["custom_llm_provider"] == "groq"

    sent = mock.requests()[before:]
    assert [r["model"] for r in sent] == ["gpt-4o-mini", "llama-3.1-8b-instant"]
    assert [r["api_key"] for r in sent] == ["sk-test", "gk"]


def test_keys_and_base_from_the_environment(mock: MockServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_API_BASE", mock.url)
    response = spendgate.completion(model="gpt-4o-mini", messages=MESSAGES, max_tokens=2)
    assert response.usage.completion_tokens == 2
    assert mock.requests()[-1]["api_key"] == "sk-from-env"

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        spendgate.completion(model="anthropic/claude-sonnet-4-6", messages=MESSAGES)
    with pytest.raises(ConfigurationError, match="api_base"):
        spendgate.completion(model="hosted_vllm/my-model", messages=MESSAGES)


def test_anthropic_is_translated_and_costs_what_the_anthropic_client_pays(mock: MockServer) -> None:
    response = spendgate.completion(
        model="anthropic/claude-sonnet-4-6",
        messages=[{"role": "system", "content": "Be brief."}, *MESSAGES],
        api_base=mock.base_url,
        api_key="sk-ant",
        max_tokens=6,
    )
    assert isinstance(response, ChatCompletion)  # OpenAI-shaped, as LiteLLM returns it
    assert response.choices[0].message.role == "assistant" and response.choices[0].message.content
    sent = mock.requests()[-1]
    assert sent["path"].endswith("/v1/messages") and sent["api_key"] == "sk-ant"
    assert response.usage is not None and response.usage.completion_tokens == 6

    with spendgate.anthropic.Anthropic(base_url=mock.base_url, api_key="sk-ant", max_retries=0) as client:
        native = client.messages.create(
            model="claude-sonnet-4-6",
            system="Be brief.",
            messages=MESSAGES,
            max_tokens=6,
        )
    assert native.usage.input_tokens == response.usage.prompt_tokens
    assert spendgate.cost_of(response) == spendgate.cost_of(native) > 0
    assert response._hidden_params["response_cost"] == float(spendgate.cost_of(native))  # type: ignore[attr-defined]
    assert spendgate.cost_of(response) == _usage_cost(
        "claude-sonnet-4-6", response.usage.prompt_tokens, 6, "anthropic"
    )


def test_a_completion_result_prices_again_to_its_own_cost(mock: MockServer, tmp_path: Any) -> None:
    """LiteLLM's flow prices a completion() result again (``completion_cost``, a
    BudgetManager's ``update_cost``): the same cost as the call's, for a model named by its
    provider only (groq) and for an Anthropic answer with cache reads and 5-minute and
    1-hour cache writes (carried by the translated usage)."""
    groq = spendgate.completion(
        model="groq/llama-3.1-8b-instant", messages=MESSAGES, api_base=mock.url, api_key="gk", max_tokens=4
    )
    cached = {
        "x-mock-cached-tokens": "5",
        "x-mock-cache-write-tokens": "7",
        "x-mock-cache-write-1h-tokens": "3",
    }
    long_prompt = [{"role": "user", "content": "exact money, please " * 10}]  # room for the cache counts
    claude = spendgate.completion(
        model="anthropic/claude-sonnet-4-6",
        messages=long_prompt,
        api_base=mock.base_url,
        api_key="sk-ant",
        max_tokens=6,
        extra_headers=cached,
    )
    usage = spendgate.breakdown_of(claude).usage
    assert usage.cache_read_tokens and usage.cache_write_tokens > usage.cache_write_1h_tokens > 0
    dumped = claude.model_dump()["usage"]
    assert dumped["cache_creation_input_tokens"] == usage.cache_write_tokens  # LiteLLM's names
    assert dumped["cache_read_input_tokens"] == usage.cache_read_tokens
    with spendgate.BudgetManager("p", path=tmp_path / "budgets.json") as manager:
        manager.create_budget(10, "u")
        for result in (groq, claude):
            exact = spendgate.cost_of(result)
            assert spendgate.completion_cost(completion_response=result) == exact > 0
            if result is claude:  # its dict too (a dict of groq's names no provider)
                assert spendgate.completion_cost(completion_response=result.model_dump()) == exact
            before = manager.get_current_cost_nanos("u")
            manager.update_cost("u", completion_obj=result)
            assert manager.get_current_cost_nanos("u") - before == spendgate.breakdown_of(result).total_nanos


def test_streams_openai_and_anthropic(mock: MockServer) -> None:
    stream = spendgate.completion(
        model="openai/gpt-4o-mini",
        messages=MESSAGES,
        api_base=mock.url,
        api_key="sk",
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 5
    assert spendgate.cost_of(stream) == _usage_cost("gpt-4o-mini", usage.prompt_tokens, 5)

    translated = spendgate.completion(
        model="anthropic/claude-sonnet-4-6",
        messages=MESSAGES,
        api_base=mock.base_url,
        api_key="sk",
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts = list(translated)
    assert all(p.object == "chat.completion.chunk" for p in parts)
    text = "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert len(text) == 4 * 5  # the mock's five four-character tokens
    final = parts[-1].usage
    assert final is not None and final.completion_tokens == 5
    expected = _usage_cost("claude-sonnet-4-6", final.prompt_tokens, 5, "anthropic")
    assert spendgate.cost_of(translated) == expected > 0
    assert translated._hidden_params["response_cost"] == float(expected)


def test_acompletion_and_aembedding(mock: MockServer) -> None:
    async def run() -> tuple[Any, ...]:
        chat = await spendgate.acompletion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_base=mock.url, api_key="sk", max_tokens=3
        )
        claude = await spendgate.acompletion(
            model="anthropic/claude-sonnet-4-6",
            messages=MESSAGES,
            api_base=mock.base_url,
            api_key="sk",
            max_tokens=3,
        )
        stream = await spendgate.acompletion(
            model="anthropic/claude-sonnet-4-6",
            messages=MESSAGES,
            api_base=mock.base_url,
            api_key="sk",
            max_tokens=2,
            stream=True,
        )
        parts = [p async for p in stream]
        vectors = await spendgate.aembedding(
            model="openai/text-embedding-3-small", input="hello world", api_base=mock.url, api_key="sk"
        )
        return chat, claude, stream, parts, vectors

    chat, claude, stream, parts, vectors = asyncio.run(run())
    assert spendgate.cost_of(chat) == _usage_cost("gpt-4o-mini", chat.usage.prompt_tokens, 3)
    assert isinstance(claude, ChatCompletion) and claude.usage is not None
    assert spendgate.cost_of(claude) == _usage_cost("claude-sonnet-4-6", claude.usage.prompt_tokens, 3)
    assert all(p.usage is None for p in parts)  # not asked for: withheld
    assert "".join(p.choices[0].delta.content or "" for p in parts if p.choices)
    assert spendgate.cost_of(stream) == _usage_cost("claude-sonnet-4-6", claude.usage.prompt_tokens, 2)
    cost = spendgate.completion_cost(
        model="text-embedding-3-small", usage=Usage(input_tokens=vectors.usage.prompt_tokens)
    )
    assert spendgate.cost_of(vectors) == cost > 0


def test_upstream_errors_reach_the_caller_and_the_failure_callback(mock: MockServer) -> None:
    failures: list[dict[str, Any]] = []
    spendgate.failure_callback = [lambda kwargs, *_: failures.append(kwargs)]
    with pytest.raises(openai.APIStatusError):
        spendgate.completion(
            model="openai/gpt-4o-mini",
            messages=MESSAGES,
            api_base=mock.url,
            api_key="sk",
            max_tokens=-1,  # the upstream refuses it (400)
        )
    assert failures and failures[0]["response_cost"] == 0.0
    with pytest.raises(anthropic.APIStatusError):
        spendgate.completion(
            model="anthropic/claude-sonnet-4-6", messages=[], api_base=mock.base_url, api_key="sk"
        )
    assert len(failures) == 2 and spendgate.current_cost == 0


def test_num_retries_retries_and_only_the_answer_is_billed(mock: MockServer) -> None:
    failures: list[dict[str, Any]] = []
    spendgate.failure_callback = [lambda kwargs, *_: failures.append(kwargs)]
    mock.queue_faults({"status": 500, "times": 1, "api_key": "sk-retry-0"})
    with pytest.raises(openai.InternalServerError):  # LiteLLM's default: no retries
        spendgate.completion(
            model="openai/gpt-4o-mini", messages=MESSAGES, api_base=mock.url, api_key="sk-retry-0"
        )
    mock.queue_faults({"status": 500, "times": 1, "api_key": "sk-retry-1"})
    response = spendgate.completion(
        model="openai/gpt-4o-mini",
        messages=MESSAGES,
        api_base=mock.url,
        api_key="sk-retry-1",
        max_tokens=2,
        num_retries=1,
    )
    assert response.usage.completion_tokens == 2
    assert [r["api_key"] for r in mock.requests()[-2:]] == ["sk-retry-1", "sk-retry-1"]
    assert len(failures) == 2  # each failed attempt called back with cost 0
    assert spendgate.current_cost == spendgate.cost_of(response)


def test_a_stream_closed_early_is_billed_cancelled(mock: MockServer) -> None:
    ended: list[dict[str, Any]] = []
    spendgate.callbacks = [lambda kwargs, *_: ended.append(kwargs)]
    with spendgate.completion(
        model="anthropic/claude-sonnet-4-6",
        messages=MESSAGES,
        api_base=mock.base_url,
        api_key="sk",
        max_tokens=50,
        stream=True,
        extra_headers={"x-mock-chunk-delay-ms": "20"},  # LiteLLM's extra_headers reach the upstream
    ) as stream:
        first = next(stream)
        assert first.object == "chat.completion.chunk"
    (kwargs,) = ended
    assert kwargs["standard_logging_object"]["spendgate_outcome"] == "cancelled"
    cost = spendgate.cost_of(stream)
    assert cost == Decimal(str(kwargs["response_cost"])) > 0
    assert stream._hidden_params["response_cost"] == float(cost)


def test_custom_llm_provider_names_the_provider_of_a_bare_model(mock: MockServer) -> None:
    response = spendgate.completion(
        model="llama-3.1-8b-instant",
        custom_llm_provider="groq",
        messages=MESSAGES,
        api_base=mock.url,
        api_key="gk",
        max_tokens=2,
    )
    assert response._hidden_params["custom_llm_provider"] == "groq"
    assert mock.requests()[-1]["model"] == "llama-3.1-8b-instant"
    assert spendgate.cost_of(response) == _usage_cost(
        "llama-3.1-8b-instant", response.usage.prompt_tokens, 2, "groq"
    )
