"""What ``spendgate.completion()`` returns: results with LiteLLM's ``_hidden_params``, and
streams of OpenAI chat chunks (an Anthropic stream translated by the gateway's translator).

A result's cost is the metered transport's price of the call (:mod:`spendgate.sdk.results`),
copied to ``_hidden_params["response_cost"]`` (float USD, LiteLLM's place; None for a model
without a price) and ``_hidden_params["spendgate_cost"]`` (exact ``Decimal``). A stream's
is set when it ends (read to the end, or closed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from openai.types.chat import ChatCompletionChunk

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.providers.anthropic import AnthropicChatExchange
from spendgate.providers.base import SSESplitter, sse_data
from spendgate.sdk import results
from spendgate.sdk.amounts import plain_usd
from spendgate.sdk.completion_clients import Route
from spendgate.sdk.metering import PricedModel

__all__ = [
    "AsyncCompletionStream",
    "CompletionStream",
    "achat_chunks",
    "breakdown_or_none",
    "chat_chunks",
    "set_hidden_params",
]


def set_hidden_params(result: Any, found: Route, breakdown: CostBreakdown | None) -> None:
    """LiteLLM's ``_hidden_params`` on a result: its cost and where it was served."""
    priced = breakdown is not None and breakdown.priced
    params = {
        "response_cost": float(breakdown.total) if breakdown is not None and priced else None,
        "spendgate_cost": plain_usd(breakdown.total) if breakdown is not None and priced else None,
        "cost_breakdown": breakdown,
        "custom_llm_provider": found.target.provider,
        "api_base": found.target.api_base,
        "model_id": None,
    }
    object.__setattr__(result, "_hidden_params", params)


def breakdown_or_none(result: Any) -> CostBreakdown | None:
    try:
        return results.breakdown_of(result)
    except LookupError:
        return None


def chat_chunks(
    exchange: AnthropicChatExchange, raw_events: Iterator[bytes]
) -> Iterator[ChatCompletionChunk]:
    translator = exchange.stream_translator(_pricer(exchange))
    split = SSESplitter()
    for data in raw_events:
        for event in split.feed(translator.feed(data)):
            chunk = _chunk(event)
            if chunk is not None:
                yield chunk
    for event in split.feed(translator.close()) + split.close():
        chunk = _chunk(event)
        if chunk is not None:
            yield chunk


def _pricer(exchange: AnthropicChatExchange) -> Any:
    """The translator's pricer (for ``usage.cost`` in the usage chunk): the same price as
    the metered transport bills."""
    return PricedModel(exchange.target.model, exchange.target.provider).price


def _chunk(event: bytes) -> ChatCompletionChunk | None:
    data = sse_data(event)
    if data is None or data.strip() == b"[DONE]":
        return None
    parsed = orjson.loads(data)
    if not isinstance(parsed, dict) or parsed.get("object") != "chat.completion.chunk":
        return None
    return ChatCompletionChunk.model_validate(parsed)


class CompletionStream:
    """The chunks of ``completion(..., stream=True)``: iterate them (or use ``with``); its
    cost is on ``_hidden_params`` and ``spendgate.cost_of(stream)`` once it has ended."""

    def __init__(
        self, chunks: Iterator[ChatCompletionChunk], response: Any, close: Any, found: Route
    ) -> None:
        self._chunks = chunks
        self.response = response
        """The HTTP response it is read from (``spendgate.cost_of`` finds its cost there)."""
        self._close = close
        self._route = found
        self._hidden_params: dict[str, Any] = {
            "response_cost": None,
            "custom_llm_provider": found.target.provider,
        }

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        try:
            yield from self._chunks
        finally:
            self.close()

    def __next__(self) -> ChatCompletionChunk:
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        """Stop reading (the call is billed as ``cancelled`` if it had not ended)."""
        if self._close is not None:
            close, self._close = self._close, None
            close()
            set_hidden_params(self, self._route, breakdown_or_none(self))

    def __enter__(self) -> CompletionStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncCompletionStream:
    """The async twin of :class:`CompletionStream` (``async for chunk in stream``)."""

    def __init__(
        self, chunks: AsyncIterator[ChatCompletionChunk], response: Any, close: Any, found: Route
    ) -> None:
        self._chunks = chunks
        self.response = response
        self._close = close
        self._route = found
        self._hidden_params: dict[str, Any] = {
            "response_cost": None,
            "custom_llm_provider": found.target.provider,
        }

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ChatCompletionChunk]:
        try:
            async for chunk in self._chunks:
                yield chunk
        finally:
            await self.aclose()

    async def __anext__(self) -> ChatCompletionChunk:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop reading (the call is billed as ``cancelled`` if it had not ended)."""
        if self._close is not None:
            close, self._close = self._close, None
            await close()
            set_hidden_params(self, self._route, breakdown_or_none(self))

    async def __aenter__(self) -> AsyncCompletionStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def achat_chunks(
    exchange: AnthropicChatExchange, raw_events: AsyncIterator[bytes]
) -> AsyncIterator[ChatCompletionChunk]:
    translator = exchange.stream_translator(_pricer(exchange))
    split = SSESplitter()
    async for data in raw_events:
        for event in split.feed(translator.feed(data)):
            chunk = _chunk(event)
            if chunk is not None:
                yield chunk
    for event in split.feed(translator.close()) + split.close():
        chunk = _chunk(event)
        if chunk is not None:
            yield chunk
