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
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, NamedTuple

import httpx
import orjson

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.pricing.catalogue import PriceBook, canonical_provider
from spendgate.core.usage.model import Usage
from spendgate.core.usage.tier import service_tier_name
from spendgate.costs import default_price_book, price
from spendgate.enforcement.estimate import declared_choices, declared_max_output, target_worst_case
from spendgate.errors import UpstreamStatusError
from spendgate.providers.anthropic import AnthropicExchange
from spendgate.providers.base import ClientCall, Exchange, StreamTranslator, Target, estimate_prompt_tokens
from spendgate.providers.metering import billed_tier, response_text, stream_usage
from spendgate.providers.multipart import form_fields
from spendgate.providers.openai_compat import OpenAIExchange
from spendgate.sdk import callbacks, sink
from spendgate.sdk.budget import BUDGET, Hold
from spendgate.sdk.callbacks import CallRecord
from spendgate.sdk.chat_stream import DeferredChatStream
from spendgate.sdk.httpx_compat import header_items, module_of

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
_SUFFIXES = {endpoint: suffix for suffix, endpoint in _ENDPOINTS}
_TOKEN_ENDPOINTS = frozenset({"chat", "completions", "responses", "messages"})
_STREAM_USAGE_ENDPOINTS = frozenset({"chat", "completions"})
_OURS = b"x-spendgate-"
_METADATA_KEY = METADATA_HEADER.encode()
_ASK_USAGE = b',"stream_options":{"include_usage":true}}'


def endpoint_of(request: httpx.Request) -> str | None:
    """The priced endpoint a request calls (``chat``, ``messages`` …), or None."""
    if request.method != "POST":
        return None
    return _url_facts(request.url)[0]


def _endpoint_of_path(path: str) -> str | None:
    path = path.rstrip("/")
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

    @property
    def worst_case_key(self) -> tuple[PricedModel, PriceBook]:
        """What its prices depend on (a :class:`~spendgate.enforcement.estimate.KeyedTarget`,
        so its worst cases are kept): the model, the provider and the process's book."""
        return self, default_price_book()

    def price(
        self,
        usage: Usage,
        at: datetime | None = None,
        *,
        served_tier: str | None = None,
        requested_tier: str | None = None,
    ) -> CostBreakdown:
        # The book is price()'s own default (:func:`default_price_book`); no tier named: standard.
        named = served_tier is not None or requested_tier is not None
        tier = billed_tier(served_tier, requested_tier) if named else None
        return price(self.price_model, usage, provider=self.price_provider, service_tier=tier, at=at)


_URL_FACTS: dict[object, tuple[str | None, str | None]] = {}
_URL_FACTS_KEPT = 256
"""Request URLs whose endpoint and ``api_base`` are known (a client calls a few URLs, each
many times)."""


def _url_facts(url: httpx.URL) -> tuple[str | None, str | None]:
    """``(endpoint, api_base)`` of a request URL: the priced endpoint its path ends with
    (None: not one), and the base URL of the call (the URL without the endpoint's path and
    the query), as the ``api_base`` the callbacks and the gateway's adapters see.

    Both are kept per URL: decoding the path, and re-parsing the URL for its base, cost more
    than the rest of a call's set-up. The key is the URL's parsed components as httpx and
    httpx2 keep them (``_uri_reference``, a tuple: no text built per call), else its text."""
    key: object = getattr(url, "_uri_reference", None)
    if not isinstance(key, tuple):
        key = str(url)
    found = _URL_FACTS.get(key)
    if found is None:
        path = url.path
        endpoint = _endpoint_of_path(path)
        api_base = None
        if endpoint is not None:
            base_path = path.rstrip("/").removesuffix(_SUFFIXES[endpoint]) or "/"
            api_base = str(url.copy_with(path=base_path, query=None))
        found = (endpoint, api_base)
        if len(_URL_FACTS) >= _URL_FACTS_KEPT:
            _URL_FACTS.clear()
        _URL_FACTS[key] = found
    return found


def _api_base(url: httpx.URL, endpoint: str) -> str:
    """The base URL of a call to ``endpoint`` (see :func:`_url_facts`)."""
    found, api_base = _url_facts(url)
    if found == endpoint and api_base is not None:
        return api_base
    path = url.path.rstrip("/")
    return str(url.copy_with(path=path.removesuffix(_SUFFIXES[endpoint]) or "/", query=None))


_WHERE: dict[tuple[bool, str, str, str | None], tuple[Target, PricedModel]] = {}
_WHERE_KEPT = 1024


