"""LiteLLM's entry points: ``spendgate.completion()``, ``acompletion()``, ``embedding()``,
``aembedding()`` (issue #14 item 2), for code migrating from ``litellm``.

A call is made by an instrumented official client (:mod:`spendgate.sdk.completion_clients`),
so it is priced, budgeted (``spendgate.max_budget``), called back and recorded by the same
metered transport as any instrumented call, to the nano-USD:

* ``openai/…``, a bare name, ``azure/…`` and any OpenAI-compatible server (``groq/…``,
  ``hosted_vllm/…`` with ``api_base`` …) go through ``spendgate.openai.OpenAI`` (or Azure);
  the result is the OpenAI SDK's ``ChatCompletion`` (a stream: its ``ChatCompletionChunk``
  objects);
* ``anthropic/…`` goes through ``spendgate.anthropic.Anthropic``; the OpenAI chat request is
  translated to a Messages request and the answer (or stream) back to an OpenAI chat
  completion (or chunks) by the gateway's :class:`~spendgate.providers.anthropic.AnthropicChatExchange`,
  as LiteLLM returns OpenAI-shaped responses for every provider;
* ``mock_response="text"`` answers in memory (:mod:`spendgate.sdk.completion_mock`), through
  the same metered path.

Every result carries its cost as LiteLLM's does: ``result._hidden_params["response_cost"]``
(float USD; None for a model without a price) and ``spendgate.cost_of(result)`` (exact
``Decimal``). A stream's cost is known once it has been read to the end (or closed).
``metadata`` (``tags``, ``user``, ``end_user`` …) goes to the callbacks and the ledger,
never upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from spendgate.providers.anthropic import AnthropicChatExchange
from spendgate.providers.base import ClientCall
from spendgate.sdk.completion_clients import Route, client_for, route
from spendgate.sdk.completion_results import (
    AsyncCompletionStream,
    CompletionStream,
    achat_chunks,
    breakdown_or_none,
    chat_chunks,
    set_hidden_params,
)
from spendgate.sdk.metering import METADATA_HEADER

__all__ = [
    "AsyncCompletionStream",
    "CompletionStream",
    "acompletion",
    "aembedding",
    "completion",
    "embedding",
]

_LITELLM_ONLY = frozenset({"caching", "drop_params", "litellm_logging_obj"})
"""LiteLLM-internal parameters, never sent upstream."""


def _options(
    metadata: Mapping[str, Any] | None, call: dict[str, Any], params: dict[str, Any]
) -> dict[str, Any]:
    """The SDK call options: ``call`` (``timeout``, ``extra_headers``), the metadata in
    spendgate's header (stripped before sending), every other LiteLLM parameter in the JSON
    body as given."""
    options: dict[str, Any] = {k: v for k, v in call.items() if k != "extra_headers"}
    headers = dict(call.get("extra_headers") or {})
    if metadata:
        headers[METADATA_HEADER] = orjson.dumps(dict(metadata)).decode()
    if headers:
        options["extra_headers"] = headers
    body = {k: v for k, v in params.items() if v is not None and k not in _LITELLM_ONLY}
    if body:
        options["extra_body"] = body
    return options


def _prepare(model: str, kwargs: dict[str, Any]) -> tuple[Route, Any, dict[str, Any], dict[str, Any]]:
    """(route, mock_response, the call's SDK options: ``timeout`` and ``extra_headers``
    (LiteLLM's ``extra_headers`` or ``headers``), the remaining body parameters);
    ``num_retries`` is left in ``kwargs`` for :func:`_open`."""
    api_base = kwargs.pop("api_base", None) or kwargs.pop("base_url", None)
    kwargs.pop("base_url", None)
    mock_response = kwargs.pop("mock_response", None)
    provider = kwargs.pop("custom_llm_provider", None)
    if provider and not model.startswith(f"{provider}/"):
        model = f"{provider}/{model}"  # LiteLLM's way to name the provider of a bare name
    call: dict[str, Any] = {}
    timeout = kwargs.pop("timeout", None)
    if timeout is not None:
        call["timeout"] = timeout
    headers = {**(kwargs.pop("headers", None) or {}), **(kwargs.pop("extra_headers", None) or {})}
    if headers:
        call["extra_headers"] = headers
    found = route(
        model,
        api_base=api_base,
        api_key=kwargs.pop("api_key", None),
        api_version=kwargs.pop("api_version", None),
        mock=mock_response is not None,
    )
    return found, mock_response, call, kwargs


def _open(found: Route, kwargs: dict[str, Any], *, is_async: bool, mock_response: Any) -> tuple[Any, Any]:
    """(the client for the call, what closes it when the call is over: nothing for a kept
    client). LiteLLM's ``num_retries`` becomes the SDK's ``max_retries`` for this call."""
    retries = kwargs.pop("num_retries", None)
    client, owned = client_for(found, is_async=is_async, mock_response=mock_response)
    ended = client.close if owned else (_anothing if is_async else _nothing)
    if retries:
        client = client.with_options(max_retries=int(retries))
    return client, ended


# -- chat ---------------------------------------------------------------------------------------


def _chat_params(
    messages: Any, stream: bool, max_tokens: int | None, user: str | None, extra: dict[str, Any]
) -> dict[str, Any]:
    params = dict(extra)
    params["max_tokens"] = max_tokens
    params["user"] = user
    params["messages"] = list(messages or [])
    if stream:
        params["stream"] = True
    return params


def _body_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k not in ("messages", "stream")}


def _anthropic_body(found: Route, chat: dict[str, Any]) -> tuple[AnthropicChatExchange, dict[str, Any]]:
    call = ClientCall(
        endpoint="chat",
        model=found.target.model,
        payload=chat,
        stream=chat.get("stream") is True,
        include_usage=isinstance(chat.get("stream_options"), dict)
        and bool(chat["stream_options"].get("include_usage")),
    )
    exchange = AnthropicChatExchange(call, found.target)
    return exchange, exchange._body()


def _anthropic_args(body: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic SDK's ``messages.create`` arguments for a translated body."""
    args: dict[str, Any] = {k: body[k] for k in ("model", "max_tokens", "messages") if k in body}
    rest = {k: v for k, v in body.items() if k not in args and k != "stream"}
    if rest:
        args["extra_body"] = rest
    for key in ("extra_headers", "timeout"):
        if key in options:
            args[key] = options[key]
    return args


def _chat_from_anthropic(exchange: AnthropicChatExchange, raw: Any) -> ChatCompletion:
    http_response = raw.http_response
    _, body, _ = exchange.read_response(http_response.content, "application/json")
    result = ChatCompletion.model_validate(orjson.loads(body))
    request_id = http_response.headers.get("request-id")
    object.__setattr__(result, "_request_id", request_id)
    return result


def completion(
    model: str,
    messages: Any = None,
    *,
    stream: bool = False,
    max_tokens: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    user: str | None = None,
    **kwargs: Any,
) -> Any:
    """LiteLLM's ``completion()``: one chat call, priced, budgeted and called back.

    Args:
        model: ``provider/name`` as LiteLLM spells it (``openai/gpt-4o``,
            ``anthropic/claude-sonnet-4-6``, ``groq/llama-3.1-8b-instant``,
            ``hosted_vllm/<name>`` with ``api_base`` …); a bare name is OpenAI's
            (``claude-…``: Anthropic's).
        messages: OpenAI chat messages.
        stream: return a :class:`CompletionStream` of ``ChatCompletionChunk``.
        max_tokens: the output cap (it also bounds the call's worst case for the budget).
        metadata: for the callbacks (``litellm_params["metadata"]``) and the ledger
            (``tags``, ``user``, ``end_user``); not sent upstream.
        user: the end user, sent upstream as OpenAI's ``user``.
        **kwargs: ``api_base`` (or ``base_url``), ``api_key``, ``api_version``,
            ``mock_response`` (answer in memory, no network), ``timeout``, ``extra_headers``
            (or ``headers``), ``num_retries``
            (the SDK client's retries; default none, as LiteLLM's), and any other
            chat parameter (``temperature``, ``tools``, ``stream_options`` …), sent as given.

    Returns:
        An OpenAI ``ChatCompletion`` (for every provider), or a :class:`CompletionStream`.

    Raises:
        BudgetExceededError: ``spendgate.max_budget`` has no room for the call (not sent).
        ConfigurationError: an unknown provider, or no key for a provider that needs one.
        openai.APIError / anthropic.APIError: the upstream refused or failed.
    """
    found, mock_response, call, extra = _prepare(model, kwargs)
    client, ended = _open(found, extra, is_async=False, mock_response=mock_response)
    params = _chat_params(messages, stream, max_tokens, user, extra)
    try:
        if found.target.kind == "anthropic" and not found.mock:
            return _anthropic_completion(client, found, params, _options(metadata, call, {}), ended)
        options = _options(metadata, call, _body_params(params))
        if stream:
            sdk_stream = client.chat.completions.create(
                model=found.target.model, messages=params["messages"], stream=True, **options
            )
            return CompletionStream(
                iter(sdk_stream), sdk_stream.response, _both(sdk_stream.close, ended), found
            )
        result = client.chat.completions.create(
            model=found.target.model, messages=params["messages"], **options
        )
    except BaseException:
        ended()
        raise
    ended()
    set_hidden_params(result, found, breakdown_or_none(result))
    return result


def _nothing() -> None:
    """A client kept for reuse is not closed after a call."""


async def _anothing() -> None:
    """A client kept for reuse is not closed after a call."""


def _both(first: Callable[[], None], then: Callable[[], None]) -> Callable[[], None]:
    def close() -> None:
        try:
            first()
        finally:
            then()

    return close


def _aboth(
    first: Callable[[], Awaitable[None]], then: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        try:
            await first()
        finally:
            await then()

    return close


def _anthropic_completion(
    client: Any, found: Route, params: dict[str, Any], options: dict[str, Any], ended: Callable[[], None]
) -> Any:
    """An OpenAI chat call served by Anthropic: translated there and back (``ended``:
    closes the client when the call is over; for a stream, when it is closed)."""
    exchange, body = _anthropic_body(found, params)
    args = _anthropic_args(body, options)
    if params.get("stream") is True:
        manager = client.messages.with_streaming_response.create(stream=True, **args)
        raw = manager.__enter__()
        chunks = chat_chunks(exchange, raw.iter_bytes())
        close = _both(lambda: manager.__exit__(None, None, None), ended)
        return CompletionStream(chunks, raw.http_response, close, found)
    raw = client.messages.with_raw_response.create(**args)
    ended()
    result = _chat_from_anthropic(exchange, raw)
    set_hidden_params(result, found, breakdown_or_none(raw.http_response))
    return result


async def acompletion(
    model: str,
    messages: Any = None,
    *,
    stream: bool = False,
    max_tokens: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    user: str | None = None,
    **kwargs: Any,
) -> Any:
    """LiteLLM's ``acompletion()``: :func:`completion` with an async client (a stream is an
    :class:`AsyncCompletionStream`). Same arguments, results and errors."""
    found, mock_response, call, extra = _prepare(model, kwargs)
    client, ended = _open(found, extra, is_async=True, mock_response=mock_response)
    params = _chat_params(messages, stream, max_tokens, user, extra)
    try:
        if found.target.kind == "anthropic" and not found.mock:
            options = _options(metadata, call, {})
            return await _anthropic_acompletion(client, found, params, options, ended)
        options = _options(metadata, call, _body_params(params))
        if stream:
            sdk_stream = await client.chat.completions.create(
                model=found.target.model, messages=params["messages"], stream=True, **options
            )
            close = _aboth(sdk_stream.close, ended)
            return AsyncCompletionStream(sdk_stream.__aiter__(), sdk_stream.response, close, found)
        result = await client.chat.completions.create(
            model=found.target.model, messages=params["messages"], **options
        )
    except BaseException:
        await ended()
        raise
    await ended()
    set_hidden_params(result, found, breakdown_or_none(result))
    return result


async def _anthropic_acompletion(
    client: Any,
    found: Route,
    params: dict[str, Any],
    options: dict[str, Any],
    ended: Callable[[], Awaitable[None]],
) -> Any:
    exchange, body = _anthropic_body(found, params)
    args = _anthropic_args(body, options)
    if params.get("stream") is True:
        manager = client.messages.with_streaming_response.create(stream=True, **args)
        raw = await manager.__aenter__()

        async def exit_stream() -> None:
            await manager.__aexit__(None, None, None)

        chunks = achat_chunks(exchange, raw.iter_bytes())
        return AsyncCompletionStream(chunks, raw.http_response, _aboth(exit_stream, ended), found)
    raw = await client.messages.with_raw_response.create(**args)
    await ended()
    result = _chat_from_anthropic(exchange, raw)
    set_hidden_params(result, found, breakdown_or_none(raw.http_response))
    return result


# -- embeddings -----------------------------------------------------------------------------------


def embedding(
    model: str,
    input: Any,
    *,
    metadata: Mapping[str, Any] | None = None,
    user: str | None = None,
    **kwargs: Any,
) -> CreateEmbeddingResponse:
    """LiteLLM's ``embedding()``: one embeddings call, priced, budgeted and called back.

    Args:
        model: ``provider/name`` (``openai/text-embedding-3-small``, ``hosted_vllm/…`` …).
        input: a string or a list of strings (or token ids).
        metadata, user, **kwargs: as :func:`completion` (``mock_response``: the vector).

    Returns:
        The OpenAI SDK's ``CreateEmbeddingResponse``, with ``_hidden_params``.

    Raises:
        ConfigurationError: an Anthropic model (Anthropic has no embeddings API), an
            unknown provider, or no key.
    """
    found, mock_response, call, extra = _prepare(model, kwargs)
    _no_anthropic_embeddings(found)
    client, ended = _open(found, extra, is_async=False, mock_response=mock_response)
    options = _options(metadata, call, {**extra, "user": user})
    try:
        result = client.embeddings.create(model=found.target.model, input=input, **options)
    finally:
        ended()
    set_hidden_params(result, found, breakdown_or_none(result))
    return result  # type: ignore[no-any-return]


async def aembedding(
    model: str,
    input: Any,
    *,
    metadata: Mapping[str, Any] | None = None,
    user: str | None = None,
    **kwargs: Any,
) -> CreateEmbeddingResponse:
    """LiteLLM's ``aembedding()``: :func:`embedding` with an async client."""
    found, mock_response, call, extra = _prepare(model, kwargs)
    _no_anthropic_embeddings(found)
    client, ended = _open(found, extra, is_async=True, mock_response=mock_response)
    options = _options(metadata, call, {**extra, "user": user})
    try:
        result = await client.embeddings.create(model=found.target.model, input=input, **options)
    finally:
        await ended()
    set_hidden_params(result, found, breakdown_or_none(result))
    return result  # type: ignore[no-any-return]


def _no_anthropic_embeddings(found: Route) -> None:
    if found.target.kind == "anthropic" and not found.mock:
        from spendgate.errors import ConfigurationError

        raise ConfigurationError(f"embedding(): {found.target.provider} has no embeddings API")
