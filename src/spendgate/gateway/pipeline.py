"""THE request path. Read :meth:`Pipeline.handle` top to bottom:

authenticate → read and parse → resolve scopes → admit → route and forward (retries,
fallbacks) → meter usage → price → settle → record → respond.

For a streamed call the last five steps run when the stream ends (however it ends), in
:meth:`Pipeline._finish_stream`; the answer itself is a
:class:`~spendgate.gateway.streaming.StreamRelay`.

Billing rules (DESIGN §1.8):

* One spend event per call, ``event_id`` = the request id, billed at the deployment that
  served it. Every attempt of the call shares ``operation_id`` = the request id.
* A failed attempt (error status, timeout, connection error) that produced no usage is
  recorded as an ``error`` event with zero cost and ``event_id`` ``<request id>.<n>``
  (n = attempt number), so retries are visible and nothing is billed twice.
* No usage in the answer (or a stream cut short): the usage is estimated (prompt from
  the request, output from the text produced) and the event is marked ``estimated``.
  A client that disconnects mid-stream is billed (``cancelled``); an upstream that fails
  mid-stream is billed for what it produced (``partial``). A call the server cancels
  while it is upstream (a graceful stop out of time) is billed its prompt estimate
  (``cancelled``, ``estimated``).
* A model without a price is recorded *unpriced* (cost 0, ``unpriced=True``), never as $0.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.tier import requested_service_tier
from spendgate.errors import UpstreamError, UpstreamStatusError
from spendgate.gateway.admission import ATTEMPT_HOLDS, Admission, AdmissionRequest, Scopes, Ticket
from spendgate.gateway.auth import Authenticator, Principal
from spendgate.gateway.bounds import MAX_TOKEN_ID, check_bounds, check_id
from spendgate.gateway.limits import END_USER_HEADER, trusted_peer
from spendgate.gateway.replies import BodyReply, header_map
from spendgate.gateway.routing import Deployment, Router
from spendgate.gateway.streaming import StreamOutcome, StreamRelay
from spendgate.http.errors import (
    InvalidField,
    MalformedRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.providers.anthropic import AnthropicChatExchange, AnthropicExchange
from spendgate.providers.base import ClientCall, Exchange, estimate_prompt_tokens, estimate_text_tokens
from spendgate.providers.http import UpstreamClient, UpstreamResponse
from spendgate.providers.multipart import form_fields
from spendgate.providers.openai_compat import OpenAIExchange
from spendgate.providers.transport import upstream_errors

__all__ = ["EventSink", "Pipeline", "usd_text"]

log = logging.getLogger("spendgate.gateway")

REQUEST_ID = "x-spendgate-request-id"
RESPONSE_COST = "x-spendgate-response-cost"
OVERHEAD_MS = "x-spendgate-overhead-ms"

# Client headers never forwarded upstream: credentials, hop-by-hop, and what httpx sets.
_NOT_FORWARDED = frozenset(
    {"x-api-key", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-real-ip", "x-request-id"}
)


class EventSink(Protocol):
    """What the pipeline records into (the ledger's ``Recorder`` has this shape)."""

    def record(self, event: SpendEvent) -> object: ...


@dataclass(slots=True)
class _Call:
    """Everything known about one request on its way through the pipeline."""

    request_id: str
    path: str
    started: float
    started_at: datetime
    state: dict[str, Any]
    principal: Principal
    client: ClientCall
    scopes: Scopes
    service_tier: str | None = None
    """The service tier the request asks for (normalized; None: the provider's default)."""
    ticket: Ticket | None = None


class Pipeline:
    """The gateway's request path (one instance per app)."""

    def __init__(
        self,
        *,
        router: Router,
        auth: Authenticator,
        admission: Admission,
        recorder: EventSink,
        client: UpstreamClient,
        max_body_bytes: int,
        forward_client_headers: bool = False,
        trust_end_user_field: bool = True,
        trusted_proxies: Sequence[str] = (),
    ) -> None:
        self.router = router
        self.auth = auth
        self.admission = admission
        self.recorder = recorder
        self.client = client
        self.max_body_bytes = max_body_bytes
        self.forward_client_headers = forward_client_headers
        self.trust_end_user_field = trust_end_user_field
        self.trusted_proxies = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies)

    # -- the request path ------------------------------------------------------------------

    async def handle(self, request: Request, endpoint: str) -> Response:
        state: dict[str, Any] = request.scope["state"]
        headers = header_map(request.scope["headers"])
        # 1. authenticate
        principal = await self.auth.authenticate(headers)
        # 2. read (size-limited, before parsing) and parse
        body = await read_body(request, self.max_body_bytes, headers.get("content-length"))
        client_call = parse_call(endpoint, body, headers.get("content-type", ""))
        group = self.router.group(client_call.model)
        if group is None:
            raise NotFound(
                f"model {client_call.model!r} does not exist on this gateway (GET /v1/models lists them)",
                param="model",
                code="model_not_found",
            )
        if not principal.may_use(client_call.model):
            raise PermissionDenied(f"this key may not use model {client_call.model!r}", param="model")
        client_call.forward_headers = self._forwarded(headers, endpoint)
        # 3. resolve scopes
        call = _Call(
            request_id=state["request_id"],
            path=request.scope["path"],
            started=state["started"],
            started_at=state["started_at"],
            state=state,
            principal=principal,
            client=client_call,
            scopes=self._scopes(principal, client_call, self._end_user_header(request, headers)),
            service_tier=requested_service_tier(client_call.payload),
        )
        # 4. admit (budgets and rate limits plug in here)
        call.ticket = await self.admission.admit(
            AdmissionRequest(
                request_id=call.request_id,
                endpoint=endpoint,
                principal=principal,
                scopes=call.scopes,
                payload=client_call.payload,
                estimated_input_tokens=estimate_prompt_tokens(client_call.payload),
                deployments=tuple(group),
            )
        )
        # 5. route and forward (retries and fallbacks, each attempt admitted at its deployment;
        #    failed attempts recorded)
        try:
            deployment, (exchange, upstream, upstream_body) = await self.router.run(
                client_call.model,
                partial(self._attempt, call),
                partial(self._record_failure, call),
                gate=self.admission.attempts(call.ticket),
                holds=call.ticket.data.setdefault(ATTEMPT_HOLDS, []),
            )
        except BaseException:
            await self.admission.release(call.ticket)
            raise
        if upstream_body is None:
            # 6-10 for a stream happen when it ends: StreamRelay calls _finish_stream.
            translator = exchange.stream_translator(
                partial(deployment.price, at=call.started_at, requested_tier=call.service_tier)
            )
            headers = {**call.ticket.headers, OVERHEAD_MS: _ms(self._overhead(call))}
            finish = partial(self._finish_stream, call, deployment, exchange, translator)
            return StreamRelay(upstream, translator, headers, finish, where=deployment.id)
        try:
            # 6. meter
            usage, content, content_type = exchange.read_response(
                upstream_body, upstream.headers.get("content-type", "")
            )
            estimated = usage is None
            if usage is None:
                usage = exchange.estimate(response_text(upstream_body))
            # 7. price (at the service tier the answer reports, else the one requested)
            breakdown = deployment.price(
                usage, at=call.started_at, served_tier=exchange.service_tier, requested_tier=call.service_tier
            )
        except BaseException:
            await self.admission.release(call.ticket)
            raise
        finally:
            deployment.in_flight -= 1
        # 8. settle
        nanos = _nanos(breakdown)
        await self.admission.settle(call.ticket, nanos, usage)
        # 9. record
        overhead = self._overhead(call)
        self._record(call, deployment, breakdown, EventStatus.SUCCESS, estimated=estimated, overhead=overhead)
        # 10. respond (the header's overhead includes recording)
        answer_headers = {
            **call.ticket.headers,
            RESPONSE_COST: usd_text(nanos) if breakdown.priced else "unpriced",
            OVERHEAD_MS: _ms(self._overhead(call)),
        }
        return BodyReply(content, upstream.status_code, answer_headers, content_type or None)

    # -- steps -------------------------------------------------------------------------------

    def _end_user_header(self, request: Request, headers: Mapping[str, str]) -> str | None:
        """``x-spendgate-end-user``, only from a peer in ``trusted_proxies`` (else ignored)."""
        value = headers.get(END_USER_HEADER)
        if not value or not self.trusted_proxies:
            return None
        peer = request.client.host if request.client is not None else None
        if not trusted_peer(peer, self.trusted_proxies):
            return None
        check_id(value, END_USER_HEADER)
        return value

    def _scopes(self, principal: Principal, call: ClientCall, header_end_user: str | None = None) -> Scopes:
        # A key bound to a customer wins; then a trusted proxy's header; then the body's ``user``.
        end_user = principal.end_user_id or header_end_user
        if end_user is None and self.trust_end_user_field:
            user = call.payload.get("user")
            if user is None and isinstance(call.payload.get("metadata"), dict):
                user = call.payload["metadata"].get("user_id")  # Anthropic clients
            end_user = user if isinstance(user, str) and user else None
        tags = list(principal.tags)
        metadata = call.payload.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("tags"), list):
            tags += [t for t in metadata["tags"] if isinstance(t, str)]
        return Scopes(
            api_key=principal.key_id,
            user_id=principal.user_id,
            team_id=principal.team_id,
            organization_id=principal.organization_id,
            end_user=end_user,
            tags=tuple(dict.fromkeys(tags)),
            model_group=call.model,
        )

    async def _attempt(
        self, call: _Call, deployment: Deployment, number: int
    ) -> tuple[Exchange, UpstreamResponse, bytes | None]:
        """Send one attempt: (exchange, upstream response, full body; None for a stream)."""
        exchange = exchange_for(call.client, deployment)
        try:
            request = exchange.build_request()
        except (AttributeError, TypeError, ValueError) as exc:  # a body the adapter cannot translate
            raise InvalidField(
                f"cannot translate this request for a {deployment.provider} deployment: {exc}"
            ) from exc
        started = time.perf_counter()
        try:
            with upstream_errors(deployment.id):
                upstream = await self.client.send(request)
                if upstream.status_code >= 400:
                    body = await upstream.aread()
                    raise UpstreamStatusError(
                        upstream.status_code, body, {"retry-after": upstream.headers.get("retry-after", "")}
                    )
                if call.client.stream and upstream.headers.get("content-type", "").startswith(
                    "text/event-stream"
                ):
                    return exchange, upstream, None
                return exchange, upstream, await upstream.aread()
        except asyncio.CancelledError:
            await self._bill_cancelled(call, deployment, exchange)
            raise
        finally:
            call.state["upstream_seconds"] = (
                call.state.get("upstream_seconds", 0.0) + time.perf_counter() - started
            )

    async def _bill_cancelled(self, call: _Call, deployment: Deployment, exchange: Exchange) -> None:
        """A call cancelled while its attempt was upstream (only the server cancels a task: a
        graceful stop that ran out of time). The request may have reached the provider, which
        bills the prompt, so it is billed here too: the prompt estimate, ``cancelled`` and
        ``estimated``, settled against the request's own reservation (the attempt's hold at
        the deployment is released by the router)."""
        try:
            usage = exchange.estimate()
            breakdown = deployment.price(usage, at=call.started_at)
            if call.ticket is not None:
                await self.admission.settle(call.ticket, _nanos(breakdown), usage)
            self._record(call, deployment, breakdown, EventStatus.CANCELLED, estimated=True, overhead=None)
        except Exception:
            log.exception("could not bill cancelled call %s", call.request_id)

    async def _record_failure(
        self, call: _Call, deployment: Deployment, number: int, error: UpstreamError
    ) -> None:
        log.info("attempt %d of %s on %s failed: %s", number, call.request_id, deployment.id, error)
        breakdown = CostBreakdown(model=deployment.price_model, priced=True, provider=deployment.provider)
        self._record(
            call,
            deployment,
            breakdown,
            EventStatus.ERROR,
            estimated=False,
            overhead=None,
            event_id=f"{call.request_id}.{number}",
        )

    async def _finish_stream(
        self, call: _Call, deployment: Deployment, exchange: Exchange, translator: Any, outcome: StreamOutcome
    ) -> None:
        """Steps 6-9 of a streamed call, once it has ended."""
        try:
            # 6. meter: the upstream's usage when it sent its final usage, else an estimate
            usage = translator.usage()
            final = usage is not None and outcome.finished
            estimated = not final
            if usage is None:
                usage = exchange.estimate(translator.text)
            elif not final:
                # Input counts are exact (sent first); the output is at least what was streamed.
                usage = usage.with_(
                    output_tokens=max(usage.output_tokens, estimate_text_tokens(translator.text))
                )
            if outcome.client_disconnected and not outcome.finished:
                status = EventStatus.CANCELLED
            elif outcome.upstream_error is not None or not outcome.finished:
                status = EventStatus.PARTIAL if (translator.text or final) else EventStatus.ERROR
            else:
                status = EventStatus.SUCCESS
            # 7. price (the price put into the usage chunk, when there was one)
            breakdown = translator.breakdown if (final and translator.breakdown is not None) else None
            if breakdown is None:
                breakdown = deployment.price(
                    usage,
                    at=call.started_at,
                    served_tier=translator.service_tier,
                    requested_tier=call.service_tier,
                )
            # 8. settle
            assert call.ticket is not None
            await self.admission.settle(call.ticket, _nanos(breakdown), usage)
            # 9. record
            overhead = self._overhead(call, streaming=outcome.processing_seconds)
            self._record(call, deployment, breakdown, status, estimated=estimated, overhead=overhead)
        finally:
            deployment.in_flight -= 1

    def _record(
        self,
        call: _Call,
        deployment: Deployment,
        breakdown: CostBreakdown,
        status: EventStatus,
        *,
        estimated: bool,
        overhead: float | None,
        event_id: str | None = None,
    ) -> None:
        scopes = call.scopes
        event = SpendEvent.from_breakdown(
            breakdown,
            event_id=event_id or call.request_id,
            occurred_at=datetime.now(UTC),
            status=status,
            estimated=estimated,
            started_at=call.started_at,
            api_key=scopes.api_key,
            user_id=scopes.user_id,
            team_id=scopes.team_id,
            organization_id=scopes.organization_id,
            end_user=scopes.end_user,
            tags=scopes.tags,
            requested_model=call.client.model,
            model=deployment.target.model,
            deployment_id=deployment.id,
            provider=deployment.provider,
            endpoint=call.path,
            operation_id=call.request_id,
            latency_ms=int((time.perf_counter() - call.started) * 1000),
            overhead_ms=None if overhead is None else round(overhead * 1000),
        )
        try:
            self.recorder.record(event)
        except Exception:
            # The call happened and the provider will bill it: shout, never hide it.
            log.critical(
                "could not record spend event %s: %s", event.event_id, event.to_json().decode(), exc_info=True
            )

    def _overhead(self, call: _Call, streaming: float = 0.0) -> float:
        """Seconds spent in the gateway so far, the upstream's time excluded."""
        upstream: float = call.state.get("upstream_seconds", 0.0)
        return max(0.0, time.perf_counter() - call.started - upstream) + streaming

    def _forwarded(self, headers: Mapping[str, str], endpoint: str) -> dict[str, str]:
        out: dict[str, str] = {}
        if endpoint == "messages":
            for name in ("anthropic-version", "anthropic-beta"):
                if name in headers:
                    out[name] = headers[name]
        if self.forward_client_headers:
            for name, value in headers.items():
                if (
                    name.startswith("x-")
                    and name not in _NOT_FORWARDED
                    and not name.startswith("x-spendgate-")
                ):
                    out[name] = value
        return out

    # -- GET /v1/models -----------------------------------------------------------------------

    async def list_models(self, request: Request) -> Response:
        principal = await self.auth.authenticate(request.headers)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "spendgate"}
            for name in self.router.groups
            if principal.may_use(name)
        ]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


