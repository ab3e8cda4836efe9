"""Budgets and rate limits in the gateway: the :class:`~spendgate.gateway.admission.Admission`
protocol on top of :class:`spendgate.enforcement.Admission`.

A request is admitted in two steps, each one atomic enforcement admission (all or
nothing; one Redis round trip with ``redis_url``), entities cached per key for
``general_settings.key_cache_ttl_seconds`` and dropped at once when the management API
changes the key.

**1. The request** (:meth:`GatewayLimits.admit`, before routing): the scopes the caller
belongs to, whichever deployment serves it::

    global       litellm_settings.max_budget + budget_duration
    key          the key's max_budget, budget_duration, budget_limits, soft_budget,
                 temp_budget_increase, rpm/tpm/rpd/tpd_limit, max_parallel_requests
    user         the key owner's limits (skipped for team keys unless
                 general_settings.apply_user_budget_to_team_keys, as LiteLLM)
    team         the team's limits
    team_member  the member's budget inside the team (team/member_add's max_budget_in_team)
    organization the organization of the key (or of its team)
    end_user     the request's customer; an unknown one gets litellm_settings.max_end_user_budget;
                 one that belongs to a team or organization may be named only by its keys
                 (:class:`CustomerOwners`: 403 naming the field otherwise)
    tag          every tag of the key and of the request with a budget profile

The worst case reserved is the largest over every deployment the call may be billed at
(the model group and its fallback groups): the prompt estimate at the input rate plus the
largest declared output cap (else the catalogue's maximum output, else
``general_settings.default_max_output_tokens``) at the output rate, times ``n`` (or
``best_of`` when larger), at the rates of the service tier requested when it is dearer
than standard (``priority``). Token ids in a pre-tokenized prompt count one token each.

**2. Each attempt, at the deployment routing picks** (:meth:`GatewayLimits.attempts`, the
router's gate), with the worst case priced at that deployment::

    key_model    the key's model_max_budget / model_rpm_limit / model_tpm_limit for the
                 model group of the deployment (a fallback is checked at its own group)
    team_model   the same for the team
    provider     router_settings.provider_budget_config[provider]
    deployment   litellm_params.max_budget + budget_duration, rpm, tpm

A deployment that refuses is skipped for the next one, then the fallbacks; the budget is
so checked at the deployment actually billed, again on fallback. The serving attempt's hold
rides on the request's ticket: settled with the real cost, or released, with it. A failed
attempt's hold is released (its request still counts against request-rate limits: it was
sent).

Entity fields are read first from the entity, then from its ``budget_id`` profile.
Strictest wins: every scope is checked.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy import insert as sa_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.config import GatewayConfig
from spendgate.core.money import to_nano
from spendgate.core.periods import Period, parse_window
from spendgate.core.usage.model import Usage
from spendgate.core.usage.tier import requested_service_tier
from spendgate.enforcement import Admission as Enforcement
from spendgate.enforcement import (
    BudgetLimit,
    EnforcementRequest,
    RateLimit,
    Scope,
    ScopeWindowState,
    Storage,
    declared_max_output,
    explain,
    scope_limits,
    storage_from_url,
    worst_case_nanos,
)
from spendgate.enforcement import Ticket as EnforcementTicket
from spendgate.enforcement.estimate import declared_choices
from spendgate.errors import StorageError
from spendgate.gateway.admission import ATTEMPT_HOLDS, AdmissionRequest, Ticket
from spendgate.gateway.lookups import LookupCache, bounded, database_health
from spendgate.gateway.routing import Deployment, Router, billed_tier
from spendgate.http.errors import CustomerNotAllowed, GatewayError, PermissionDenied
from spendgate.http.headers import limit_headers
from spendgate.ledger.rebuild import current_period_spend
from spendgate.stores.database.models import (
    Budget,
    BudgetWindow,
    EndCustomer,
    Organization,
    SpendEventRow,
    Tag,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)

__all__ = [
    "END_USER_HEADER",
    "CustomerOwners",
    "GatewayLimits",
    "LimitSpec",
    "LimitsUnavailable",
    "trusted_peer",
]

log = logging.getLogger("spendgate.gateway")

END_USER_HEADER = "x-spendgate-end-user"
"""Names the end customer; trusted only from ``general_settings.trusted_proxies``."""

T = TypeVar("T")

# Enforcement scope type → the ledger's rebuild scope type (``ledger.rebuild``).
_LEDGER_SCOPE = {
    "global": "global",
    "key": "key",
    "user": "user",
    "team": "team",
    "organization": "org",
    "end_user": "customer",
    "tag": "tag",
}


class LimitsUnavailable(GatewayError):
    """The counter storage is down and the fail-closed policy applies."""

    status = 503
    type = "service_unavailable"
    code = "limits_unavailable"


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One entity's budget and rate-limit fields (money in nano-USD)."""

    max_budget_nanos: int | None = None
    soft_budget_nanos: int | None = None
    budget_duration: str | None = None
    windows: tuple[tuple[str, int | None, str | None], ...] = ()
    """``budget_limits``: (duration, max nanos, timezone)."""
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    rpd_limit: int | None = None
    tpd_limit: int | None = None
    max_parallel_requests: int | None = None
    model_max_budget: Mapping[str, Any] = field(default_factory=dict)
    model_rpm_limit: Mapping[str, Any] = field(default_factory=dict)
    model_tpm_limit: Mapping[str, Any] = field(default_factory=dict)
    temp_increase_nanos: int = 0
    temp_expiry: datetime | None = None
    blocked: bool = False

    def limits(
        self, scope: Scope, *, tz: str, rate_window: float
    ) -> tuple[list[BudgetLimit], list[RateLimit]]:
        budgets, rates = scope_limits(
            scope,
            max_budget_nanos=self.max_budget_nanos,
            budget_duration=self.budget_duration,
            soft_budget_nanos=self.soft_budget_nanos,
            tz=tz,
            temp_increase_nanos=self.temp_increase_nanos,
            temp_expiry=self.temp_expiry,
            rpm_limit=self.rpm_limit,
            tpm_limit=self.tpm_limit,
            rpd_limit=self.rpd_limit,
            tpd_limit=self.tpd_limit,
            max_parallel_requests=self.max_parallel_requests,
            rate_window_seconds=rate_window,
        )
        for duration, max_nanos, window_tz in self.windows:
            budgets.append(BudgetLimit.of(scope, duration, max_nanos, tz=window_tz or tz))
        return budgets, rates

    def model_limits(
        self, scope: Scope, model: str, *, tz: str, rate_window: float
    ) -> tuple[list[BudgetLimit], list[RateLimit]]:
        """``model_max_budget[model]`` and ``model_rpm_limit`` / ``model_tpm_limit[model]``."""
        cfg = self.model_max_budget.get(model)
        cfg = cfg if isinstance(cfg, Mapping) else {}
        rpm = _int(self.model_rpm_limit.get(model))
        tpm = _int(self.model_tpm_limit.get(model))
        rpm = _min(rpm, _int(cfg.get("rpm_limit")))
        tpm = _min(tpm, _int(cfg.get("tpm_limit")))
        return scope_limits(
            scope,
            max_budget_nanos=_int(cfg.get("max_budget_nanos")),
            budget_duration=cfg.get("budget_duration")
            if isinstance(cfg.get("budget_duration"), str)
            else None,
            tz=tz,
            rpm_limit=rpm,
            tpm_limit=tpm,
            rate_window_seconds=rate_window,
        )


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _spec(row: Any, profile: Budget | None, windows: Sequence[BudgetWindow] = ()) -> LimitSpec:
    """An entity's fields, falling back to its budget profile's where the entity has none."""

    def pick(name: str) -> Any:
        value = getattr(row, name, None) if row is not None else None
        if value is None and profile is not None:
            value = getattr(profile, name, None)
        return value

    metadata = getattr(row, "metadata_", None) or {}
    metadata = metadata if isinstance(metadata, dict) else {}
    expiry: datetime | None = None
    raw_expiry = metadata.get("temp_budget_expiry")
    if isinstance(raw_expiry, str):
        try:
            expiry = datetime.fromisoformat(raw_expiry)
            expiry = expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
        except ValueError:
            expiry = None
    model_rpm = metadata.get("model_rpm_limit")
    model_tpm = metadata.get("model_tpm_limit")
    return LimitSpec(
        max_budget_nanos=pick("max_budget_nanos"),
        soft_budget_nanos=pick("soft_budget_nanos"),
        budget_duration=pick("budget_duration"),
        windows=tuple((w.budget_duration, w.max_budget_nanos, w.timezone) for w in windows),
        tpm_limit=pick("tpm_limit"),
        rpm_limit=pick("rpm_limit"),
        rpd_limit=_int(metadata.get("rpd_limit")),
        tpd_limit=pick("tpd_limit"),
        max_parallel_requests=pick("max_parallel_requests"),
        model_max_budget=pick("model_max_budget") or {},
        model_rpm_limit=model_rpm if isinstance(model_rpm, dict) else {},
        model_tpm_limit=model_tpm if isinstance(model_tpm, dict) else {},
        temp_increase_nanos=_int(metadata.get("temp_budget_increase_nanos")) or 0,
        temp_expiry=expiry,
        blocked=bool(getattr(row, "blocked", False)),
    )


