"""One call seen by a metered transport: what it is, what it may cost, what it cost.

Sync and async transports share this; it does no I/O. For a request to an endpoint the
gateway prices, :meth:`MeteredCall.open` builds the gateway's own
:class:`~spendgate.providers.base.ClientCall` and provider
:class:`~spendgate.providers.base.Exchange` on a :class:`~spendgate.providers.base.Target`
describing the upstream, so usage is read, streams are translated and calls are priced by
the same code as in the gateway (:mod:`spendgate.providers.metering` holds the shared
billing rules), to the nano-USD:

* priced as the gateway prices a deployment: the model sent upstream, the provider
  (``openai`` for an OpenAI client unless the instrumentation names another,
  ``anthropic`` for ``/v1/messages``), the service tier :func:`billed_tier` picks;
* a stream of chat or completions asks the upstream for usage
  (``stream_options.include_usage``), and the usage chunk is withheld from a caller that
  did not ask for it;
* an error status or a transport error bills nothing (cost 0, the failure callbacks run);
  a stream cut short is billed for what was produced (estimated when the usage never
  came), a stream the caller closed early is billed as ``cancelled``, an async call
  cancelled while upstream is billed its prompt estimate (as the gateway bills them).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
import orjson

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.pricing.catalogue import PriceBook, canonical_provider
from spendgate.core.usage.model import Usage
from spendgate.core.usage.tier import requested_service_tier
from spendgate.costs import default_price_book, price
from spendgate.enforcement.estimate import declared_choices, declared_max_output, target_worst_case
from spendgate.errors import UpstreamStatusError
from spendgate.providers.anthropic import AnthropicExchange
from spendgate.providers.base import ClientCall, Exchange, StreamTranslator, Target, estimate_prompt_tokens
from spendgate.providers.metering import billed_tier, response_text, stream_usage
from spendgate.providers.multipart import form_fields
from spendgate.providers.openai_compat import OpenAIExchange
from spendgate.sdk import callbacks
from spendgate.sdk.budget import BUDGET, Hold
from spendgate.sdk.callbacks import CallRecord
from spendgate.sdk.httpx_compat import module_of

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "METADATA_HEADER",
    "InstrumentOptions",
    "MeteredCall",
    "PricedModel",
    "endpoint_of",
    "status_error",
]

log = logging.getLogger("spendgate.sdk")

DEFAULT_MAX_OUTPUT = 4096
"""Output tokens a call's worst case assumes when it declares no cap and the catalogue
knows no maximum for its model."""

METADATA_HEADER = "x-spendgate-metadata"
"""A request header (a JSON object) with this call's metadata for the callbacks; removed
before the request is sent, as is every ``x-spendgate-*`` header."""

# Path endings of the endpoints the gateway prices (any base URL), the most specific first.
_ENDPOINTS = (
    ("/chat/completions", "chat"),
    ("/v1/messages", "messages"),
    ("/completions", "completions"),
    ("/embeddings", "embeddings"),
    ("/responses", "responses"),
    ("/images/generations", "images"),
    ("/audio/transcriptions", "transcriptions"),
    ("/audio/speech", "speech"),
)
_TOKEN_ENDPOINTS = frozenset({"chat", "completions", "responses", "messages"})
_STREAM_USAGE_ENDPOINTS = frozenset({"chat", "completions"})


def endpoint_of(request: httpx.Request) -> str | None:
    """The priced endpoint a request calls (``chat``, ``messages`` …), or None."""
    if request.method != "POST":
        return None
    path = request.url.path.rstrip("/")
    for suffix, endpoint in _ENDPOINTS:
        if path.endswith(suffix):
            return endpoint
    return None


@dataclass(frozen=True, slots=True)
class InstrumentOptions:
    """What an instrumented client adds to each call."""

    provider: str | None = None
    """The provider its OpenAI-style calls are priced as (default ``openai``): ``groq``,
    ``together_ai``, ``azure`` … as the gateway names them."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Metadata for every call's callbacks (``tags`` in it become ``request_tags``)."""


@dataclass(frozen=True, slots=True)
class PricedModel:
    """Where a call is billed: the model and provider it is priced as, on the process's
    price book; prices as the gateway's ``Deployment.price`` does (an
    :class:`~spendgate.enforcement.estimate.PricedTarget`)."""

    price_model: str
    price_provider: str

    @property
    def book(self) -> PriceBook:
        return default_price_book()

    def price(
        self,
        usage: Usage,
        at: datetime | None = None,
        *,
        served_tier: str | None = None,
        requested_tier: str | None = None,
    ) -> CostBreakdown:
        return price(
            self.price_model,
            usage,
            provider=self.price_provider,
            service_tier=billed_tier(served_tier, requested_tier),
            at=at,
            book=self.book,
        )