def _where(anthropic: bool, model: str, api_base: str, provider: str | None) -> tuple[Target, PricedModel]:
    """Where a call goes and is priced: ``anthropic`` for ``/v1/messages``, else the
    instrumentation's provider (default ``openai``). Both are immutable, so they are kept
    per (model, base URL, provider) rather than built for every call."""
    key = (anthropic, model, api_base, provider)
    found = _WHERE.get(key)
    if found is None:
        if anthropic:
            target = Target("anthropic", "anthropic", model, api_base)
        else:
            name = canonical_provider(provider or "openai")
            target = Target("azure" if name == "azure" else "openai", name, model, api_base)
        found = (target, PricedModel(model, target.provider))
        if len(_WHERE) >= _WHERE_KEPT:
            _WHERE.clear()
        _WHERE[key] = found
    return found


class _SentHeaders(NamedTuple):
    """What the metered path reads from a request's headers, found in one pass over them
    (a tuple: built for every call, at half a frozen dataclass's cost)."""

    content_type: str | None
    metadata: str | None
    ours: bool
    """An ``x-spendgate-*`` header is present (removed before the request is sent)."""


def _sent_headers(headers: httpx.Headers) -> _SentHeaders:
    content_type: bytes | None = None
    content_types = 0
    ours = metadata = False
    for _, lower, value in header_items(headers):
        if lower == b"content-type":
            content_type = value
            content_types += 1
        elif lower.startswith(_OURS):
            ours = True
            metadata = metadata or lower == _METADATA_KEY
    if content_types > 1:  # several: joined as httpx joins them
        text = headers.get("content-type")
    elif content_type is None:
        text = None
    else:  # as httpx decodes it (ASCII reads the same in each encoding it may pick)
        text = content_type.decode("ascii" if content_type.isascii() else headers.encoding)
    return _SentHeaders(text, headers.get(METADATA_HEADER) if metadata else None, ours)