@dataclass(frozen=True, slots=True)
class KeyEntities:
    """The entities above one key, as stored (loaded once per cache TTL)."""

    key: LimitSpec
    user_id: str | None = None
    user: LimitSpec | None = None
    team_id: str | None = None
    team: LimitSpec | None = None
    member: LimitSpec | None = None
    organization_id: str | None = None
    organization: LimitSpec | None = None
    end_user_id: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomerOwners:
    """Who may bill a customer by naming it in a request (docs/enforcement.md, "Whose
    customer"): its own ``team_id`` / ``organization_id``, plus the team (else the
    organization, else the user) of every key bound to it. Nobody: any key may."""

    teams: frozenset[str] = frozenset()
    organizations: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.teams or self.organizations or self.users)

    def allow(self, ents: KeyEntities | None) -> bool:
        """Whether a key with these entities may bill the customer."""
        if not self:
            return True
        if ents is None:
            return False
        return (
            (ents.team_id is not None and ents.team_id in self.teams)
            or (ents.organization_id is not None and ents.organization_id in self.organizations)
            or (ents.user_id is not None and ents.user_id in self.users)
        )


def named_customer_param(request: AdmissionRequest) -> str | None:
    """The request field that named its customer (``user``, ``metadata.user_id`` or the
    trusted proxy's header), or None when there is none or the key is bound to it."""
    end_user = request.scopes.end_user
    if not end_user or request.principal.end_user_id == end_user:
        return None
    payload = request.payload
    if payload.get("user") == end_user:
        return "user"
    metadata = payload.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("user_id") == end_user:
        return "metadata.user_id"
    return END_USER_HEADER


