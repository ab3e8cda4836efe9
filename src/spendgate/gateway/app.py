"""Build the gateway's ASGI app from a :class:`~spendgate.config.GatewayConfig`.

The lifespan opens the database engine and migrates it (or checks it is up to date),
starts the spend recorder and the limits (budgets and rate limits, in-process or on
Redis), opens one pooled upstream client (``general_settings.upstream_http_client``; see
:mod:`spendgate.providers.http`), and on shutdown flushes the recorder before closing
the rest. Routes: the OpenAI API (each also without ``/v1``), Anthropic's
``/v1/messages``, ``GET /v1/models``, the health checks and the management API.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from spendgate.admin import AdminSettings, ExplainTarget, admin_routes
from spendgate.admin.explain import NotAvailable
from spendgate.config import GatewayConfig
from spendgate.core.pricing.adjustments import AdjustmentRules
from spendgate.core.pricing.catalogue import PriceBook
from spendgate.costs import default_price_book
from spendgate.enforcement import ScopeWindowState
from spendgate.errors import ConfigurationError
from spendgate.gateway.admission import Admission, AllowAll
from spendgate.gateway.auth import Authenticator
from spendgate.gateway.limits import GatewayLimits
from spendgate.gateway.middleware import GatewayMiddleware, InFlight
from spendgate.gateway.pipeline import EventSink, Pipeline
from spendgate.gateway.routing import Router, build_deployments
from spendgate.http.errors import error_body, render_error
from spendgate.ledger.journal import JournalLockedError
from spendgate.ledger.recorder import Recorder
from spendgate.providers.http import UpstreamClient, make_upstream_client
from spendgate.stores.database import create_engine, database_url, schema_status, upgrade

__all__ = ["ENDPOINTS", "GatewayApp", "GatewayState", "build_app"]

log = logging.getLogger("spendgate.gateway")

ENDPOINTS = {
    "/chat/completions": "chat",
    "/completions": "completions",
    "/embeddings": "embeddings",
    "/responses": "responses",
    "/images/generations": "images",
    "/audio/transcriptions": "transcriptions",
    "/audio/speech": "speech",
    "/messages": "messages",
}
"""Route (after ``/v1``) → the pipeline's endpoint name."""


@dataclass(slots=True)
class GatewayState:
    """What the lifespan opened (``app.state.gateway``)."""

    pipeline: Pipeline
    engine: AsyncEngine
    recorder: EventSink
    client: UpstreamClient
    redis: Any = None
    limits: GatewayLimits | None = None
    """Budgets and rate limits (None when ``build_app`` was given its own ``admission``)."""


