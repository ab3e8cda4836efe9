"""How one management request is served, top to bottom.

authenticate (401 before anything else) → read and parse the body or query (400: empty,
not JSON, not an object; 413) → validate it against the endpoint's pydantic model, strictly
for a JSON body (422 naming the field) → open **one** transaction → resolve the caller's
role → run the handler (which may raise 403 / 404 / 409 / 422) → commit → answer JSON.
Any error rolls the whole transaction back, so a failing request never leaves a partial
write. Errors are rendered by the gateway's one renderer
(:func:`spendgate.http.errors.render_error`), in the OpenAI error shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm.exc import StaleDataError
from starlette.requests import Request
from starlette.responses import Response

from spendgate.admin.currency import CurrencyDisplay
from spendgate.admin.entity_spend import SpendAt
from spendgate.admin.roles import Caller, resolve_caller
from spendgate.alerts.settings import AlertRouting
from spendgate.core.keys import hash_key
from spendgate.entities.repository import EntityRepository
from spendgate.entities.service import EntityService
from spendgate.http.body import read_body
from spendgate.http.credentials import key_from_headers
from spendgate.http.errors import (
    AuthenticationFailed,
    Conflict,
    DatabaseBusy,
    DatabaseUnavailable,
    InvalidField,
    MalformedRequest,
    PermissionDenied,
    is_database_outage,
    is_pool_exhausted,
    render_error,
)

__all__ = [
    "AdminSettings",
    "Context",
    "Endpoint",
    "endpoint",
    "make_handler",
    "validation_message",
]

log = logging.getLogger("spendgate.admin")

MAX_BODY_BYTES = 1 << 20
BUSY_RETRY_AFTER_SECONDS = 1
"""``Retry-After`` of a 503 ``database_busy`` (a wait for a pooled connection)."""


@dataclass(slots=True)
class Context:
    """What a handler gets: the entity service over the open session (never committed by
    the handler), the caller, the request time, and the hashes of keys it changed (their
    cached look-ups are dropped after the commit)."""

    entities: EntityService
    caller: Caller
    now: datetime
    request: Request
    settings: AdminSettings
    changed_keys: list[str] = field(default_factory=list)
    spend_set_keys: list[str] = field(default_factory=list)
    """The ``key_id`` of keys whose spend was set (``/key/update`` with ``spend``): their
    budget counters are set from the ledger after the commit (``on_key_spend_set``)."""

    @property
    def repo(self) -> EntityRepository:
        return self.entities.repo

    @property
    def spend_at(self) -> SpendAt:
        """When the entity views read spend, in which default zone, with the router's model
        groups (so a model window is read as the enforcer counts it)."""
        return SpendAt(self.now, self.settings.timezone, self.settings.served_by)


Handler = Callable[[Context, Any], Awaitable[Any]]
Explainer = Callable[[Request, Any], Awaitable[Any]]
"""``(request, ExplainTarget) -> Sequence[ScopeWindowState]``."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One management route: path, methods, input model, handler, and whether it writes.

    ``body`` models are read from the JSON body, ``query`` models from the query string.
    Read-only roles (``proxy_admin_viewer``, ``internal_user_viewer``) get 403 on every
    endpoint with ``write=True``; finer, per-object rules live in the handlers.
    """

    path: str
    methods: tuple[str, ...]
    handler: Handler
    summary: str
    tag: str
    write: bool
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path_param: str | None = None
    """A ``{name}`` in the path whose value is passed as this body field (``/key/{key}/regenerate``)."""
    plain_keys: bool = False
    """A key that belongs to no user may call it (the spend reads: it reads its own spend)."""
    media_type: str = "application/json"
    """What a 200 answers (an export: ``text/csv``)."""


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """How the admin routes find the database and the master key.

    ``engine`` is an engine, or a function of the request returning one (the gateway opens
    its engine in the lifespan, after the routes are built). ``on_key_change(request, hash)``
    is called, after the commit, for every key that was blocked, deleted, regenerated or
    updated (the gateway drops its cached look-up of it); ``on_entity_change(request)`` after
    every committed write.
    """

    engine: AsyncEngine | Callable[[Request], AsyncEngine]
    master_key_hash: str | None
    on_key_change: Callable[[Request, str], None] | None = None
    on_entity_change: Callable[[Request], None] | None = None
    """Called after every committed write (a team, user, organization, customer, budget or
    key changed): the gateway drops its cached entities, so a new budget, a block or a
    membership takes effect on this instance at once (other instances: within the cache TTL)."""
    flush_ledger: Callable[[Request], Awaitable[None]] | None = None
    """Wait until the spend events this instance acknowledged are in the ledger (before a
    key's spend is set from it, so what it spent so far is counted); None: nothing to wait for."""
    on_key_spend_set: Callable[[Request, str], Awaitable[None]] | None = None
    """Called after the commit with the ``key_id`` of a key whose spend was set: its budget
    counters are set from the ledger (:meth:`spendgate.enforcement.Enforcer.set_from_ledger`)."""
    explainer: Explainer | None = None
    """What ``/budget/explain`` asks (see :mod:`spendgate.admin.budget_explain`); None: answers 501."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    budget_exceeded_status: int = 429
    """The status of a budget-exceeded error (``general_settings.budget_exceeded_status``)."""
    timezone: str = "UTC"
    """The IANA zone of budget calendars (``litellm_settings.timezone``): the entity views
    show each window's current period in it, as the enforcer counts it (a window with its
    own zone keeps its own)."""
    global_max_budget_nanos: int | None = None
    """The proxy-wide budget (``litellm_settings.max_budget``), which ``/global/spend`` shows."""
    served_by: Callable[[str], Sequence[str]] | None = None
    """A model group's deployment ids (the gateway's router): the entity views read a
    ``model_max_budget`` window by them, as enforcement counts it; None (the admin app run
    alone): by the model that served (:mod:`spendgate.admin.entity_spend`)."""
    alerting: AlertRouting | None = None
    currency: CurrencyDisplay | None = None
    """``general_settings.display_currency`` and its rates: spend endpoints add a ``display``
    object (docs/spend-api.md, "Currency"); None: USD only."""
    """The configured alert channels (``POST /alerting/test`` enqueues to them); None: none."""

    @classmethod
    def from_master_key(
        cls,
        engine: AsyncEngine | Callable[[Request], AsyncEngine],
        master_key: str | None,
        **kwargs: Any,
    ) -> AdminSettings:
        return cls(engine, hash_key(master_key) if master_key else None, **kwargs)

    def engine_for(self, request: Request) -> AsyncEngine:
        if isinstance(self.engine, AsyncEngine):
            return self.engine
        return self.engine(request)


def endpoint(
    path: str,
    handler: Callable[..., Any],
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    methods: tuple[str, ...] | None = None,
    write: bool = True,
    path_param: str | None = None,
    plain_keys: bool = False,
    media_type: str = "application/json",
) -> Endpoint:
    """An :class:`Endpoint`: GET when it reads a query, else POST; tagged by its first path part."""
    return Endpoint(
        path=path,
        methods=methods or (("GET",) if query is not None else ("POST",)),
        handler=handler,
        summary=summary,
        tag=path.strip("/").split("/")[0],
        write=write,
        body=body,
        query=query,
        path_param=path_param,
        plain_keys=plain_keys,
        media_type=media_type,
    )


def validation_message(exc: ValidationError) -> tuple[str, str | None]:
    """A one-line message and the ``param`` (dotted field path) of the first error."""
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown field {loc!r}", loc or None
    if first["type"] == "missing":
        return f"{loc}: field required", loc or None
    msg = str(first["msg"]).removeprefix("Value error, ")
    return (f"{loc}: {msg}" if loc else msg), loc or None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


async def _parse(endpoint: Endpoint, request: Request) -> Any:
    data: dict[str, Any]
    if endpoint.body is not None:
        raw = await read_body(request, MAX_BODY_BYTES, request.headers.get("content-length"))
        if raw.strip():
            try:
                # Decimal, not float: a USD amount with 18 significant digits stays exact.
                loaded = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
            except (ValueError, RecursionError) as exc:
                raise MalformedRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
            if not isinstance(loaded, dict):
                raise MalformedRequest("the body must be a JSON object", code="invalid_json")
            data = loaded
        elif endpoint.path_param is not None:
            data = {}  # LiteLLM's /key/{key}/regenerate takes an optional body
        else:
            raise MalformedRequest("the request body is empty: send a JSON object", code="missing_body")
        if endpoint.path_param is not None:
            data[endpoint.path_param] = request.path_params[endpoint.path_param]
        model: type[BaseModel] = endpoint.body
        strict = True  # JSON has types: "5" is not a number, 1 is not a boolean
    elif endpoint.query is not None:
        data = dict(request.query_params)
        for name, _ in request.query_params.multi_items():
            if len(request.query_params.getlist(name)) > 1:
                raise InvalidField(f"{name}: given more than once", param=name)
        model = endpoint.query
        strict = False  # a query string is text: ?page=2 is the number 2
    else:
        return None
    try:
        return model.model_validate(data, strict=strict)
    except ValidationError as exc:
        message, param = validation_message(exc)
        raise InvalidField(message, param=param) from None


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def make_handler(endpoint: Endpoint, settings: AdminSettings) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint for ``endpoint``: always answers, never raises."""

    async def handle(request: Request) -> Response:
        try:
            return await _serve(endpoint, settings, request)
        except Exception as exc:  # a GatewayError, or a bug (logged with its traceback, answered without)
            status, body, headers = render_error(exc, budget_status=settings.budget_exceeded_status)
            return Response(body, status_code=status, media_type="application/json", headers=headers)

    handle.__name__ = "admin_" + endpoint.path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    return handle


