"""THE request path. Read :meth:`Pipeline.handle` top to bottom:

authenticate → read and parse → resolve scopes → the response cache (a hit is replayed
from here: nothing reserved, nothing sent) → admit → route and forward (the attempt loop:
admit at the deployment → send → on failure record and go on) → meter usage → price →
settle → record → (store in the cache) → respond.

A complete answer and a streamed one share the billing step (:meth:`Pipeline._bill`: settle,
then record); a stream runs it when it ends (however it ends), from
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
* A response-cache hit (:mod:`spendgate.gateway.cache`) costs nothing: it is recorded with
  ``cache_hit`` and ``saved_nanos``, what the call would cost now at the deployment its
  answer came from.
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
from spendgate.core.usage.model import Usage
from spendgate.core.usage.tier import requested_service_tier
from spendgate.errors import LimitExceeded, UpstreamError, UpstreamStatusError
from spendgate.gateway.admission import Admission, AdmissionRequest, Admitted
from spendgate.gateway.auth import Authenticator, Principal
from spendgate.gateway.cache import CACHE_HIT, CACHE_KEY, CacheLookup, Replayed, ResponseCache
from spendgate.gateway.deployments import Deployment, InFlightSlot
from spendgate.gateway.parsing import parse_call, response_text
from spendgate.gateway.replies import BodyReply, header_map
from spendgate.gateway.routing import Router
from spendgate.gateway.scoping import ScopeResolver, Scopes
from spendgate.gateway.streaming import StreamOutcome, StreamRelay
from spendgate.http.body import read_body
from spendgate.http.credentials import end_user_from_header
from spendgate.http.errors import InvalidField, MalformedRequest, NotFound, PermissionDenied
from spendgate.http.headers import OVERHEAD_MS, RESPONSE_COST, cost_text, overhead_text
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.metrics import RequestMetrics
from spendgate.providers.anthropic import AnthropicChatExchange, AnthropicExchange
from spendgate.providers.base import ENDPOINT_PATHS, ClientCall, Exchange, estimate_prompt_tokens
from spendgate.providers.body_rules import BodyFieldError
from spendgate.providers.http import UpstreamClient, UpstreamResponse
from spendgate.providers.metering import stream_usage
from spendgate.providers.openai_compat import OpenAIExchange
from spendgate.providers.transport import upstream_errors

__all__ = ["EventSink", "Pipeline", "exchange_for"]

log = logging.getLogger("spendgate.gateway")

# Client headers never forwarded upstream: credentials, hop-by-hop, and what httpx sets.
_NOT_FORWARDED = frozenset(
    {
        "x-api-key",
        "x-litellm-api-key",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "x-request-id",
    }
)


class EventSink(Protocol):
    """What the pipeline records into (the ledger's ``Recorder`` has this shape)."""

    def record(self, event: SpendEvent) -> object: ...


@dataclass(slots=True)
class _Call:
    """Everything known about one request on its way through the pipeline."""

    request_id: str
    started: float
    started_at: datetime
    state: dict[str, Any]
    client: ClientCall
    scopes: Scopes
    admitted: Admitted
    service_tier: str | None = None
    """The service tier the request asks for (normalized; None: the provider's default)."""
    cache: CacheLookup | None = None
    """The response cache's view of the request (None: not cached)."""

    @property
    def cache_hit(self) -> bool:
        return self.cache is not None and self.cache.hit is not None


@dataclass(slots=True)
class _Served:
    """The attempt that answered: where, its in-flight slot, and the upstream's answer."""

    deployment: Deployment
    slot: InFlightSlot
    exchange: Exchange
    upstream: UpstreamResponse
    body: bytes | None
    """The full answer; None for a stream."""


class Pipeline:
    """The gateway's request path (one instance per app)."""

    def __init__(
        self,
        *,
        router: Router,
        auth: Authenticator,
        scopes: ScopeResolver,
        admission: Admission,
        recorder: EventSink,
        client: UpstreamClient,
        max_body_bytes: int,
        forward_client_headers: bool = False,
        trusted_proxies: Sequence[str] = (),
        metrics: RequestMetrics | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.router = router
        self.auth = auth
        self.scopes = scopes
        self.admission = admission
        self.recorder = recorder
        self.client = client
        self.max_body_bytes = max_body_bytes
        self.forward_client_headers = forward_client_headers
        self.trusted_proxies = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies)
        self.metrics = metrics
        """Prometheus counters (None: metrics off, nothing counted)."""
        self.cache = cache
        """The response cache (None: ``litellm_settings.cache`` is off)."""

    # -- the request path ------------------------------------------------------------------

    async def handle(self, request: Request, endpoint: str) -> Response:
        state: dict[str, Any] = request.scope["state"]
        headers = header_map(request.scope["headers"])
        # 1. authenticate
        principal = await self.auth.authenticate(headers)
        # 2. read (size-limited, before parsing) and parse
        body = await read_body(request, self.max_body_bytes, headers.get("content-length"))
        client_call = parse_call(endpoint, body, headers.get("content-type", ""))
        self._check_model(principal, client_call.model)
        client_call.forward_headers = self.forwarded_headers(headers, endpoint)
        # 3. resolve scopes, once: whom the call is attributed to, and their limits
        header_end_user = None
        if self.trusted_proxies:  # the header is honoured only from a trusted proxy
            peer = request.scope.get("client")
            host = peer[0] if peer else None
            header_end_user = end_user_from_header(headers, host, self.trusted_proxies)
        scopes = self.scopes.attribute(principal, client_call, header_end_user)
        resolved = await self.scopes.resolve(principal, scopes, client_call.payload)
        cached = await self.cache.lookup(client_call) if self.cache is not None else None
        if cached is not None and cached.hit is not None and cached.deployment is not None:
            # A hit: replayed as the answer of the deployment it came from (steps 6-10), at
            # $0, with nothing reserved (the budgets never see it) and nothing sent upstream.
            call = _Call(
                state["request_id"], state["started"], state["started_at"], state, client_call, scopes,
                Admitted(state["request_id"]), cache=cached,
            )  # fmt: skip
            deployment = cached.deployment
            slot = deployment.serving()
            slot.close()  # not in flight upstream (least-busy must not count it)
            replayed = Replayed(cached.hit)
            answer = None if cached.hit.stream else cached.hit.body
            served = _Served(deployment, slot, exchange_for(client_call, deployment), replayed, answer)
            return await self._respond(call, served)
        # 4. admit at the request's own scopes (rate limits + the worst case reserved)
        admitted = await self.admission.admit(
            AdmissionRequest(
                request_id=state["request_id"],
                endpoint=endpoint,
                principal=principal,
                scopes=scopes,
                payload=client_call.payload,
                estimated_input_tokens=estimate_prompt_tokens(client_call.payload, endpoint),
                deployments=tuple(self.router.candidates(client_call.model)),
                resolved=resolved,
            )
        )
        call = _Call(
            request_id=state["request_id"],
            started=state["started"],
            started_at=state["started_at"],
            state=state,
            client=client_call,
            scopes=scopes,
            admitted=admitted,
            service_tier=requested_service_tier(client_call.payload),
            cache=cached,
        )
        # 5. route and forward (retries and fallbacks; each attempt admitted at its deployment)
        try:
            served = await self._forward(call)
        except BaseException:
            await self.admission.release(admitted)
            raise
        return await self._respond(call, served)

    async def _respond(self, call: _Call, served: _Served) -> Response:
        """Steps 6-10 of the answer ``served`` (from upstream, or replayed from the cache)."""
        admitted = call.admitted
        cache_headers = _cache_headers(call)
        if served.body is None:
            # 6-10 for a stream happen when it ends: StreamRelay calls _finish_stream.
            pricer = partial(served.deployment.price, at=call.started_at, requested_tier=call.service_tier)
            translator = served.exchange.stream_translator(
                _free(served.deployment) if call.cache_hit else pricer
            )
            relay_headers = {
                **admitted.headers,
                **cache_headers,
                OVERHEAD_MS: overhead_text(self._overhead(call)),
            }
            if self.cache is not None and call.cache is not None and not call.cache_hit:
                served.upstream = self.cache.recording(served.upstream)
            finish = partial(self._finish_stream, call, served, translator)
            return StreamRelay(served.upstream, translator, relay_headers, finish, where=served.deployment.id)
        with served.slot:
            try:
                # 6. meter
                usage, content, content_type = served.exchange.read_response(
                    served.body, served.upstream.headers.get("content-type", "")
                )
                estimated = usage is None
                if usage is None:
                    usage = served.exchange.estimate(response_text(served.body))
                # 7. price (at the service tier the answer reports, else the one requested)
                breakdown = served.deployment.price(
                    usage,
                    at=call.started_at,
                    served_tier=served.exchange.service_tier,
                    requested_tier=call.service_tier,
                )
            except BaseException:
                await self.admission.release(admitted)
                raise
        # 8-9. settle and record
        await self._bill(call, served.deployment, usage, breakdown, EventStatus.SUCCESS, estimated=estimated)
        await self._store(call, served, served.body)
        # 10. respond (the header's overhead includes recording)
        answer_headers = {
            **admitted.headers,
            **cache_headers,
            RESPONSE_COST: "0" if call.cache_hit else cost_text(_nanos(breakdown), priced=breakdown.priced),
            OVERHEAD_MS: overhead_text(self._overhead(call)),
        }
        return BodyReply(content, served.upstream.status_code, answer_headers, content_type or None)

    async def _forward(self, call: _Call) -> _Served:
        """Step 5, the attempt loop: the router proposes a deployment; the admission admits
        the attempt there (a refusal skips it); the attempt is sent; a failure is recorded
        and the router decides whether and where to retry (its back-off included)."""
        plan = self.router.attempts(call.client.model)
        while (deployment := await plan.next()) is not None:
            try:
                await self.admission.admit_at(call.admitted, deployment)
            except LimitExceeded as refusal:
                plan.refused(deployment, refusal)
                continue
            number = plan.sent(deployment)
            slot = deployment.serving()
            try:
                exchange, upstream, body = await self._send(call, deployment)
            except UpstreamError as error:
                slot.close()
                await self.admission.release_attempt(call.admitted)
                self._record_failure(call, deployment, number, error)
                plan.failed(error)  # raises it when it cannot be retried
                continue
            except BaseException:
                slot.close()
                await self.admission.release_attempt(call.admitted)
                raise
            return _Served(deployment, slot, exchange, upstream, body)
        raise plan.error()

    async def _send(
        self, call: _Call, deployment: Deployment
    ) -> tuple[Exchange, UpstreamResponse, bytes | None]:
        """Send one attempt: (exchange, upstream response, full body; None for a stream)."""
        exchange = exchange_for(call.client, deployment)
        try:
            request = exchange.build_request()
        except BodyFieldError as exc:  # a field the adapter cannot translate, named
            raise InvalidField(
                f"cannot translate this request for the {deployment.provider} deployment: {exc.message}",
                param=exc.field,
            ) from exc
        except (AttributeError, TypeError, ValueError) as exc:  # any other shape it cannot translate
            log.info("request not translatable for %s: %r", deployment.id, exc)
            raise InvalidField(
                f"cannot translate this request for the {deployment.provider} deployment: a field has "
                "a shape the translation does not accept"
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

    async def _finish_stream(
        self, call: _Call, served: _Served, translator: Any, outcome: StreamOutcome
    ) -> None:
        """Steps 6-9 of a streamed call, once it has ended."""
        with served.slot:
            try:
                # 6. meter: the upstream's usage when it sent its final usage, else an estimate
                usage, final = stream_usage(translator, served.exchange, outcome.finished)
                if outcome.client_disconnected and not outcome.finished:
                    status = EventStatus.CANCELLED
                elif outcome.upstream_error is not None or not outcome.finished:
                    status = EventStatus.PARTIAL if (translator.text or final) else EventStatus.ERROR
                else:
                    status = EventStatus.SUCCESS
                # 7. price (the price put into the usage chunk, when there was one; a cache hit's
                # chunk shows $0, so what it saved is priced here)
                breakdown = None
                if final and translator.breakdown is not None and not call.cache_hit:
                    breakdown = translator.breakdown
                if breakdown is None:
                    breakdown = served.deployment.price(
                        usage,
                        at=call.started_at,
                        served_tier=translator.service_tier,
                        requested_tier=call.service_tier,
                    )
            except BaseException:
                # As for a complete answer: nothing can be billed, so give the reservations back
                # now rather than hold them until their lease expires.
                await self.admission.release(call.admitted)
                raise
            # 8-9. settle and record
            streaming = outcome.processing_seconds
            await self._bill(
                call, served.deployment, usage, breakdown, status, estimated=not final, streaming=streaming
            )
        if status is EventStatus.SUCCESS and final:
            await self._store(call, served, None)

    async def _store(self, call: _Call, served: _Served, body: bytes | None) -> None:
        """Keep a successful answer in the response cache (unless it came from there)."""
        if self.cache is not None and call.cache is not None and not call.cache_hit:
            await self.cache.store(call.cache, served.deployment, served.upstream, body)

    async def _bill_cancelled(self, call: _Call, deployment: Deployment, exchange: Exchange) -> None:
        """A call cancelled while its attempt was upstream (only the server cancels a task: a
        graceful stop that ran out of time). The request may have reached the provider, which
        bills the prompt, so it is billed here too: the prompt estimate, ``cancelled`` and
        ``estimated``, settled against the request's own reservation (the attempt's hold at
        the deployment is released first)."""
        try:
            await self.admission.release_attempt(call.admitted)
            usage = exchange.estimate()
            breakdown = deployment.price(usage, at=call.started_at)
            await self._bill(
                call, deployment, usage, breakdown, EventStatus.CANCELLED, estimated=True, streaming=None
            )
        except Exception:
            log.exception("could not bill cancelled call %s", call.request_id)

    # -- billing -----------------------------------------------------------------------------

    async def _bill(
        self,
        call: _Call,
        deployment: Deployment,
        usage: Usage,
        breakdown: CostBreakdown,
        status: EventStatus,
        *,
        estimated: bool,
        streaming: float | None = 0.0,
    ) -> None:
        """Steps 8 and 9, for every billed outcome: settle the reservations with the real cost,
        then record the spend event (with the gateway's overhead, plus ``streaming`` seconds
        spent relaying a stream; None: not measured, as for a cancelled call)."""
        nanos = _nanos(breakdown)
        if call.cache_hit:
            nanos = 0  # nothing was reserved, nothing is charged
        else:
            await self.admission.settle(call.admitted, nanos, usage)
        overhead = None if streaming is None else self._overhead(call, streaming)
        self._record(call, deployment, breakdown, status, estimated=estimated, overhead=overhead)
        if self.metrics is not None:  # one call, no await: counters in memory (or mmap files)
            scopes = call.scopes
            self.metrics.observe(
                route=call.client.endpoint,
                requested_model=call.client.model,
                model=deployment.target.model,
                provider=deployment.provider,
                api_key=scopes.api_key,
                user=scopes.user_id,
                team=scopes.team_id,
                end_user=scopes.end_user,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                nanos=nanos,
                outcome=status.value,
                duration=time.perf_counter() - call.started,
                overhead=overhead,
            )

    def _record_failure(self, call: _Call, deployment: Deployment, number: int, error: UpstreamError) -> None:
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
            endpoint=ENDPOINT_PATHS[call.client.endpoint],
            operation_id=call.request_id,
            latency_ms=int((time.perf_counter() - call.started) * 1000),
            overhead_ms=None if overhead is None else round(overhead * 1000),
        )
        if call.cache_hit and event_id is None:
            # Charged nothing; what the call would have cost is what it saved.
            event = event.with_(
                cost_nanos=0, cost_items={}, unpriced=False, unpriced_reason=None, cache_hit=True,
                saved_nanos=event.cost_nanos,
            )  # fmt: skip
        try:
            self.recorder.record(event)
        except Exception:
            # The call happened and the provider will bill it: shout, never hide it.
            log.critical(
                "could not record spend event %s: %s", event.event_id, event.to_json().decode(), exc_info=True
            )

    def _check_model(self, principal: Principal, model: str) -> None:
        if self.router.group(model) is None:
            raise NotFound(
                f"model {model!r} does not exist on this gateway (GET /v1/models lists them)",
                param="model",
                code="model_not_found",
            )
        if not principal.may_use(model):
            raise PermissionDenied(f"this key may not use model {model!r}", param="model")

    def _overhead(self, call: _Call, streaming: float = 0.0) -> float:
        """Seconds spent in the gateway so far, the upstream's time excluded."""
        upstream: float = call.state.get("upstream_seconds", 0.0)
        return max(0.0, time.perf_counter() - call.started - upstream) + streaming

    def forwarded_headers(self, headers: Mapping[str, str], endpoint: str) -> dict[str, str]:
        """The client headers sent on upstream (Anthropic's version headers on ``messages``;
        with ``forward_client_headers``, every ``x-*`` header but credentials and ours)."""
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


def _nanos(breakdown: CostBreakdown) -> int:
    return breakdown.total_nanos if breakdown.priced else 0


def _cache_headers(call: _Call) -> dict[str, str]:
    if call.cache is None:
        return {}
    return {CACHE_HIT: "true" if call.cache_hit else "false", CACHE_KEY: call.cache.key}


def _free(deployment: Deployment) -> Any:
    """The pricer of a replayed stream: its usage chunk shows the $0 the hit costs."""

    def price(usage: Usage, **_: Any) -> CostBreakdown:
        return CostBreakdown(
            model=deployment.price_model, priced=True, provider=deployment.provider, usage=usage
        )

    return price