def trusted_peer(host: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """True when ``host`` (the TCP peer) is inside one of ``networks``."""
    if not host or not networks:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


@dataclass(slots=True)
class _CallContext:
    """What the attempt gate needs of a call, kept on its ticket."""

    request_id: str
    key_id: str | None
    prompt_tokens: int
    output_tokens: int
    attempts: int = 0
    service_tier: str | None = None


class _AttemptGate:
    """The router's gate for one call: admits each attempt at its deployment (step 2 of the
    module docstring)."""

    def __init__(self, limits: GatewayLimits, ticket: Ticket, call: _CallContext) -> None:
        self.limits = limits
        self.ticket = ticket
        self.call = call

    async def take(self, deployment: Deployment) -> EnforcementTicket | None:
        limits, call = self.limits, self.call
        budgets, rates = await limits.deployment_limits(call.key_id, deployment)
        if not budgets and not rates:
            return None
        call.attempts += 1
        estimate = (
            limits.worst_case_at(deployment, call.prompt_tokens, call.output_tokens, call.service_tier)
            if budgets
            else 0
        )
        # One id per attempt: settle and release are idempotent by request id.
        hold_id = f"{call.request_id}@{deployment.id}#{call.attempts}"
        tokens = call.prompt_tokens + call.output_tokens
        request = EnforcementRequest(hold_id, budgets, rates, estimate, tokens)
        try:
            hold = await limits.enforcement.admit(request)
        except StorageError as exc:
            log.error("deployment %s: limits unavailable: %s", deployment.id, exc, exc_info=True)
            raise LimitsUnavailable(
                "deployment limits cannot be checked right now (counter storage unavailable)"
            ) from exc
        # The response headers name the tightest limit of both admissions.
        inner = self.ticket.data.get("ticket")
        self.ticket.headers = limit_headers(*(t for t in (inner, hold) if isinstance(t, EnforcementTicket)))
        return hold

    async def release(self, hold: object) -> None:
        if isinstance(hold, EnforcementTicket):
            await self.limits.enforcement.release(hold)


class GatewayLimits:
    """Budgets and rate limits for the gateway (the pipeline's ``admission``).

    Args:
        config: the gateway config (``general_settings``: ``redis_url``, ``budget_mode``,
            ``fail_open_*``, ``apply_user_budget_to_team_keys``, ``default_max_output_tokens``,
            ``enforcement_key_prefix``, ``rate_limit_window_seconds``,
            ``reservation_lease_seconds``; ``litellm_settings``: ``max_budget``,
            ``budget_duration``, ``max_end_user_budget``, ``timezone``).
        engine: the database (entities; the ledger seeds cold counters).
        router: the model groups (their deployments' prices bound the worst case).
        storage: the counter storage (default: from ``redis_url``, else in-process).
        clock: seconds since the epoch (the enforcement's clock).
    """

    def __init__(
        self,
        config: GatewayConfig,
        engine: AsyncEngine,
        router: Router,
        *,
        storage: Storage | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        general = config.general_settings
        settings = config.litellm_settings
        self.engine = engine
        self.router = router
        self.fallbacks = config.fallbacks
        self.tz = settings.timezone
        self.rate_window = general.rate_limit_window_seconds
        self.default_output = general.default_max_output_tokens
        self.user_on_team_keys = general.apply_user_budget_to_team_keys
        self.global_spec = LimitSpec(
            max_budget_nanos=None if settings.max_budget is None else to_nano(settings.max_budget),
            budget_duration=settings.budget_duration,
        )
        # Fixed by the config: built once, not per request.
        self._global_limits = self.global_spec.limits(
            Scope("global"), tz=self.tz, rate_window=self.rate_window
        )
        self.end_user_default = (
            None if settings.max_end_user_budget is None else to_nano(settings.max_end_user_budget)
        )
        if storage is None:
            if general.redis_url:
                # A cold burst opens many connections at once on a busy event loop: give the
                # connect more than the storage's 1 s default before failing (closed) on it.
                storage = storage_from_url(
                    general.redis_url,
                    prefix=general.enforcement_key_prefix,
                    socket_connect_timeout=5.0,
                    socket_timeout=5.0,
                )
            else:
                storage = storage_from_url("memory://", prefix=general.enforcement_key_prefix)
        self.storage = storage
        self.enforcement = Enforcement(
            storage,
            mode=general.budget_mode,
            lease_seconds=general.reservation_lease_seconds,
            clock=clock,
            # A cold counter is seeded from the ledger: within the bounded wait, else 503.
            loader=lambda budget, period: bounded(
                lambda: self._ledger_spend(budget, period), general.database_lookup_timeout_seconds
            ),
            fail_open_budgets=general.fail_open_budgets,
            fail_open_rate_limits=general.fail_open_rate_limits,
        )
        self._deployment_static = {
            d.id: self._static_deployment_limits(d, config) for group in router.groups.values() for d in group
        }
        ttl = general.key_cache_ttl_seconds
        # Through a database outage: bounded waits, cached entities honoured past their TTL.
        stale, wait = general.stale_cache_max_seconds, general.database_lookup_timeout_seconds
        health = database_health(engine)
        self._keys: LookupCache[KeyEntities | None] = LookupCache(
            ttl, stale_seconds=stale, wait=wait, what="key's limits", health=health
        )
        self._customers: LookupCache[LimitSpec | None] = LookupCache(
            ttl, stale_seconds=stale, wait=wait, what="customer", health=health
        )
        self._tags: LookupCache[LimitSpec | None] = LookupCache(
            ttl, stale_seconds=stale, wait=wait, what="tag", health=health
        )
        self._owners: LookupCache[CustomerOwners] = LookupCache(
            ttl, stale_seconds=stale, wait=wait, what="customer's owner", health=health
        )
        # Validate durations now, not on the first request.
        if settings.budget_duration:
            parse_window(settings.budget_duration)

    # -- the Admission protocol -------------------------------------------------------------

    async def admit(self, request: AdmissionRequest) -> Ticket:
        scopes = request.scopes
        principal = request.principal
        key_id = None if principal.is_master else scopes.api_key
        budgets, rates = await self.limits_for(
            key_id=key_id,
            end_user=scopes.end_user,
            tags=scopes.tags,
            named_by=None if principal.is_master else named_customer_param(request),
        )
        prompt = request.estimated_input_tokens
        candidates = self._candidates(request.deployments, scopes.model_group)
        output = self._max_output(request.payload, candidates)
        tier = billed_tier(None, requested_service_tier(request.payload))
        call = _CallContext(request.request_id, key_id, prompt, output, service_tier=tier)
        if not budgets and not rates:
            return Ticket(request.request_id, tokens=prompt + output, data={"call": call})
        estimate = max((self.worst_case_at(d, prompt, output, tier) for d in candidates), default=0)
        try:
            ticket = await self.enforcement.admit(
                EnforcementRequest(request.request_id, budgets, rates, estimate, prompt + output)
            )
        except StorageError as exc:
            log.error("request %s refused: %s", request.request_id, exc, exc_info=True)
            raise LimitsUnavailable(
                "budgets cannot be checked right now (counter storage unavailable); try again shortly"
            ) from exc
        for crossing in ticket.soft_crossed:
            if crossing.first:
                log.warning(
                    "soft budget reached: %s %s spend %d nanos >= soft %d nanos",
                    crossing.budget.scope,
                    crossing.budget.window.name,
                    crossing.spend_nanos,
                    crossing.soft_nanos,
                )
        return Ticket(
            request.request_id,
            reserved_nanos=ticket.reserved_nanos,
            tokens=prompt + output,
            headers=limit_headers(ticket),
            data={"ticket": ticket, "call": call},
        )

    async def settle(self, ticket: Ticket, cost_nanos: int, usage: Usage) -> None:
        tokens = max(0, usage.input_tokens) + max(0, usage.output_tokens)
        inner = ticket.data.get("ticket")
        if inner is not None:
            await self.enforcement.settle(inner, max(0, cost_nanos), tokens)
        for hold in ticket.data.get(ATTEMPT_HOLDS, ()):
            if isinstance(hold, EnforcementTicket):
                await self.enforcement.settle(hold, max(0, cost_nanos), tokens)

    async def release(self, ticket: Ticket) -> None:
        inner = ticket.data.get("ticket")
        if inner is not None:
            await self.enforcement.release(inner)
        for hold in ticket.data.get(ATTEMPT_HOLDS, ()):
            if isinstance(hold, EnforcementTicket):
                await self.enforcement.release(hold)

    def attempts(self, ticket: Ticket) -> _AttemptGate | None:
        call = ticket.data.get("call")
        return _AttemptGate(self, ticket, call) if isinstance(call, _CallContext) else None

    async def deployment_limits(
        self, key_id: str | None, deployment: Deployment
    ) -> tuple[list[BudgetLimit], list[RateLimit]]:
        """The limits of an attempt at ``deployment`` (step 2 of the module docstring)."""
        static_budgets, static_rates = self._deployment_static.get(deployment.id, ((), ()))
        if key_id is None:
            return list(static_budgets), list(static_rates)
        budgets, rates = await self._model_limits(key_id, deployment.group)
        budgets.extend(static_budgets)
        rates.extend(static_rates)
        return budgets, rates

    async def _model_limits(self, key_id: str, model: str) -> tuple[list[BudgetLimit], list[RateLimit]]:
        """The key's and its team's limits for one model group."""
        budgets: list[BudgetLimit] = []
        rates: list[RateLimit] = []
        ents = await self._keys.get(key_id, lambda: self._load_key(key_id))
        if ents is None:
            return budgets, rates
        tz, window = self.tz, self.rate_window
        b, r = ents.key.model_limits(Scope.key_model(key_id, model), model, tz=tz, rate_window=window)
        budgets += b
        rates += r
        if ents.team is not None and ents.team_id:
            b, r = ents.team.model_limits(
                Scope.team_model(ents.team_id, model), model, tz=tz, rate_window=window
            )
            budgets += b
            rates += r
        return budgets, rates

    def _static_deployment_limits(
        self, deployment: Deployment, config: GatewayConfig
    ) -> tuple[tuple[BudgetLimit, ...], tuple[RateLimit, ...]]:
        """A deployment's own limits and its provider's budget (fixed by the config)."""
        budgets: list[BudgetLimit] = []
        provider = config.router_settings.provider_budget_config.get(deployment.provider)
        if provider is not None:
            b, _ = scope_limits(
                Scope("provider", deployment.provider),
                max_budget_nanos=to_nano(provider.max_budget),
                budget_duration=provider.budget_duration,
                tz=self.tz,
            )
            budgets += b
        if deployment.max_budget_nanos is not None:
            b, _ = scope_limits(
                Scope("deployment", deployment.id),
                max_budget_nanos=deployment.max_budget_nanos,
                budget_duration=deployment.budget_duration,
                tz=self.tz,
            )
            budgets += b
        scope = Scope("deployment", deployment.id)
        window = self.rate_window
        rates = [] if deployment.rpm is None else [RateLimit(scope, "requests", deployment.rpm, window)]
        if deployment.tpm is not None:
            rates.append(RateLimit(scope, "tokens", deployment.tpm, window))
        return tuple(budgets), tuple(rates)

    # -- explain (/budget/explain) ------------------------------------------------------------

    async def explain(
        self, *, key_id: str, end_user: str | None, tags: Sequence[str], model: str | None
    ) -> list[ScopeWindowState]:
        """Every budget window a request of this key (customer, model) is checked against,
        from the same builder as :meth:`admit`; ``exceeded`` means it would be refused now."""
        budgets, _ = await self.limits_for(key_id=key_id, end_user=end_user, tags=tags, create_customer=False)
        if model:
            budgets += (await self._model_limits(key_id, model))[0]
        try:  # cold counters are seeded from the ledger first, as the admission does
            return await explain(self.enforcement, EnforcementRequest("explain", budgets, (), 0, 0))
        except StorageError as exc:
            raise LimitsUnavailable(
                "budgets cannot be read right now (counter storage or ledger unavailable)"
            ) from exc

    def forget(self, key_id: str | None = None) -> None:
        """Drop the cached entities of one key (or everything)."""
        self._keys.forget(key_id)
        self._owners.forget()  # a key's binding names its customer's owners
        if key_id is None:
            self._customers.forget()
            self._tags.forget()

    async def close(self) -> None:
        await self.storage.close()

    # -- scopes and limits -------------------------------------------------------------------

    async def limits_for(
        self,
        *,
        key_id: str | None,
        end_user: str | None,
        tags: Iterable[str],
        create_customer: bool = True,
        named_by: str | None = None,
    ) -> tuple[list[BudgetLimit], list[RateLimit]]:
        """Every budget and rate limit of a request's own scopes (step 1 of the module
        docstring), deduplicated: one per counter.

        ``named_by``: the request field that named ``end_user`` (a virtual key's request,
        not bound to it); the customer must then be one this key may bill, else 403
        naming that field (:class:`CustomerOwners`)."""
        budgets: list[BudgetLimit] = []
        rates: list[RateLimit] = []

        def add(pair: tuple[list[BudgetLimit], list[RateLimit]]) -> None:
            budgets.extend(pair[0])
            rates.extend(pair[1])

        tz, window = self.tz, self.rate_window
        budgets += self._global_limits[0]
        rates += self._global_limits[1]
        tag_names = list(tags)
        ents: KeyEntities | None = None
        if key_id is not None:
            ents = await self._keys.get(key_id, lambda: self._load_key(key_id))
            if ents is not None:
                add(ents.key.limits(Scope("key", key_id), tz=tz, rate_window=window))
                if (
                    ents.user is not None
                    and ents.user_id
                    and (ents.team_id is None or self.user_on_team_keys)
                ):
                    add(ents.user.limits(Scope("user", ents.user_id), tz=tz, rate_window=window))
                if ents.team is not None and ents.team_id:
                    add(ents.team.limits(Scope("team", ents.team_id), tz=tz, rate_window=window))
                    if ents.member is not None and ents.user_id:
                        add(
                            ents.member.limits(
                                Scope.team_member(ents.team_id, ents.user_id), tz=tz, rate_window=window
                            )
                        )
                if ents.organization is not None and ents.organization_id:
                    add(
                        ents.organization.limits(
                            Scope("organization", ents.organization_id), tz=tz, rate_window=window
                        )
                    )
                tag_names = [*ents.tags, *tag_names]
        if end_user:
            if named_by is not None:
                await self._check_owner(end_user, ents, named_by)
            customer = await self._customer(end_user, create=create_customer)
            if customer is not None:
                if customer.blocked:
                    raise PermissionDenied(f"customer {end_user!r} is blocked", code="customer_blocked")
                add(customer.limits(Scope("end_user", end_user), tz=tz, rate_window=window))
        for tag in dict.fromkeys(tag_names):
            spec = await self._tags.get(tag, lambda t=tag: self._load_tag(t))  # type: ignore[misc]
            if spec is not None:
                add(spec.limits(Scope("tag", tag), tz=tz, rate_window=window))
        return _dedupe_budgets(budgets), _dedupe_rates(rates)

    # -- the worst case ----------------------------------------------------------------------

    def _candidates(self, deployments: Sequence[Any], group: str) -> list[Deployment]:
        out = [d for d in deployments if isinstance(d, Deployment)]
        for name in self.fallbacks.get(group, ()):
            out.extend(self.router.group(name) or ())
        return out

    def _max_output(self, payload: Mapping[str, Any], deployments: Sequence[Any]) -> int:
        declared = declared_max_output(payload)
        if declared is None:
            caps = []
            for d in deployments:
                if isinstance(d, Deployment):
                    entry = d.book.find(d.price_model, d.price_provider)
                    if entry is not None and entry.max_output_tokens:
                        caps.append(entry.max_output_tokens)
            declared = max(caps) if caps else self.default_output
        return max(0, declared) * declared_choices(payload)

    def worst_case_at(self, deployment: Deployment, prompt: int, output: int, tier: str | None = None) -> int:
        """The most a call of ``prompt`` + ``output`` tokens can cost at ``deployment``
        (at service tier ``tier``, as :func:`~spendgate.gateway.routing.billed_tier` names it)."""
        resolved = deployment.book.resolve(deployment.price_model, deployment.price_provider)
        if resolved is None:
            return 0  # unpriced: recorded as such, nothing to reserve
        worst = worst_case_nanos(resolved.spec, prompt, output, service_tier=tier)
        breakdown = deployment.price(Usage(input_tokens=prompt, output_tokens=output), requested_tier=tier)
        if breakdown.priced:  # discounts and margins applied
            worst = max(worst, breakdown.total_nanos)
        return worst

    # -- loading -----------------------------------------------------------------------------

    async def _load_key(self, key_id: str) -> KeyEntities | None:
        async with AsyncSession(self.engine) as conn:
            vk = await _one(conn, VirtualKey, VirtualKey.key_id, key_id)
            return None if vk is None else await self._entities(conn, vk)

    async def _entities(self, conn: AsyncSession, vk: VirtualKey) -> KeyEntities:
        team = await _one(conn, Team, Team.team_id, vk.team_id)
        user = await _one(conn, User, User.user_id, vk.user_id)
        org_id = vk.organization_id or (team.organization_id if team is not None else None)
        org = await _one(conn, Organization, Organization.organization_id, org_id)
        member_profile: Budget | None = None
        if vk.team_id and vk.user_id:
            membership = await _first(
                conn,
                select(TeamMembership).where(
                    TeamMembership.team_id == vk.team_id, TeamMembership.user_id == vk.user_id
                ),
            )
            if membership is not None and membership.budget_id:
                member_profile = await _one(conn, Budget, Budget.budget_id, membership.budget_id)
        wanted = [("key", vk.key_id)]
        wanted += [("user", vk.user_id)] if vk.user_id else []
        wanted += [("team", vk.team_id)] if vk.team_id else []
        wanted += [("organization", org_id)] if org_id else []
        windows = await _windows(conn, wanted)
        return KeyEntities(
            key=_spec(
                vk,
                await _one(conn, Budget, Budget.budget_id, vk.budget_id),
                windows.get(("key", vk.key_id), ()),
            ),
            user_id=vk.user_id,
            user=None if user is None else _spec(user, None, windows.get(("user", user.user_id), ())),
            team_id=vk.team_id,
            team=None
            if team is None
            else _spec(
                team,
                await _one(conn, Budget, Budget.budget_id, team.budget_id),
                windows.get(("team", team.team_id), ()),
            ),
            member=None if member_profile is None else _spec(None, member_profile),
            organization_id=org_id,
            organization=None
            if org is None
            else _spec(
                org,
                await _one(conn, Budget, Budget.budget_id, org.budget_id),
                windows.get(("organization", org.organization_id), ()),
            ),
            end_user_id=vk.end_user_id,
            tags=tuple(vk.tags or ()),
        )

    async def _check_owner(self, customer_id: str, ents: KeyEntities | None, param: str) -> None:
        """403 unless the key may bill ``customer_id`` (before an unknown one is created:
        an unknown customer has no owner)."""
        owners = await self._owners.get(customer_id, lambda: self._load_owners(customer_id))
        if not owners.allow(ents):
            raise CustomerNotAllowed(
                f"customer {customer_id!r} (named by {param!r}) belongs to another team or "
                "organization: this key may not bill it",
                param=param,
            )

    async def _load_owners(self, customer_id: str) -> CustomerOwners:
        async with AsyncSession(self.engine) as conn:
            own = (
                await conn.execute(
                    select(EndCustomer.team_id, EndCustomer.organization_id).where(
                        EndCustomer.user_id == customer_id
                    )
                )
            ).first()
            if own is None:
                return CustomerOwners()  # unknown: no key can be bound to it either
            bound = await conn.execute(
                select(VirtualKey.team_id, VirtualKey.organization_id, VirtualKey.user_id).where(
                    VirtualKey.end_user_id == customer_id
                )
            )
            teams = {own[0]} if own[0] else set()
            orgs = {own[1]} if own[1] else set()
            users: set[str] = set()
            for team_id, org_id, user_id in bound:
                if team_id:
                    teams.add(team_id)
                elif org_id:
                    orgs.add(org_id)
                elif user_id:
                    users.add(user_id)
            return CustomerOwners(frozenset(teams), frozenset(orgs), frozenset(users))

    async def _customer(self, customer_id: str, *, create: bool) -> LimitSpec | None:
        spec = await self._customers.get(customer_id, lambda: self._load_customer(customer_id))
        if spec is None and create and self.end_user_default is not None:
            self._customers.forget(customer_id)
            spec = await self._customers.get(customer_id, lambda: self._create_customer(customer_id))
        return spec

    async def _load_customer(self, customer_id: str) -> LimitSpec | None:
        async with AsyncSession(self.engine) as conn:
            row = await _one(conn, EndCustomer, EndCustomer.user_id, customer_id)
            if row is None:
                return None
            profile = await _one(conn, Budget, Budget.budget_id, row.budget_id)
            windows = await _windows(conn, [("end_user", customer_id)])
            return _spec(row, profile, windows.get(("end_user", customer_id), ()))

    async def _create_customer(self, customer_id: str) -> LimitSpec | None:
        """Insert the customer with the default budget unless it exists (insert-or-ignore:
        any number of concurrent first requests, in any number of processes, create it once)."""
        values = {
            "user_id": customer_id,
            "max_budget_nanos": self.end_user_default,
            "blocked": False,
            "created_by": "spendgate:max_end_user_budget",
            "updated_by": "spendgate:max_end_user_budget",
        }
        async with self.engine.begin() as conn:
            dialect = conn.dialect.name
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                await conn.execute(pg_insert(EndCustomer).values(**values).on_conflict_do_nothing())
            elif dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                await conn.execute(sqlite_insert(EndCustomer).values(**values).on_conflict_do_nothing())
            else:  # pragma: no cover - only SQLite and PostgreSQL are supported
                found = await conn.scalar(
                    select(EndCustomer.user_id).where(EndCustomer.user_id == customer_id)
                )
                if found is None:
                    await conn.execute(sa_insert(EndCustomer).values(**values))
        return await self._load_customer(customer_id)

    async def _load_tag(self, tag: str) -> LimitSpec | None:
        async with AsyncSession(self.engine) as conn:
            row = await _one(conn, Tag, Tag.tag_name, tag)
            if row is None or not row.budget_id:
                return None
            profile = await _one(conn, Budget, Budget.budget_id, row.budget_id)
            return None if profile is None else _spec(None, profile)

    async def _ledger_spend(self, budget: BudgetLimit, period: Period) -> int:
        """A cold counter's spend in ``period``, from the ledger (set, never added)."""
        scope = budget.scope
        ledger_type = _LEDGER_SCOPE.get(scope.type)
        tz = budget.tz or self.tz
        if ledger_type is not None:
            at = period.start if budget.window.is_calendar else period.end
            return await current_period_spend(
                self.engine, ledger_type, scope.id, budget.window, tz=tz, now=at
            )
        events = SpendEventRow.__table__.c
        if budget.window.is_calendar:
            where = [events.occurred_at >= period.start, events.occurred_at < period.end]
        else:
            where = [events.occurred_at > period.start, events.occurred_at <= period.end]
        if budget.window.unit == "lifetime":
            where = []
        owner, _, rest = scope.id.partition(":")
        if scope.type == "team_member":
            where += [events.team_id == owner, events.user_id == rest]
        elif scope.type in ("key_model", "team_model"):
            # Billed at the model group that served (a fallback's spend is its group's).
            column = events.api_key if scope.type == "key_model" else events.team_id
            served = [d.id for d in self.router.group(rest) or ()]
            where += [column == owner]
            where += [events.deployment_id.in_(served)] if served else [events.requested_model == rest]
        elif scope.type == "provider":
            where += [events.provider == scope.id]
        elif scope.type == "deployment":
            where += [events.deployment_id == scope.id]
        else:
            return 0
        async with self.engine.connect() as conn:
            total = await conn.scalar(select(func.coalesce(func.sum(events.cost_nanos), 0)).where(*where))
        return int(total or 0)


async def _one(session: AsyncSession, model: type[T], column: Any, value: Any) -> T | None:
    if value is None:
        return None
    found: T | None = await session.scalar(select(model).where(column == value).limit(1))
    return found


async def _first(session: AsyncSession, stmt: Any) -> Any:
    return await session.scalar(stmt)


async def _windows(
    session: AsyncSession, wanted: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], list[BudgetWindow]]:
    out: dict[tuple[str, str], list[BudgetWindow]] = {}
    for scope_type, scope_id in wanted:
        rows = await session.scalars(
            select(BudgetWindow)
            .where(BudgetWindow.scope_type == scope_type, BudgetWindow.scope_id == scope_id)
            .order_by(BudgetWindow.id)
        )
        out[(scope_type, scope_id)] = list(rows)
    return out


def _dedupe_budgets(budgets: list[BudgetLimit]) -> list[BudgetLimit]:
    """One limit per counter (scope, window, timezone): the strictest."""
    seen: dict[tuple[Any, ...], BudgetLimit] = {}
    for b in budgets:
        ident = (b.scope, b.window, b.tz)
        old = seen.get(ident)
        if old is None or (
            b.max_nanos is not None and (old.max_nanos is None or b.max_nanos < old.max_nanos)
        ):
            seen[ident] = b
    return list(seen.values())


def _dedupe_rates(rates: list[RateLimit]) -> list[RateLimit]:
    seen: dict[tuple[Any, ...], RateLimit] = {}
    for r in rates:
        ident = (r.scope, r.kind, r.window_ms)
        old = seen.get(ident)
        if old is None or (r.limit is not None and (old.limit is None or r.limit < old.limit)):
            seen[ident] = r
    return list(seen.values())