def build_app(
    config: GatewayConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    admission: Admission | None = None,
    book: PriceBook | None = None,
    recorder_factory: Callable[[AsyncEngine], EventSink] | None = None,
) -> GatewayApp:
    """The gateway app. ``transport`` replaces the upstream transport (tests);
    ``admission`` is the budget and rate-limit hook (default: allow all);
    ``book`` the price layers (default: the bundled catalogue)."""
    general = config.general_settings
    rules = AdjustmentRules.from_litellm(
        config.litellm_settings.cost_discount_config, config.litellm_settings.cost_margin_config
    )
    has_rules = bool(rules.discounts or rules.margins)
    deployments = build_deployments(
        config,
        book or default_price_book(),
        (lambda provider, model: rules.for_model(provider, model)) if has_rules else (lambda p, m: None),
    )
    router = Router(
        deployments,
        strategy=config.router_settings.strategy,
        num_retries=config.num_retries,
        fallbacks=config.fallbacks,
        retry_after=config.router_settings.retry_after,
        max_retry_delay=config.router_settings.max_retry_delay,
    )
    for warning in config.warnings:
        log.warning("config: %s", warning)
    if not general.master_key:
        log.warning("no master_key configured: the gateway accepts every request without a key")

    in_flight = InFlight()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(
            database_url(general.database_url),
            connect_timeout=general.database_connect_timeout_seconds,
            command_timeout=general.database_command_timeout_seconds,
            pool_timeout=general.database_pool_timeout_seconds,
        )
        redis_client = None
        try:
            if general.run_migrations:
                await upgrade(engine)
            else:
                status = await schema_status(engine)
                if not status.up_to_date:
                    raise ConfigurationError(
                        f"database {status.url} is at revision {status.current}, not {status.head}: "
                        "run `spendgate db upgrade` (or set general_settings.run_migrations: true)"
                    )
            if recorder_factory is not None:
                recorder: EventSink = recorder_factory(engine)
                start = getattr(recorder, "start", None)
                if start is not None:
                    await start()
            else:
                recorder = await _start_recorder(engine, _journal_dir(config))
            client = make_upstream_client(
                general.upstream_http_client,
                http2=general.upstream_http2,
                transport=transport,
                timeout=config.timeout,
            )
            if general.redis_url:
                import redis.asyncio as aioredis

                # Readiness pings only: bounded, so a Redis that drops packets cannot hang it.
                redis_client = aioredis.from_url(
                    general.redis_url, socket_connect_timeout=2.0, socket_timeout=2.0
                )
            limits = GatewayLimits(config, engine, router) if admission is None else None
            pipeline = Pipeline(
                router=router,
                auth=Authenticator(
                    general.master_key,
                    engine,
                    ttl_seconds=general.key_cache_ttl_seconds,
                    stale_seconds=general.stale_cache_max_seconds,
                    wait_seconds=general.database_lookup_timeout_seconds,
                ),
                admission=admission or limits or AllowAll(),
                recorder=recorder,
                client=client,
                max_body_bytes=config.max_request_bytes,
                forward_client_headers=general.forward_client_headers_to_llm_api,
                trust_end_user_field=general.trust_end_user_field,
                trusted_proxies=general.trusted_proxies,
            )
            app.state.gateway = GatewayState(pipeline, engine, recorder, client, redis_client, limits)
            try:
                yield
            finally:
                # Requests a graceful stop cancelled still settle and record: let them end first.
                await in_flight.drained(timeout=5.0)
                close = getattr(recorder, "close", None)
                if close is not None:
                    await close()
                await client.aclose()
                if limits is not None:
                    await limits.close()
        finally:
            if redis_client is not None:
                await redis_client.aclose()
            await engine.dispose()

    routes: list[Route] = []
    for path, endpoint in ENDPOINTS.items():
        handler = _endpoint(endpoint)
        routes.append(Route(f"/v1{path}", handler, methods=["POST"]))
        routes.append(Route(path, handler, methods=["POST"]))
    for path in ("/v1/models", "/models"):
        routes.append(Route(path, _models, methods=["GET"]))
    for path in ("/health/liveliness", "/health/liveness", "/health"):
        routes.append(Route(path, _liveliness, methods=["GET"]))
    routes.append(Route("/health/readiness", _readiness, methods=["GET"]))
    routes += admin_routes(
        AdminSettings.from_master_key(
            lambda request: request.app.state.gateway.engine,
            general.master_key,
            on_key_change=_forget_key,
            explainer=_explain,
        )
    )
    return GatewayApp(
        Starlette(
            routes=routes,
            exception_handlers={HTTPException: _http_error, Exception: _server_error},
            lifespan=lifespan,
        ),
        budget_exceeded_status=general.budget_exceeded_status,
        in_flight=in_flight,
    )


