"""The composition root: builds every part of a running spendgate from its config.

:func:`build_app` returns the ASGI app ``spendgate serve`` runs. Its lifespan opens, in
order: the database engine (migrated, or checked up to date), the spend recorder (journal
replayed), the upstream client, the counter storage (Redis with ``redis_url``, else in
process) and the enforcer on it, the entity reader, scope resolver and admission, the
pipeline, and the job runner (background jobs under a leader lock: the batch-cost job,
which bills finished batches once; the alert sender, which drains the alert outbox when
general_settings.alerting names a channel; the report scheduler, which records the
scheduled spend reports of alerting_args.spend_reports once per period; with a channel,
the operational-alert jobs of :mod:`spendgate.jobs.operational`: storage and journal health
on every instance, unpriced usage and alert retention under the lock).
On shutdown it waits for requests in flight, then closes the same parts in reverse, the
recorder flushed first.

The gateway's routes (:mod:`spendgate.gateway.routes`) and the management API's
(:mod:`spendgate.admin`) are mounted side by side: neither imports the other. This is the
only module that knows them both.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spendgate.admin import AdminSettings, ExplainTarget, NotAvailable, admin_routes
from spendgate.admin.currency import CurrencyDisplay
from spendgate.alerts import AlertRouting, AlertSender, routing_from_config
from spendgate.alerts.operational import OperationalAlerts
from spendgate.alerts.recorder import AlertRecorder
from spendgate.alerts.resolver import resolve_ended
from spendgate.alerts.store import OutboxRepository
from spendgate.batches.poller import BatchPoller, PolledDeployment
from spendgate.config import AlertingArgs, GatewayConfig
from spendgate.core.keys import hash_key
from spendgate.core.money import to_nano
from spendgate.core.periods import parse_window
from spendgate.core.pricing.adjustments import AdjustmentRules
from spendgate.core.pricing.catalogue import PriceBook
from spendgate.core.scopes import Scope
from spendgate.costs import default_price_book
from spendgate.enforcement import (
    EnforcementRequest,
    Enforcer,
    ScopeWindowState,
    Storage,
    explain,
    storage_from_url,
)
from spendgate.enforcement.crossings import Crossing, CrossingWatch, alert_of
from spendgate.entities import EntityReader, LimitSpec
from spendgate.errors import ConfigurationError, SpendgateError
from spendgate.gateway.admission import Admission, LimitsAdmission
from spendgate.gateway.auth import Authenticator
from spendgate.gateway.cache import cache_from_config
from spendgate.gateway.deployments import build_deployments
from spendgate.gateway.lookups import bounded
from spendgate.gateway.managed import BatchGateway, BatchSettings
from spendgate.gateway.middleware import InFlight
from spendgate.gateway.model_info import ModelDirectory
from spendgate.gateway.pipeline import EventSink, Pipeline
from spendgate.gateway.replies import header_map
from spendgate.gateway.routes import GatewayApp, batch_routes, gateway_routes
from spendgate.gateway.routing import Router
from spendgate.gateway.scoping import ScopeResolver
from spendgate.http.credentials import key_from_headers
from spendgate.http.errors import AuthenticationFailed, PermissionDenied, error_body, render_error
from spendgate.jobs import Job, JobRunner, lock_for
from spendgate.jobs.operational import operational_jobs
from spendgate.jobs.report_scheduler import ReportScheduler, global_budget_of, report_job, report_specs
from spendgate.ledger.journal import JournalLockedError
from spendgate.ledger.rebuild import period_spend
from spendgate.ledger.recorder import Recorder
from spendgate.metrics import (
    BudgetReader,
    LabelPolicy,
    MetricsExporter,
    OutboxCollector,
    RequestMetrics,
    report_health,
)
from spendgate.providers.batch_api import BatchUpstream
from spendgate.providers.http import UpstreamClient, make_upstream_client
from spendgate.stores.database import create_engine, database_url, schema_status, upgrade
from spendgate.telemetry import ObservedSink, start_telemetry
from spendgate.ui import UiSettings, ui_routes

__all__ = ["Services", "build_app"]

log = logging.getLogger("spendgate.server")


@dataclass(slots=True)
class Services:
    """What the lifespan opened (``app.state.services``)."""

    pipeline: Pipeline
    engine: AsyncEngine
    recorder: EventSink
    client: UpstreamClient
    scopes: ScopeResolver
    jobs: JobRunner
    redis: Any = None
    """The readiness check's Redis client (None without ``redis_url``)."""
    enforcer: Enforcer | None = None
    """Budgets and rate limits (None when ``build_app`` was given its own ``admission``)."""
    batch_poller: BatchPoller | None = None
    """The batch-cost job's poller (None without an enforcer or a durable recorder)."""
    batches: BatchGateway | None = None
    """The files and batches routes' side of the gateway."""
    metrics: MetricsExporter | None = None
    """``GET /metrics`` (None when ``general_settings.metrics_enabled`` is off)."""
    alert_sender: AlertSender | None = None
    """The alert-sender job's sender (None without a configured alert channel)."""