# -- parsing ----------------------------------------------------------------------------------

_REQUIRED = {
    "chat": ("messages", list),
    "completions": ("prompt", (str, list)),
    "embeddings": ("input", (str, list)),
    "images": ("prompt", str),
    "speech": ("input", str),
    "messages": ("messages", list),
}
_TOKEN_ID_PROMPTS = {"completions": "prompt", "embeddings": "input"}
"""Fields that may hold a pre-tokenized prompt (token ids), and so must have its shape."""
_NUMBER_FIELDS = ("temperature", "top_p")


async def read_body(request: Request, limit: int, declared: str | None = None) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes
    (``declared``: its ``content-length``, if given)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_call(endpoint: str, body: bytes, content_type: str) -> ClientCall:
    """Parse and check a request body: 400 when it is not JSON, 422 for a bad field."""
    if endpoint == "transcriptions":
        fields = form_fields(body, content_type)
        if fields is None:
            raise MalformedRequest("expected a multipart/form-data body with the audio file")
        payload: Any = dict(fields)
    else:
        if not body.strip():
            raise MalformedRequest("request body is empty; expected a JSON object")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedRequest(f"request body is not valid JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise MalformedRequest("request body must be a JSON object")
    model = payload.get("model")
    if model is None:
        raise InvalidField("missing required field 'model'", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise InvalidField("'model' must be a non-empty string", param="model")
    required = _REQUIRED.get(endpoint)
    if required is not None:
        name, kind = required
        kinds: type | tuple[type, ...] = kind  # type: ignore[assignment]
        if name not in payload:
            raise InvalidField(
                f"missing required field {name!r}", param=name, code="missing_required_parameter"
            )
        if not isinstance(payload[name], kinds):
            raise InvalidField(f"{name!r} has the wrong type", param=name)
    if endpoint in ("chat", "messages"):
        _check_messages(payload["messages"])
    prompt_field = _TOKEN_ID_PROMPTS.get(endpoint)
    if prompt_field is not None:
        _check_prompt(payload[prompt_field], prompt_field)
    tools = payload.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise InvalidField("'tools' must be a list of objects", param="tools")
    check_bounds(payload)
    for name in _NUMBER_FIELDS:
        value = payload.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise InvalidField(f"{name!r} must be a number", param=name)
    if endpoint == "messages" and not isinstance(payload.get("max_tokens"), int):
        raise InvalidField(
            "missing required field 'max_tokens'", param="max_tokens", code="missing_required_parameter"
        )
    stream = payload.get("stream", False)
    if endpoint == "transcriptions":
        stream = False
    elif stream is not None and not isinstance(stream, bool):
        raise InvalidField("'stream' must be a boolean", param="stream")
    options = payload.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise InvalidField("'stream_options' must be an object", param="stream_options")
    return ClientCall(
        endpoint=endpoint,
        model=model,
        payload=payload,
        raw=body,
        content_type=content_type or "application/json",
        stream=bool(stream),
        include_usage=bool(options and options.get("include_usage")),
    )


def _check_messages(messages: list[Any]) -> None:
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidField(f"{where} must be an object with a string 'role'", param=where)
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidField(f"{where}.content must be a string or a list", param=f"{where}.content")
        if isinstance(content, list) and not all(isinstance(part, dict) for part in content):
            raise InvalidField(f"{where}.content parts must be objects", param=f"{where}.content")
        calls = message.get("tool_calls")
        if calls is not None and (not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls)):
            raise InvalidField(f"{where}.tool_calls must be a list of objects", param=f"{where}.tool_calls")


def _check_prompt(prompt: str | list[Any], name: str) -> None:
    """A prompt is a string, a list of strings, a list of token ids, or a list of lists of
    token ids (OpenAI's four forms); token ids are counted one token each."""
    if isinstance(prompt, str) or all(isinstance(item, str) for item in prompt) or _token_ids(prompt):
        return
    if all(isinstance(item, list) and _token_ids(item) for item in prompt):
        return
    raise InvalidField(
        f"{name!r} must be a string, a list of strings, a list of token ids (non-negative integers) "
        "or a list of such lists",
        param=name,
    )


def _token_ids(items: list[Any]) -> bool:
    return all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= MAX_TOKEN_ID for i in items)