async def _serve(endpoint: Endpoint, settings: AdminSettings, request: Request) -> Response:
    if settings.master_key_hash is None:
        raise AuthenticationFailed(
            "the management API is disabled: set general_settings.master_key", code="no_master_key"
        )
    raw_key = key_from_headers(request.headers)
    if raw_key is None:
        raise AuthenticationFailed(
            "no API key: send it as 'Authorization: Bearer <key>'", code="missing_api_key"
        )
    engine = settings.engine_for(request)
    now = settings.clock()
    changed: Sequence[str]
    spend_set: Sequence[str]
    try:
        async with AsyncSession(engine, expire_on_commit=False) as session:
            # Authenticate before parsing: an unauthenticated caller learns nothing about fields.
            async with session.begin():
                repo = EntityRepository(session)
                caller = await resolve_caller(repo, raw_key, settings.master_key_hash, now)
                if caller.role is None and not endpoint.plain_keys:
                    raise PermissionDenied(
                        "this key belongs to no user, so it has no management rights", code="no_role"
                    )
                if endpoint.write and caller.read_only:
                    raise PermissionDenied(
                        f"role {caller.role} is read-only: {request.method} {endpoint.path} is not allowed"
                    )
                parsed = await _parse(endpoint, request)
                service = EntityService(repo, now=now, by=caller.name)
                ctx = Context(service, caller, now, request, settings)
                result = await endpoint.handler(ctx, parsed)
                # Serialised before the commit: an answer that cannot be written rolls the
                # change back rather than reporting a failure for a change that was made.
                answer = result if isinstance(result, Response) else _json(result)
                changed = ctx.changed_keys
                spend_set = ctx.spend_set_keys
            # Leaving ``session.begin()`` without an error committed the one transaction.
    except IntegrityError as exc:
        log.info("admin write refused by the database: %s", exc.orig)
        raise Conflict(
            "the change conflicts with existing data (a duplicate id or alias, or an object in use)"
        ) from None
    except StaleDataError as exc:  # the row was deleted or re-keyed since this request read it
        log.info("admin write lost a race with another request: %s", exc)
        raise Conflict(
            "the object was changed or deleted by another request at the same time; nothing "
            "was changed by this one: read it again and retry if it still applies"
        ) from None
    except DataError as exc:  # e.g. a text longer than its column on PostgreSQL
        log.info("admin write refused by the database: %s", exc.orig)
        raise InvalidField("a value does not fit its database column (too long?)") from None
    except Exception as exc:  # unreachable: OperationalError, or the driver's own errors unwrapped
        if not is_database_outage(exc):
            raise
        if is_pool_exhausted(exc):
            log.warning("admin request refused: no free database connection in time: %s", exc)
            raise DatabaseBusy(
                "no database connection came free in time: every pooled connection stayed in "
                "use for the pool's whole wait (more work in flight than connections, or a "
                "database slow to answer); nothing was changed; try again shortly",
                headers={"retry-after": str(BUSY_RETRY_AFTER_SECONDS)},
            ) from None
        log.warning("admin request failed: database unavailable: %s: %s", type(exc).__name__, exc)
        raise DatabaseUnavailable("the database is unavailable; nothing was changed") from None
    if settings.on_key_change is not None:
        for key_hash in dict.fromkeys(changed):
            settings.on_key_change(request, key_hash)
    if endpoint.write and settings.on_entity_change is not None:
        settings.on_entity_change(request)
    if settings.on_key_spend_set is not None:
        for key_id in dict.fromkeys(spend_set):
            await settings.on_key_spend_set(request, key_id)
    return answer  # (a Response as the handler gave it: e.g. an export streamed from its own connection)