def _load(request: httpx.Request, endpoint: str, content_type: str) -> dict[str, Any] | None:
    if endpoint == "transcriptions":
        fields = form_fields(request.content, content_type)
        return None if fields is None else dict(fields)
    try:
        payload = orjson.loads(request.content)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def _metadata(raw: str | None, options: InstrumentOptions) -> dict[str, Any]:
    metadata = dict(options.metadata)
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

    __slots__ = (
        "_metadata",
        "_record",
        "api_base",
        "async_call",
        "client",
        "cost_nanos",
        "exchange",
        "hold",
        "model",
        "options",
        "sent",
        "started_at",
        "target",
        "tier",
    )

    def __init__(
        self,
        request: httpx.Request,
        endpoint: str,
        payload: dict[str, Any],
        options: InstrumentOptions,
        *,
        async_call: bool,
        headers: _SentHeaders | None = None,
    ) -> None:
        sent = headers if headers is not None else _sent_headers(request.headers)
        self.sent = sent
        model: str = payload["model"]
        stream_options = payload.get("stream_options")
        self.client = ClientCall(
            endpoint=endpoint,
            model=model,
            payload=payload,
            raw=request.content,
            content_type=sent.content_type if sent.content_type is not None else "application/json",
            stream=payload.get("stream") is True,
            include_usage=isinstance(stream_options, dict) and bool(stream_options.get("include_usage")),
        )
        api_base = _api_base(request.url, endpoint)
        anthropic = endpoint == "messages"
        target, self.model = _where(anthropic, model, api_base, options.provider)
        self.exchange: Exchange = (
            AnthropicExchange(self.client, target) if anthropic else OpenAIExchange(self.client, target)
        )
        self.target = target
        tier = payload.get("service_tier")  # requested_service_tier() of a dict, without its accessor
        self.tier = None if tier is None else service_tier_name(tier)
        self.started_at = datetime.now(UTC)
        self.api_base = api_base
        self.async_call = async_call
        self.options = options
        # A bad metadata header is reported when the call starts, whoever reads the record.
        self._metadata = _metadata(sent.metadata, options) if sent.metadata else None
        self._record: CallRecord | None = None
        self.hold: Hold | None = None
        self.cost_nanos = 0
        """What the call was billed, once it has ended (nano-USD; 0 when unpriced)."""

    @property
    def record(self) -> CallRecord:
        """The call's record for the callbacks and the ledger, built when first read: a
        process with neither never builds one (its metadata copy, tags, end user)."""
        record = self._record
        if record is None:
            metadata = self._metadata if self._metadata is not None else dict(self.options.metadata)
            payload = self.client.payload
            tags = metadata.get("tags")
            record = self._record = CallRecord(
                call_type=self.client.endpoint,
                model=self.client.model,
                provider=self.target.provider,
                api_base=self.api_base,
                payload=payload,
                stream=self.client.stream,
                async_call=self.async_call,
                start_time=self.started_at,
                metadata=metadata,
                end_user=_end_user(payload, metadata),
                tags=[str(t) for t in tags] if isinstance(tags, list) else [],
            )
        return record

    def _read(self, *, success: bool) -> bool:
        """Whether anything reads the call's record when it ends so (a ledger, a callback,
        or whoever it was handed to when it started)."""
        return self._record is not None or sink.recording() or callbacks.listening(success=success)

    @classmethod
    def open(
        cls,
        request: httpx.Request,
        options: InstrumentOptions,
        *,
        async_call: bool,
        endpoint: str | None = None,
    ) -> MeteredCall | None:
        """The metered call for a request whose body has been read; None when it is not a
        call the gateway prices (another endpoint, a body without a model).

        Args:
            endpoint: the request's :func:`endpoint_of`, when the caller knows it already.
        """
        if endpoint is None:
            endpoint = endpoint_of(request)
            if endpoint is None:
                return None
        headers = _sent_headers(request.headers)
        payload = _load(request, endpoint, headers.content_type or "")
        if payload is None or not isinstance(payload.get("model"), str) or not payload["model"]:
            return None
        return cls(request, endpoint, payload, options, async_call=async_call, headers=headers)

    # -- before sending -------------------------------------------------------------------------

    def admit(self) -> None:
        """Reserve the call's worst case against the global budget, then run the
        ``log_pre_api_call`` hooks.

        Raises:
            BudgetExceededError: the budget has no room for it (nothing was sent).
        """
        endpoint = self.client.endpoint  # (a refusal of an Anthropic call is also an AnthropicError)
        if BUDGET.needs_estimate:
            worst, unbounded, catalogued = self.worst_case()
            self.hold = BUDGET.reserve(
                worst, unbounded_output=unbounded, catalogued_output=catalogued, endpoint=endpoint
            )
        else:  # no limit, or check_only: a call is refused only when the spend is at the limit
            self.hold = BUDGET.reserve(0, endpoint=endpoint)
        if callbacks.listening_any():
            callbacks.notify_start(self.record)

    def worst_case(self) -> tuple[int, int | None, bool]:
        """``(nano-USD, output tokens assumed when the call declares no cap else None,
        whether those are the model's catalogue maximum)``: the prompt estimate at the input
        rate plus the most output the call may produce (declared, else the model's
        catalogue maximum, else :data:`DEFAULT_MAX_OUTPUT`) at the output rate, at the tier
        the request asks for."""
        payload = self.client.payload
        endpoint = self.client.endpoint
        prompt = estimate_prompt_tokens(payload, endpoint)
        tier = billed_tier(None, self.tier)
        if endpoint not in _TOKEN_ENDPOINTS:
            estimate = self.model.price(self.exchange.estimate(), requested_tier=self.tier)
            worst = target_worst_case(self.model, prompt, 0, service_tier=tier)
            return max(worst, estimate.total_nanos if estimate.priced else 0), None, False
        declared = declared_max_output(payload)
        unbounded = None
        catalogued = False
        if declared is None:
            entry = self.model.book.find(self.model.price_model, self.model.price_provider)
            declared = entry.max_output_tokens if entry is not None and entry.max_output_tokens else None
            catalogued = declared is not None
            unbounded = declared = declared or DEFAULT_MAX_OUTPUT
        output = max(0, declared) * declared_choices(payload)
        return target_worst_case(self.model, prompt, output, service_tier=tier), unbounded, catalogued

    def outgoing(self, request: httpx.Request) -> httpx.Request:
        """The request to send: ``x-spendgate-*`` headers removed; a chat or completions
        stream asks for usage (``stream_options.include_usage``, as the gateway's adapter
        asks). The caller's request is left as it was (the SDK keeps it on the response)."""
        ask_usage = (
            self.client.stream
            and self.client.endpoint in _STREAM_USAGE_ENDPOINTS
            and not self.client.include_usage
        )
        if not ask_usage and not self.sent.ours:
            return request
        content = self._usage_body() if ask_usage else request.content
        headers = request.headers
        names = {lower for _, lower, _ in header_items(headers)}  # (a lookup by name decodes them all)
        if b"transfer-encoding" in names or b"content-length" not in names:
            return self._rebuilt(request, content, ask_usage=ask_usage)
        http = module_of(request)
        # The same URL, headers and extensions; only the body (and its length) may differ.
        rebuilt: httpx.Request = http.Request(
            request.method,
            request.url,
            headers=headers,
            stream=http.ByteStream(content),
            extensions=request.extensions,
        )
        if self.sent.ours:
            for name in [k for k in rebuilt.headers.keys() if k.startswith("x-spendgate-")]:
                del rebuilt.headers[name]
        if ask_usage:
            rebuilt.headers["Content-Length"] = str(len(content))
        rebuilt.read()
        return rebuilt

    def _rebuilt(self, request: httpx.Request, content: bytes, *, ask_usage: bool) -> httpx.Request:
        """:meth:`outgoing` for a request without a plain ``content-length`` (httpx sets the
        body's framing headers)."""
        headers = [
            (k, v)
            for k, v in request.headers.multi_items()
            if not k.lower().startswith("x-spendgate-") and (not ask_usage or k.lower() != "content-length")
        ]
        rebuilt: httpx.Request = module_of(request).Request(
            request.method, request.url, headers=headers, content=content, extensions=request.extensions
        )
        return rebuilt

    def _usage_body(self) -> bytes:
        """The body of a stream that asks for usage. Without ``stream_options`` in the body
        (the usual case), the body as sent with the field appended (the same JSON object the
        gateway's adapter sends, without serialising the payload again); else the adapter's."""
        if "stream_options" not in self.client.payload:
            raw = self.client.raw.rstrip()
            if raw.endswith(b"}"):
                return raw[:-1] + _ASK_USAGE
        return self.exchange.build_request().content

    # -- after ----------------------------------------------------------------------------------

    def finish(self, body: bytes, content_type: str) -> tuple[CostBreakdown, Any]:
        """A complete answer: meter, price, settle, call back. Returns its price, and the
        answer's JSON as the adapter parsed it when no callback was given it (else None):
        the SDK may read that parse (:mod:`spendgate.sdk.answer_json`)."""
        exchange = self.exchange
        usage, _, _ = exchange.read_response(body, content_type)
        estimated = usage is None
        if usage is None:
            usage = exchange.estimate(response_text(body))
        breakdown = self.model.price(
            usage, at=self.started_at, served_tier=exchange.service_tier, requested_tier=self.tier
        )
        response = None
        if callbacks.listening(success=True):  # for the callbacks only
            response = exchange.answer  # as the adapter parsed it: not parsed twice
            if response is None:
                try:
                    response = orjson.loads(body)
                except orjson.JSONDecodeError:
                    response = None
        self._end(usage, breakdown, "success", estimated=estimated, response=response)
        return breakdown, (exchange.answer if response is None else None)

    def translator(self) -> StreamTranslator:
        """The gateway's stream translator for this call, pricing at its model."""
        pricer = partial(self.model.price, at=self.started_at, requested_tier=self.tier)
        exchange = self.exchange
        if self.client.endpoint in _STREAM_USAGE_ENDPOINTS and isinstance(exchange, OpenAIExchange):
            return DeferredChatStream(exchange.stream_translator, pricer)
        return exchange.stream_translator(pricer)

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
        if error is None and outcome == "partial":
            error = httpx.RemoteProtocolError("the stream ended before the upstream finished it")
        response = None
        if callbacks.listening(success=_status(outcome, error) == "success"):  # the text: for them only
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
        self._end(usage, breakdown, outcome, estimated=not final, response=response, error=error)
        return breakdown

    def fail(self, error: BaseException, response: httpx.Response | None = None) -> None:
        """Nothing billed (an error status, a transport error): release, call back with cost 0."""
        if self.hold is not None:
            BUDGET.release(self.hold)
        if not self._read(success=False):
            return
        record = self.record
        record.end_time = datetime.now(UTC)
        record.status, record.outcome = "failure", "error"
        record.exception = error
        if isinstance(error, UpstreamStatusError):
            try:
                record.response = orjson.loads(error.body)
            except orjson.JSONDecodeError:
                record.response = error.body.decode("utf-8", "replace")
        sink.record(record)
        callbacks.notify_end(record)

    def cancelled(self) -> CostBreakdown:
        """Cancelled while upstream: the provider may have billed the prompt, so it is
        billed here too (its estimate, ``cancelled``), as the gateway does.

        Every cancelled call (this one, a stream closed early) is billed, as the gateway
        bills and counts it (a billed call, never a failed one), so it runs the success
        callbacks, with the outcome ``cancelled``; the failure callbacks are for calls the
        upstream failed."""
        usage = self.exchange.estimate()
        breakdown = self.model.price(usage, at=self.started_at)
        self._end(usage, breakdown, "cancelled", estimated=True, response=None)
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
        self.cost_nanos = cost = breakdown.total_nanos if breakdown.priced else 0
        if self.hold is not None:
            BUDGET.settle(self.hold, cost)
        status = _status(outcome, error)
        if not self._read(success=status == "success"):
            return
        record = self.record
        record.end_time = datetime.now(UTC)
        record.usage, record.breakdown, record.outcome, record.estimated = (
            usage,
            breakdown,
            outcome,
            estimated,
        )
        record.response, record.exception = response, error
        record.status = status
        sink.record(record)
        callbacks.notify_end(record)


def _status(outcome: str, error: BaseException | None) -> str:
    """LiteLLM's status of a call that ended so (which callbacks it runs): ``success`` for
    an answer and for a cancelled call (billed, the upstream did not fail)."""
    return "success" if outcome in ("success", "cancelled") and error is None else "failure"


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