def build_app(
    config: GatewayConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    admission: Admission | None = None,
    book: PriceBook | None = None,
    recorder_factory: Callable[[AsyncEngine], EventSink] | None = None,
    storage: Storage | None = None,
) -> GatewayApp:
    """The app ``spendgate serve`` runs.

    Args:
        config: the gateway config.
        transport: replaces the upstream transport (tests).
        admission: replaces budgets and rate limits (tests; default: the enforcer's).
        book: the price layers (default: the bundled catalogue).
        recorder_factory: replaces the spend recorder (tests; default: the journaled one).
        storage: the counter storage (default: from ``redis_url``, else in process).
    """
    general = config.general_settings
    settings = config.litellm_settings
    rules = AdjustmentRules.from_litellm(settings.cost_discount_config, settings.cost_margin_config)
    has_rules = bool(rules.discounts or rules.margins)
    book = book or default_price_book()
    deployments = build_deployments(
        config,
        book,
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
    if settings.budget_duration:
        parse_window(settings.budget_duration)  # a bad duration fails now, not on a request
    alerting = routing_from_config(config, os.environ)  # a bad channel setting fails now
    reports = report_specs(config, alerting)  # so does a report's
    for warning in (*config.warnings, *alerting.warnings):
        log.warning("config: %s", warning)
    if not general.master_key:
        log.warning("no master_key configured: the gateway accepts every request without a key")
    in_flight = InFlight()
    holder: dict[str, Services] = {}
    metrics = _request_metrics(config, router)
    cache = cache_from_config(config, {d.id: d for d in deployments})  # a bad setting fails now

    def served_by(group: str) -> list[str]:
        """A model group's deployment ids: where its per-model budgets are counted."""
        return [d.id for d in router.group(group) or ()]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            engine = create_engine(
                database_url(general.database_url),
                connect_timeout=general.database_connect_timeout_seconds,
                command_timeout=general.database_command_timeout_seconds,
                pool_timeout=general.database_pool_timeout_seconds,
            )
            stack.push_async_callback(engine.dispose)
            await _migrate(engine, run_migrations=general.run_migrations)
            redis_client = None
            if general.redis_url:
                import redis.asyncio as aioredis

                # Readiness pings only: bounded, so a Redis that drops packets cannot hang it.
                redis_client = aioredis.from_url(
                    general.redis_url, socket_connect_timeout=2.0, socket_timeout=2.0
                )
                stack.push_async_callback(redis_client.aclose)
            enforcer = None
            admitting = admission
            # Alerts decided on the request path are written off it; closed after the
            # in-flight requests have settled (callbacks run last-in, first-out).
            alert_recorder = AlertRecorder(async_sessionmaker(engine, expire_on_commit=False), alerting)
            await alert_recorder.start()
            stack.push_async_callback(alert_recorder.aclose)
            if admitting is None:
                counters = storage or _counter_storage(config)
                stack.push_async_callback(counters.close)
                enforcer = Enforcer(
                    counters,
                    mode=general.budget_mode,
                    lease_seconds=general.reservation_lease_seconds,
                    # A cold counter is seeded from the ledger: within the bounded wait, else 503.
                    loader=lambda budget, period: bounded(
                        lambda: period_spend(
                            engine,
                            budget,
                            period,
                            tz=settings.timezone,
                            served_by=served_by,
                        ),
                        general.database_lookup_timeout_seconds,
                    ),
                    fail_open_budgets=general.fail_open_budgets,
                    fail_open_rate_limits=general.fail_open_rate_limits,
                    watch=_crossing_watch(alerting, general.alerting_args, alert_recorder),
                )
                admitting = LimitsAdmission(enforcer, deployments, config)
            client = make_upstream_client(
                general.upstream_http_client,
                http2=general.upstream_http2,
                transport=transport,
                timeout=config.timeout,
            )
            stack.push_async_callback(client.aclose)
            if cache is not None:
                stack.push_async_callback(cache.close)
            if recorder_factory is not None:
                recorder: EventSink = recorder_factory(engine)
                start = getattr(recorder, "start", None)
                if start is not None:
                    await start()
            else:
                recorder = await _start_recorder(engine, _journal_dir(config))
            close = getattr(recorder, "close", None)
            if close is not None:
                stack.push_async_callback(close)
            sink = recorder  # what the pipeline and the poller record into
            telemetry = start_telemetry(config)  # None (and the SDK not imported) unless configured
            if telemetry is not None:
                stack.push_async_callback(asyncio.to_thread, telemetry.shutdown)
                sink = ObservedSink(recorder, telemetry.observe)
            # Requests a graceful stop cancelled still settle and record: let them end before
            # the recorder closes (callbacks run last-in, first-out).
            stack.push_async_callback(in_flight.drained, 5.0)
            reader = EntityReader(engine)
            scopes = ScopeResolver(
                reader,
                engine,
                tz=settings.timezone,
                rate_window=general.rate_limit_window_seconds,
                user_on_team_keys=general.apply_user_budget_to_team_keys,
                trust_end_user_field=general.trust_end_user_field,
                global_spec=LimitSpec(
                    max_budget_nanos=None if settings.max_budget is None else to_nano(settings.max_budget),
                    budget_duration=settings.budget_duration,
                ),
                end_user_default_nanos=None
                if settings.max_end_user_budget is None
                else to_nano(settings.max_end_user_budget),
                ttl_seconds=general.key_cache_ttl_seconds,
                stale_seconds=general.stale_cache_max_seconds,
                wait_seconds=general.database_lookup_timeout_seconds,
            )
            pipeline = Pipeline(
                router=router,
                auth=Authenticator(
                    general.master_key,
                    engine,
                    ttl_seconds=general.key_cache_ttl_seconds,
                    stale_seconds=general.stale_cache_max_seconds,
                    wait_seconds=general.database_lookup_timeout_seconds,
                ),
                scopes=scopes,
                admission=admitting,
                recorder=sink,
                client=client,
                max_body_bytes=config.max_request_bytes,
                forward_client_headers=general.forward_client_headers_to_llm_api,
                trusted_proxies=general.trusted_proxies,
                metrics=metrics,
                cache=cache,
            )
            exporter = None
            if metrics is not None:
                exporter = _exporter(config, metrics, engine, enforcer, holder, alerting)
                health = asyncio.create_task(report_health(metrics, _health_reader(in_flight, recorder)))
                stack.callback(health.cancel)
            jobs = JobRunner(lock_for(engine, general.redis_url, prefix=general.enforcement_key_prefix))
            ops = None
            if alerting.enabled:  # operational alerts (docs/alerts.md)
                ops = OperationalAlerts(
                    async_sessionmaker(engine, expire_on_commit=False),
                    alerting,
                    instance_id=f"{socket.gethostname()}:{os.getpid()}",
                )
                ping = redis_client.ping if redis_client is not None else None
                for job in operational_jobs(
                    ops, general.alerting_args, engine, redis_ping=ping, recorder=recorder
                ):
                    jobs.add(job)
            poller = None
            if enforcer is not None and getattr(recorder, "record_durable", None) is not None:
                poller = _batch_poller(config, engine, enforcer, sink, router, client, ops)
                jobs.add(_batch_cost_job(config, poller, metrics))
            alert_sender = None
            if alerting.enabled:
                alert_sender = AlertSender(
                    async_sessionmaker(engine, expire_on_commit=False),
                    alerting,
                    instance_id=f"{socket.gethostname()}:{os.getpid()}",
                    on_attempt=metrics.alert_delivery if metrics is not None else None,
                )
                stack.push_async_callback(alert_sender.aclose)  # after the job stops (LIFO)
                jobs.add(_alert_sender_job(alerting, alert_sender))
            if reports:
                scheduler = ReportScheduler(
                    async_sessionmaker(engine, expire_on_commit=False),
                    reports,
                    default_tz=settings.timezone,
                    global_budget=global_budget_of(config),
                )
                jobs.add(report_job(scheduler, general.alerting_args.report_check_interval_seconds))
            if general.alerting_args.budget_alerts:
                jobs.add(_alert_resolver_job(alerting, general.alerting_args, engine))
            await jobs.start()
            stack.push_async_callback(jobs.close)
            batches = BatchGateway(
                pipeline,
                engine,
                BatchSettings(
                    max_file_bytes=config.max_batch_file_bytes,
                    default_output_tokens=general.default_max_output_tokens,
                    lease_seconds=general.batch_max_age_hours * 3600 + 3600,
                ),
            )
            services = Services(
                pipeline,
                engine,
                recorder,
                client,
                scopes,
                jobs,
                redis_client,
                enforcer,
                poller,
                batches,
                exporter,
                alert_sender,
            )
            holder["services"] = app.state.services = services
            yield

    routes = gateway_routes(
        lambda: holder["services"].pipeline, ModelDirectory.build(config, deployments, book)
    )
    routes += batch_routes(lambda: _batches(holder["services"]))
    for path in ("/health/liveliness", "/health/liveness", "/health"):
        routes.append(Route(path, _liveliness, methods=["GET"]))
    routes.append(Route("/health/readiness", _readiness, methods=["GET"]))
    if metrics is not None:
        routes.append(Route("/metrics", _metrics, methods=["GET"]))
    routes.append(Route("/batches/poll", _poll_batches(general.master_key), methods=["POST"]))
    routes += admin_routes(
        AdminSettings.from_master_key(
            lambda request: request.app.state.services.engine,
            general.master_key,
            on_key_change=_forget_key,
            flush_ledger=_flush_ledger,
            on_key_spend_set=_set_key_counters,
            on_entity_change=_forget_entities,
            explainer=_explain,
            budget_exceeded_status=general.budget_exceeded_status,
            timezone=settings.timezone,
            global_max_budget_nanos=None if settings.max_budget is None else to_nano(settings.max_budget),
            served_by=served_by,
            alerting=alerting,
            currency=CurrencyDisplay(general.display_currency, general.exchange_rates_file)
            if general.display_currency
            else None,
        )
    )
    starlette = Starlette(
        routes=[*routes, *ui_routes(UiSettings(general.master_key, timezone=settings.timezone))],
        exception_handlers={
            HTTPException: _http_error,
            SpendgateError: _server_error(general.budget_exceeded_status),
            Exception: _server_error(general.budget_exceeded_status),
        },
        lifespan=lifespan,
    )
    return GatewayApp(
        starlette,
        lambda: holder["services"].pipeline,
        budget_exceeded_status=general.budget_exceeded_status,
        in_flight=in_flight,
    )


def _batch_poller(
    config: GatewayConfig,
    engine: AsyncEngine,
    enforcer: Enforcer,
    recorder: Any,
    router: Router,
    client: UpstreamClient,
    alerts: OperationalAlerts | None,
) -> BatchPoller:
    """The poller that bills finished batches once (:class:`~spendgate.batches.BatchPoller`),
    over every configured deployment."""
    deployments = {d.id: d for group in router.groups.values() for d in group}

    def polled(deployment_id: str) -> PolledDeployment | None:
        deployment = deployments.get(deployment_id)
        if deployment is None:
            return None
        return PolledDeployment(deployment, BatchUpstream(client, deployment.target, where=deployment.id))

    return BatchPoller(
        sessions=async_sessionmaker(engine, expire_on_commit=False),
        enforcer=enforcer,
        recorder=recorder,
        deployments=polled,
        instance_id=f"{socket.gethostname()}:{os.getpid()}",
        max_age=timedelta(hours=config.general_settings.batch_max_age_hours),
        claim_lease_seconds=config.general_settings.batch_claim_lease_seconds,
        alerts=alerts,
    )


def _batch_cost_job(config: GatewayConfig, poller: BatchPoller, metrics: RequestMetrics | None) -> Job:
    """The batch-cost job: every cycle, the unsettled batches are asked about at their
    deployments and the finished ones billed once."""
    general = config.general_settings

    async def run() -> None:
        cycle = await poller.run_once(datetime.now(UTC))
        if metrics is not None:
            metrics.batch_cycle(seen=cycle.seen, settled=cycle.settled, errors=cycle.errors)
        if cycle.seen:
            log.info("batch-cost cycle: %s", cycle)

    return Job(
        "batch-cost", general.batch_poll_interval_seconds, run, jitter=general.batch_poll_jitter_seconds
    )


def _alert_sender_job(alerting: AlertRouting, sender: AlertSender) -> Job:
    """The alert-sender job: every ``send_interval_seconds``, the due outbox rows are claimed,
    sent and their attempts logged (one instance at a time; the claims keep a row to one
    sender even if two run)."""

    async def run() -> None:
        await sender.run_once()

    return Job("alert-sender", alerting.policy.interval_seconds, run)


def _crossing_watch(
    alerting: AlertRouting, args: AlertingArgs, recorder: AlertRecorder
) -> CrossingWatch | None:
    """Budget crossings detected at settlement, handed to the alert recorder (DESIGN §5.13);
    None when ``alerting_args.budget_alerts`` is off."""
    if not args.budget_alerts:
        return None

    def sink(crossings: list[Crossing]) -> None:
        recorder.put((alert_of(c), partial(watch.forget, c.memo)) for c in crossings)

    watch = CrossingWatch(sink, thresholds=alerting.thresholds, forecast_after=args.forecast_after)
    return watch


def _alert_resolver_job(alerting: AlertRouting, args: AlertingArgs, engine: AsyncEngine) -> Job:
    """The alert-resolver job: budget alerts of periods that ended are resolved once."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def run() -> None:
        async with sessions.begin() as session:
            created = await resolve_ended(session, alerting, datetime.now(UTC))
        if created:
            log.info("resolved the budget alerts of %d ended period(s)", created)

    return Job("alert-resolver", args.resolve_interval_seconds, run)


def _poll_batches(master_key: str | None) -> Callable[[Request], Any]:
    """``POST /batches/poll`` (master key only; ``spendgate batches poll``): one batch-cost
    cycle now, on this instance. Safe beside the job's own cycles: every batch is claimed
    before it is billed."""
    master_hash = hash_key(master_key) if master_key else None

    async def poll(request: Request) -> Response:
        raw = key_from_headers(header_map(request.scope["headers"]))
        if master_hash is not None:
            if raw is None:
                raise AuthenticationFailed("no API key: send Authorization: Bearer <master key>")
            if not hmac.compare_digest(hash_key(raw), master_hash):
                raise PermissionDenied("only the master key may run a batch-cost cycle")
        services: Services = request.app.state.services
        if services.batch_poller is None:
            raise NotAvailable(
                "the batch-cost job is not running on this gateway (it runs its own admission)",
                code="batch_poller_unavailable",
            )
        cycle = await services.batch_poller.run_once(datetime.now(UTC))
        body = {"seen": cycle.seen, "settled": cycle.settled, "stale": cycle.stale, "errors": cycle.errors}
        return Response(orjson.dumps(body), media_type="application/json")

    return poll


def _request_metrics(config: GatewayConfig, router: Router) -> RequestMetrics | None:
    """The process's metrics; every configured model name is a label value, others ``other``."""
    if not config.general_settings.metrics_enabled:
        return None
    names = {name for name in router.groups}
    names.update(d.target.model for group in router.groups.values() for d in group)
    names.update(d.litellm_params.model for d in config.model_list)
    end_user = config.litellm_settings.enable_end_user_cost_tracking_prometheus_only
    return RequestMetrics(LabelPolicy(names, end_user=end_user))


def _exporter(
    config: GatewayConfig,
    metrics: RequestMetrics,
    engine: AsyncEngine,
    enforcer: Enforcer | None,
    holder: dict[str, Services],
    alerting: AlertRouting,
) -> MetricsExporter:
    general = config.general_settings
    budgets = None
    if enforcer is not None:
        budgets = BudgetReader(
            engine,
            enforcer,
            tz=config.litellm_settings.timezone,
            cap=general.metrics_max_budget_entities,
            entity_ttl=max(general.key_cache_ttl_seconds, 1.0),
            rate_window=general.rate_limit_window_seconds,
        )
    authorize = None
    if config.litellm_settings.require_auth_for_metrics_endpoint:

        async def authorize(request: Request) -> None:
            await holder["services"].pipeline.auth.authenticate(header_map(request.scope["headers"]))

    outbox = None
    if alerting.enabled:
        sessions = async_sessionmaker(engine)

        async def pending() -> int:
            async with sessions() as session:
                return await OutboxRepository(session).pending_count()

        outbox = OutboxCollector(pending)
    return MetricsExporter(metrics, budgets, authorize, outbox=outbox)


def _health_reader(in_flight: InFlight, recorder: EventSink) -> Callable[[], tuple[int, int, int, int]]:
    def read() -> tuple[int, int, int, int]:
        stats = getattr(recorder, "stats", None)
        if stats is None:
            return in_flight.count, 0, 0, 0
        return in_flight.count, stats.queue_depth, stats.journal_bytes, stats.failed

    return read


async def _metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    assert services.metrics is not None  # the route exists only with metrics on
    return await services.metrics.endpoint(request)


def _batches(services: Services) -> BatchGateway:
    assert services.batches is not None  # built with the pipeline, in the lifespan
    return services.batches


def _counter_storage(config: GatewayConfig) -> Storage:
    general = config.general_settings
    if general.redis_url:
        # A cold burst opens many connections at once on a busy event loop: give the connect
        # more than the storage's 1 s default before failing (closed) on it.
        return storage_from_url(
            general.redis_url,
            prefix=general.enforcement_key_prefix,
            socket_connect_timeout=5.0,
            socket_timeout=5.0,
        )
    return storage_from_url("memory://", prefix=general.enforcement_key_prefix)


async def _migrate(engine: AsyncEngine, *, run_migrations: bool) -> None:
    if run_migrations:
        await upgrade(engine)
        return
    status = await schema_status(engine)
    if not status.up_to_date:
        raise ConfigurationError(
            f"database {status.url} is at revision {status.current}, not {status.head}: "
            "run `spendgate db upgrade` (or set general_settings.run_migrations: true)"
        )


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


def _forget_key(request: Request, key: str) -> None:
    """Drop a changed key from the caches (``key``: its hash or its stable id)."""
    services: Services = request.app.state.services
    services.pipeline.auth.forget(key)
    services.scopes.forget(key)


def _forget_entities(request: Request) -> None:
    """An entity changed through the management API: drop every cached key look-up and
    entity, so a new budget, a block or a membership applies to the next request."""
    services: Services = request.app.state.services
    services.pipeline.auth.forget()
    services.scopes.forget()


async def _flush_ledger(request: Request) -> None:
    """Wait until this instance's acknowledged spend events are in the ledger (before a
    key's spend is set from it: ``/key/update`` with ``spend``)."""
    flush = getattr(request.app.state.services.recorder, "flush", None)
    if flush is not None:
        await flush(timeout=30)


async def _set_key_counters(request: Request, key_id: str) -> None:
    """A key's spend was set in the ledger: set its main budget window's counter from the
    ledger (the shared Redis one reaches every instance), keeping the reservations of calls
    in flight. Its other windows count real spend and are left as they are."""
    services: Services = request.app.state.services
    if services.enforcer is None:
        return
    await _flush_ledger(request)  # what this instance settled meanwhile is in the ledger too
    budgets = await services.scopes.explain_limits(key_id=key_id, end_user=None, tags=(), model=None)
    main = [b for b in budgets if b.scope == Scope("key", key_id) and b.counts_adjustments]
    await services.enforcer.set_from_ledger(main)


async def _explain(request: Request, target: ExplainTarget) -> list[ScopeWindowState]:
    """/budget/explain: the same scopes and limits the admission checks for the key."""
    services: Services = request.app.state.services
    if services.enforcer is None:
        raise NotAvailable("budget explain is not available: this gateway runs its own admission")
    budgets = await services.scopes.explain_limits(
        key_id=target.key_id, end_user=target.customer, tags=target.tags, model=target.model
    )
    # Cold counters are seeded from the ledger first, as the admission does.
    return await explain(services.enforcer, EnforcementRequest("explain", budgets, (), 0, 0))


async def _liveliness(request: Request) -> Response:
    return Response(orjson.dumps({"status": "alive"}), media_type="application/json")


async def _readiness(request: Request) -> Response:
    services: Services = request.app.state.services
    report: dict[str, Any] = {"status": "healthy"}
    try:
        async with services.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        report["database"] = "connected"
    except Exception as exc:
        report["database"] = f"error: {type(exc).__name__}"
        report["status"] = "unhealthy"
    if services.redis is None:
        report["redis"] = "not configured"
    else:
        try:
            await services.redis.ping()
            report["redis"] = "connected"
        except Exception as exc:
            report["redis"] = f"error: {type(exc).__name__}"
            report["status"] = "unhealthy"
    stats = getattr(services.recorder, "stats", None)
    if stats is not None:
        report["recorder_queue"] = stats.queue_depth
    code = 200 if report["status"] == "healthy" else 503
    return Response(orjson.dumps(report), status_code=code, media_type="application/json")


def _server_error(budget_status: int) -> Callable[[Request, Exception], Any]:
    async def handle(request: Request, exc: Exception) -> Response:
        status, body, headers = render_error(exc, budget_status=budget_status)
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    return handle


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