def _load(request: httpx.Request, endpoint: str) -> dict[str, Any] | None:
    content_type = request.headers.get("content-type", "")
    if endpoint == "transcriptions":
        fields = form_fields(request.content, content_type)
        return None if fields is None else dict(fields)
    try:
        payload = orjson.loads(request.content)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def _metadata(request: httpx.Request, options: InstrumentOptions) -> dict[str, Any]:
    metadata = dict(options.metadata)
    raw = request.headers.get(METADATA_HEADER)
    if raw:
        try:
            extra = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("%s is not a JSON object; ignored", METADATA_HEADER)
        else:
            if isinstance(extra, dict):
                metadata.update(extra)
    return metadata


class MeteredCall:
    """One priced call, from admission to its last callback."""

    def __init__(
        self,
        request: httpx.Request,
        endpoint: str,
        payload: dict[str, Any],
        options: InstrumentOptions,
        *,
        async_call: bool,
    ) -> None:
        model: str = payload["model"]
        stream_options = payload.get("stream_options")
        self.client = ClientCall(
            endpoint=endpoint,
            model=model,
            payload=payload,
            raw=request.content,
            content_type=request.headers.get("content-type", "application/json"),
            stream=payload.get("stream") is True,
            include_usage=isinstance(stream_options, dict) and bool(stream_options.get("include_usage")),
        )
        path = request.url.path.rstrip("/")
        suffix = next(s for s, e in _ENDPOINTS if e == endpoint)
        api_base = str(request.url.copy_with(path=path.removesuffix(suffix) or "/", query=None))
        if endpoint == "messages":
            target = Target("anthropic", "anthropic", model, api_base)
            self.exchange: Exchange = AnthropicExchange(self.client, target)
        else:
            provider = canonical_provider(options.provider or "openai")
            kind = "azure" if provider == "azure" else "openai"
            target = Target(kind, provider, model, api_base)
            self.exchange = OpenAIExchange(self.client, target)
        self.target = target
        self.model = PricedModel(model, target.provider)
        self.tier = requested_service_tier(payload)
        self.started_at = datetime.now(UTC)
        metadata = _metadata(request, options)
        tags = metadata.get("tags")
        self.record = CallRecord(
            call_id=str(uuid.uuid4()),
            call_type=endpoint,
            model=model,
            provider=target.provider,
            api_base=api_base,
            payload=payload,
            stream=self.client.stream,
            async_call=async_call,
            start_time=self.started_at,
            metadata=metadata,
            end_user=_end_user(payload, metadata),
            tags=[str(t) for t in tags] if isinstance(tags, list) else [],
        )
        self.hold: Hold | None = None

    @classmethod
    def open(
        cls, request: httpx.Request, options: InstrumentOptions, *, async_call: bool
    ) -> MeteredCall | None:
        """The metered call for a request whose body has been read; None when it is not a
        call the gateway prices (another endpoint, a body without a model)."""
        endpoint = endpoint_of(request)
        if endpoint is None:
            return None
        payload = _load(request, endpoint)
        if payload is None or not isinstance(payload.get("model"), str) or not payload["model"]:
            return None
        return cls(request, endpoint, payload, options, async_call=async_call)

    # -- before sending -------------------------------------------------------------------------

    def admit(self) -> None:
        """Reserve the call's worst case against the global budget, then run the
        ``log_pre_api_call`` hooks.

        Raises:
            BudgetExceededError: the budget has no room for it (nothing was sent).
        """
        worst, unbounded = self.worst_case() if BUDGET.needs_estimate else (0, None)
        self.hold = BUDGET.reserve(worst, unbounded_output=unbounded)
        callbacks.notify_start(self.record)

    def worst_case(self) -> tuple[int, int | None]:
        """``(nano-USD, output tokens assumed when the call declares no cap, else None)``:
        the prompt estimate at the input rate plus the most output the call may produce
        (declared, else the model's catalogue maximum, else :data:`DEFAULT_MAX_OUTPUT`) at
        the output rate, at the tier the request asks for."""
        payload = self.client.payload
        endpoint = self.client.endpoint
        prompt = estimate_prompt_tokens(payload, endpoint)
        tier = billed_tier(None, self.tier)
        if endpoint not in _TOKEN_ENDPOINTS:
            estimate = self.model.price(self.exchange.estimate(), requested_tier=self.tier)
            worst = target_worst_case(self.model, prompt, 0, service_tier=tier)
            return max(worst, estimate.total_nanos if estimate.priced else 0), None
        declared = declared_max_output(payload)
        unbounded = None
        if declared is None:
            entry = self.model.book.find(self.model.price_model, self.model.price_provider)
            declared = entry.max_output_tokens if entry is not None and entry.max_output_tokens else None
            unbounded = declared = declared or DEFAULT_MAX_OUTPUT
        output = max(0, declared) * declared_choices(payload)
        return target_worst_case(self.model, prompt, output, service_tier=tier), unbounded

    def outgoing(self, request: httpx.Request) -> httpx.Request:
        """The request to send: ``x-spendgate-*`` headers removed; a chat or completions
        stream asks for usage (the body the gateway's adapter would send)."""
        ask_usage = (
            self.client.stream
            and self.client.endpoint in _STREAM_USAGE_ENDPOINTS
            and not self.client.include_usage
        )
        ours = [name for name in request.headers if name.lower().startswith("x-spendgate-")]
        if not ask_usage and not ours:
            return request
        headers = [
            (k, v)
            for k, v in request.headers.multi_items()
            if not k.lower().startswith("x-spendgate-") and (not ask_usage or k.lower() != "content-length")
        ]
        content = self.exchange.build_request().content if ask_usage else request.content
        rebuilt: httpx.Request = module_of(request).Request(
            request.method, request.url, headers=headers, content=content, extensions=request.extensions
        )
        return rebuilt

    # -- after ----------------------------------------------------------------------------------

    def finish(self, body: bytes, content_type: str, response: Any = None) -> CostBreakdown:
        """A complete answer: meter, price, settle, call back. Returns its price."""
        usage, _, _ = self.exchange.read_response(body, content_type)
        estimated = usage is None
        if usage is None:
            usage = self.exchange.estimate(response_text(body))
        breakdown = self.model.price(
            usage, at=self.started_at, served_tier=self.exchange.service_tier, requested_tier=self.tier
        )
        if response is None:
            try:
                response = orjson.loads(body)
            except orjson.JSONDecodeError:
                response = None
        self._end(usage, breakdown, "success", estimated=estimated, response=response)
        return breakdown

    def translator(self) -> StreamTranslator:
        """The gateway's stream translator for this call, pricing at its model."""
        pricer = partial(self.model.price, at=self.started_at, requested_tier=self.tier)
        return self.exchange.stream_translator(pricer)

    def finish_stream(
        self,
        translator: StreamTranslator,
        *,
        closed_early: bool,
        error: BaseException | None,
    ) -> CostBreakdown:
        """A stream that has ended, however it ended (as the gateway bills it)."""
        usage, final = stream_usage(translator, self.exchange, translator.finished)
        if closed_early and not translator.finished and error is None:
            outcome = "cancelled"
        elif error is not None or not translator.finished:
            outcome = "partial" if (translator.text or final) else "error"
        else:
            outcome = "success"
        breakdown = translator.breakdown if (final and translator.breakdown is not None) else None
        if breakdown is None:
            breakdown = self.model.price(
                usage, at=self.started_at, served_tier=translator.service_tier, requested_tier=self.tier
            )
        response = {
            "object": "stream",
            "model": self.client.model,
            "content": translator.text,
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.total_tokens,
            },
        }
        if error is None and outcome == "partial":
            error = httpx.RemoteProtocolError("the stream ended before the upstream finished it")
        self._end(usage, breakdown, outcome, estimated=not final, response=response, error=error)
        return breakdown

    def fail(self, error: BaseException, response: httpx.Response | None = None) -> None:
        """Nothing billed (an error status, a transport error): release, call back with cost 0."""
        if self.hold is not None:
            BUDGET.release(self.hold)
        record = self.record
        record.end_time = datetime.now(UTC)
        record.status, record.outcome = "failure", "error"
        record.exception = error
        if isinstance(error, UpstreamStatusError):
            try:
                record.response = orjson.loads(error.body)
            except orjson.JSONDecodeError:
                record.response = error.body.decode("utf-8", "replace")
        callbacks.notify_end(record)

    def cancelled(self, error: BaseException) -> CostBreakdown:
        """Cancelled while upstream: the provider may have billed the prompt, so it is
        billed here too (its estimate, ``cancelled``), as the gateway does."""
        usage = self.exchange.estimate()
        breakdown = self.model.price(usage, at=self.started_at)
        self._end(usage, breakdown, "cancelled", estimated=True, response=None, error=error)
        return breakdown

    def _end(
        self,
        usage: Usage,
        breakdown: CostBreakdown,
        outcome: str,
        *,
        estimated: bool,
        response: Any,
        error: BaseException | None = None,
    ) -> None:
        if self.hold is not None:
            BUDGET.settle(self.hold, breakdown.total_nanos if breakdown.priced else 0)
        record = self.record
        record.end_time = datetime.now(UTC)
        record.usage, record.breakdown, record.outcome, record.estimated = (
            usage,
            breakdown,
            outcome,
            estimated,
        )
        record.response, record.exception = response, error
        record.status = "success" if outcome in ("success", "cancelled") and error is None else "failure"
        callbacks.notify_end(record)


def status_error(status: int, body: bytes, headers: httpx.Headers) -> UpstreamStatusError:
    """The exception the failure callbacks get for an error status."""
    return UpstreamStatusError(status, body, {"retry-after": headers.get("retry-after", "")})


def _end_user(payload: Mapping[str, Any], metadata: Mapping[str, Any]) -> str | None:
    user = payload.get("user")
    if isinstance(user, str) and user:
        return user
    inner = payload.get("metadata")
    if isinstance(inner, dict) and isinstance(inner.get("user_id"), str):
        return str(inner["user_id"])
    end_user = metadata.get("end_user")
    return str(end_user) if end_user else None