def exchange_for(call: ClientCall, deployment: Deployment) -> Exchange:
    """The adapter for a client call on a deployment (by their two dialects)."""
    kind = deployment.target.kind
    if kind == "anthropic":
        if call.endpoint == "messages":
            return AnthropicExchange(call, deployment.target)
        if call.endpoint == "chat":
            return AnthropicChatExchange(call, deployment.target)
    elif call.endpoint != "messages":
        return OpenAIExchange(call, deployment.target)
    raise MalformedRequest(
        f"model {call.model!r} is served by a {kind} deployment, which does not support this endpoint",
        param="model",
        code="unsupported_endpoint",
    )


def response_text(body: bytes) -> str:
    """The generated text of a non-streamed answer (for an estimate when it has no usage)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    parts: list[str] = []
    if isinstance(parsed, dict):
        for choice in parsed.get("choices") or []:
            if isinstance(choice, dict):
                message = choice.get("message") or {}
                parts.append(str(message.get("content") or "") if isinstance(message, dict) else "")
                parts.append(str(choice.get("text") or ""))
        for block in parsed.get("content") or []:
            if isinstance(block, dict):
                parts.append(str(block.get("text") or ""))
        if isinstance(parsed.get("output_text"), str):
            parts.append(parsed["output_text"])
    return "".join(parts)


def _nanos(breakdown: CostBreakdown) -> int:
    return breakdown.total_nanos if breakdown.priced else 0


def usd_text(nanos: int) -> str:
    """Integer nano-USD as a plain decimal USD number (``0.0000625``)."""
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
    whole, frac = divmod(nanos, 1_000_000_000)
    return f"{sign}{whole}.{frac:09d}".rstrip("0").rstrip(".")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"