class GatewayApp:
    """The gateway's ASGI app.

    Every HTTP request goes through :class:`GatewayMiddleware` (request id, headers, errors).
    The inference routes are then dispatched straight to the pipeline with one dict look-up;
    everything else (lifespan, health, models, 404 and 405) goes through Starlette.
    """

    def __init__(
        self, starlette: Starlette, *, budget_exceeded_status: int = 429, in_flight: InFlight | None = None
    ) -> None:
        self.starlette = starlette
        self.state = starlette.state
        self._http = GatewayMiddleware(
            self._dispatch, budget_exceeded_status=budget_exceeded_status, in_flight=in_flight
        )
        self._routes = {f"{prefix}{path}": name for path, name in ENDPOINTS.items() for prefix in ("/v1", "")}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._routes.get(scope["path"]) if scope["method"] == "POST" else None
        if endpoint is None:
            await self.starlette(scope, receive, send)
            return
        gateway: GatewayState = self.state.gateway
        response = await gateway.pipeline.handle(Request(scope, receive), endpoint)
        await response(scope, receive, send)


async def _start_recorder(engine: AsyncEngine, base: Path) -> Recorder:
    """A recorder on the first free journal slot (``worker-<n>``; one per worker process).

    A journal is locked by the process that has it open, so with several workers each
    takes its own slot, and after a restart the same slots (and what they hold) are
    taken again and replayed.
    """
    for slot in range(256):
        recorder = Recorder(engine, base / f"worker-{slot}")
        try:
            await recorder.start()
        except JournalLockedError:
            continue
        return recorder
    raise ConfigurationError(f"{base}: no free spend-journal slot (256 in use)")


def _journal_dir(config: GatewayConfig) -> Path:
    configured = config.general_settings.journal_dir or os.environ.get("SPENDGATE_JOURNAL_DIR")
    path = Path(configured or "spendgate-journal")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _endpoint(endpoint: str) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        state: GatewayState = request.app.state.gateway
        return await state.pipeline.handle(request, endpoint)

    handle.__name__ = f"handle_{endpoint}"
    return handle


async def _models(request: Request) -> Response:
    state: GatewayState = request.app.state.gateway
    return await state.pipeline.list_models(request)


def _forget_key(request: Request, key: str) -> None:
    """Drop a changed key from the caches (``key``: its hash or its stable id)."""
    state: GatewayState = request.app.state.gateway
    state.pipeline.auth.forget(key)
    if state.limits is not None:
        state.limits.forget(key)


async def _explain(request: Request, target: ExplainTarget) -> list[ScopeWindowState]:
    """/budget/explain: the same scopes and limits the admission builds for the key."""
    state: GatewayState = request.app.state.gateway
    if state.limits is None:
        raise NotAvailable("budget explain is not available: this gateway runs its own admission")
    return await state.limits.explain(
        key_id=target.key_id, end_user=target.customer, tags=target.tags, model=target.model
    )


async def _liveliness(request: Request) -> Response:
    return Response(orjson.dumps({"status": "alive"}), media_type="application/json")


async def _readiness(request: Request) -> Response:
    state: GatewayState = request.app.state.gateway
    report: dict[str, Any] = {"status": "healthy"}
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        report["database"] = "connected"
    except Exception as exc:
        report["database"] = f"error: {type(exc).__name__}"
        report["status"] = "unhealthy"
    if state.redis is None:
        report["redis"] = "not configured"
    else:
        try:
            await state.redis.ping()
            report["redis"] = "connected"
        except Exception as exc:
            report["redis"] = f"error: {type(exc).__name__}"
            report["status"] = "unhealthy"
    stats = getattr(state.recorder, "stats", None)
    if stats is not None:
        report["recorder_queue"] = stats.queue_depth
    code = 200 if report["status"] == "healthy" else 503
    return Response(orjson.dumps(report), status_code=code, media_type="application/json")


async def _server_error(request: Request, exc: Exception) -> Response:
    status, body, headers = render_error(exc)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        body = error_body(
            f"no route {request.method} {request.url.path}", "invalid_request_error", None, "not_found"
        )
    elif exc.status_code == 405:
        body = error_body(
            f"method {request.method} not allowed on {request.url.path}",
            "invalid_request_error",
            None,
            "method_not_allowed",
        )
    else:
        body = error_body(str(exc.detail), "invalid_request_error", None, None)
    return Response(body, status_code=exc.status_code, media_type="application/json", headers=exc.headers)
