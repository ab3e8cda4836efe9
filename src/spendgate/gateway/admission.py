"""Step 4 of the request path: admit (rate limits + budget reservation), twice over.

The pipeline calls, for every request that passed authentication and scope resolution::

    admitted = await admission.admit(request)          # the request's own scopes; may raise
    # each attempt, at the deployment routing picks (LimitExceeded: skip that deployment):
    await admission.admit_at(admitted, deployment)
    await admission.release_attempt(admitted)           # the attempt failed or was cancelled
    ...
    await admission.settle(admitted, cost_nanos, usage) # the call was billed
    await admission.release(admitted)                   # or nothing was billed

and, for a batch at its creation (the batch-cost poller settles it when it is billed)::

    reservation = await admission.admit_batch(BatchAdmission(...))   # may raise

Exactly one of ``settle`` / ``release`` is called per admitted request, also for streams
(when the stream ends, however it ends); both also settle or release the serving attempt's
hold. ``admit`` raises a :class:`~spendgate.http.errors.GatewayError` or a
:class:`~spendgate.errors.LimitExceeded` (``RateLimited`` → 429, ``BudgetExceeded`` →
``general_settings.budget_exceeded_status``; both with ``Retry-After``) to refuse.

:class:`LimitsAdmission` enforces with the :class:`~spendgate.enforcement.Enforcer` (one
atomic reservation per step, one Redis round trip with ``redis_url``):

**1. The request** (:meth:`LimitsAdmission.admit`): the limits of the request's own scopes
(:mod:`spendgate.gateway.scoping`). The worst case reserved is the largest over every
deployment the call may be billed at (the model group and its fallback groups): the prompt
estimate at the input rate plus the largest declared output cap (else the catalogue's
maximum output, else ``general_settings.default_max_output_tokens``) at the output rate,
times ``n`` (or ``best_of`` when larger), at the rates of the service tier requested when it
is dearer than standard (``priority``). Token ids in a pre-tokenized prompt count one each.

**2. Each attempt, at its deployment** (:meth:`LimitsAdmission.admit_at`), with the worst
case priced at that deployment::

    key_model           the key's model_max_budget / model_rpm_limit / model_tpm_limit for
                        the model group of the deployment (a fallback is checked at its own group)
    user_model          the same for the key's owner (when the user's limits apply to the key)
    team_model          the same for the team
    organization_model  the same for the organization
    end_user_model      the same for the request's customer
    provider            router_settings.provider_budget_config[provider]
    deployment          litellm_params.max_budget + budget_duration, rpm, tpm

A failed attempt's hold is released (its request still counts against request-rate limits:
it was sent). A counter storage that cannot be reached raises
:class:`~spendgate.errors.StorageError` (503 ``limits_unavailable``) unless the fail-open
policy applies.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from spendgate.config import GatewayConfig
from spendgate.core.money import to_nano
from spendgate.core.scopes import Scope
from spendgate.core.usage.model import Usage
from spendgate.core.usage.tier import requested_service_tier
from spendgate.enforcement import (
    BudgetLimit,
    EnforcementRequest,
    Enforcer,
    RateLimit,
    Reservation,
    declared_max_output,
    scope_limits,
)
from spendgate.enforcement.estimate import declared_choices
from spendgate.gateway.auth import Principal
from spendgate.gateway.deployments import Deployment, billed_tier
from spendgate.gateway.scoping import ResolvedScopes, Scopes
from spendgate.http.headers import limit_headers

__all__ = ["Admission", "AdmissionRequest", "Admitted", "AllowAll", "BatchAdmission", "LimitsAdmission"]

log = logging.getLogger("spendgate.gateway")


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    request_id: str
    endpoint: str
    principal: Principal
    scopes: Scopes
    payload: dict[str, Any]
    """The request body (JSON fields): ``max_tokens``, ``messages`` … for a worst-case estimate."""
    estimated_input_tokens: int
    deployments: tuple[Deployment, ...] = ()
    """Every deployment the call may be billed at (its group's, then its fallbacks'): their
    prices bound the cost."""
    resolved: ResolvedScopes | None = None
    """The scopes' limits (:meth:`~spendgate.gateway.scoping.ScopeResolver.resolve`)."""


@dataclass(slots=True)
class Admitted:
    """What ``admit`` hands back; passed to every later step of the admission."""

    request_id: str
    reserved_nanos: int = 0
    tokens: int = 0
    """The request's token estimate (prompt + output cap)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Response headers (``x-ratelimit-*``, budget remaining …) of the tightest limit."""
    reservation: Reservation | None = None
    """The request's reservation at its own scopes (None: nothing limits them)."""
    hold: Reservation | None = None
    """The current (then the serving) attempt's hold at its deployment."""
    resolved: ResolvedScopes | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    service_tier: str | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class BatchAdmission:
    """A batch at its creation (issue #12): one reservation of its worst case, settled by the
    batch-cost poller when the batch is billed."""

    batch_id: str
    """The batch's managed id: the reservation's request id (settle is idempotent by it)."""
    resolved: ResolvedScopes
    deployment: Deployment
    estimate_nanos: int
    """The batch's worst case at its deployment's batch rates (the sum of its lines')."""
    estimate_tokens: int
    lease_seconds: float
    """How long the reservation holds without a settle: the batch's whole life."""


class Admission(Protocol):
    """Where budgets and rate limits plug into the request path."""

    async def admit(self, request: AdmissionRequest) -> Admitted:
        """Reserve for the request, or raise to refuse it."""
        ...

    async def admit_at(self, admitted: Admitted, deployment: Deployment) -> None:
        """Admit an attempt at ``deployment`` (its hold kept on ``admitted``), or raise
        :class:`~spendgate.errors.LimitExceeded` to have the deployment skipped."""
        ...

    async def release_attempt(self, admitted: Admitted) -> None:
        """Give the current attempt's hold back (it failed or was cancelled)."""
        ...

    async def settle(self, admitted: Admitted, cost_nanos: int, usage: Usage) -> None:
        """Replace the reservations with the real cost (idempotent)."""
        ...

    async def release(self, admitted: Admitted) -> None:
        """Give the reservations back: nothing was billed."""
        ...

    async def admit_batch(self, batch: BatchAdmission) -> Reservation | None:
        """Reserve a batch's worst case at every budget of its scopes and of its deployment,
        all or nothing, for the batch's lease (None: nothing limits it), or raise
        :class:`~spendgate.errors.BudgetExceeded` to refuse it."""
        ...

    async def release_batch(self, reservation: Reservation) -> None:
        """Give a batch's reservation back (the batch was never created)."""
        ...


class AllowAll:
    """Admits everything (no budgets or rate limits)."""

    async def admit(self, request: AdmissionRequest) -> Admitted:
        return Admitted(request.request_id)

    async def admit_at(self, admitted: Admitted, deployment: Deployment) -> None:
        return None

    async def release_attempt(self, admitted: Admitted) -> None:
        return None

    async def settle(self, admitted: Admitted, cost_nanos: int, usage: Usage) -> None:
        return None

    async def release(self, admitted: Admitted) -> None:
        return None

    async def admit_batch(self, batch: BatchAdmission) -> Reservation | None:
        return None

    async def release_batch(self, reservation: Reservation) -> None:
        return None


class LimitsAdmission:
    """Budgets and rate limits on the :class:`~spendgate.enforcement.Enforcer` (see the
    module docstring).

    Args:
        enforcer: the reservations (its counter storage built by the composition root).
        deployments: every deployment (their own limits are fixed by the config).
        config: ``general_settings.default_max_output_tokens``,
            ``rate_limit_window_seconds``, ``router_settings.provider_budget_config``,
            ``litellm_settings.timezone``.
    """

    def __init__(self, enforcer: Enforcer, deployments: Sequence[Deployment], config: GatewayConfig) -> None:
        self.enforcer = enforcer
        self.default_output = config.general_settings.default_max_output_tokens
        self.tz = config.litellm_settings.timezone
        self.rate_window = config.general_settings.rate_limit_window_seconds
        providers = config.router_settings.provider_budget_config
        self._static = {d.id: self._deployment_limits(d, providers) for d in deployments}

    async def admit(self, request: AdmissionRequest) -> Admitted:
        resolved = request.resolved
        budgets, rates = (resolved.budgets, resolved.rates) if resolved is not None else ([], [])
        prompt = request.estimated_input_tokens
        output = self._max_output(request.payload, request.deployments)
        tier = billed_tier(None, requested_service_tier(request.payload))
        admitted = Admitted(
            request.request_id,
            tokens=prompt + output,
            resolved=resolved,
            prompt_tokens=prompt,
            output_tokens=output,
            service_tier=tier,
        )
        if not budgets and not rates:
            return admitted
        estimate = max((d.worst_case(prompt, output, tier) for d in request.deployments), default=0)
        reservation = await self.enforcer.admit(
            EnforcementRequest(request.request_id, budgets, rates, estimate, prompt + output)
        )
        for crossing in reservation.soft_crossed:
            if crossing.first:
                log.warning(
                    "soft budget reached: %s %s spend %d nanos >= soft %d nanos",
                    crossing.budget.scope,
                    crossing.budget.window.name,
                    crossing.spend_nanos,
                    crossing.soft_nanos,
                )
        admitted.reservation = reservation
        admitted.reserved_nanos = reservation.reserved_nanos
        admitted.headers = limit_headers(reservation)
        return admitted

    async def admit_at(self, admitted: Admitted, deployment: Deployment) -> None:
        budgets, rates = self.deployment_limits(admitted.resolved, deployment)
        if not budgets and not rates:
            return
        admitted.attempts += 1
        estimate = (
            deployment.worst_case(admitted.prompt_tokens, admitted.output_tokens, admitted.service_tier)
            if budgets
            else 0
        )
        # One id per attempt: settle and release are idempotent by request id.
        hold_id = f"{admitted.request_id}@{deployment.id}#{admitted.attempts}"
        tokens = admitted.prompt_tokens + admitted.output_tokens
        admitted.hold = await self.enforcer.admit(
            EnforcementRequest(hold_id, budgets, rates, estimate, tokens)
        )
        # The response headers name the tightest limit of both reservations.
        admitted.headers = limit_headers(*(r for r in (admitted.reservation, admitted.hold) if r is not None))

    async def release_attempt(self, admitted: Admitted) -> None:
        hold, admitted.hold = admitted.hold, None
        if hold is not None:
            await self.enforcer.release(hold)

    async def settle(self, admitted: Admitted, cost_nanos: int, usage: Usage) -> None:
        tokens = max(0, usage.input_tokens) + max(0, usage.output_tokens)
        held = [r for r in (admitted.reservation, admitted.hold) if r is not None]
        for reservation in held:
            await self.enforcer.settle(reservation, max(0, cost_nanos), tokens)
        if held:  # an answer not yet sent shows the budget left after its real cost
            admitted.headers = limit_headers(*held, settled_nanos=max(0, cost_nanos))

    async def release(self, admitted: Admitted) -> None:
        for reservation in (admitted.reservation, admitted.hold):
            if reservation is not None:
                await self.enforcer.release(reservation)

    async def admit_batch(self, batch: BatchAdmission) -> Reservation | None:
        # Budgets only: a batch is one request, and its lines run at the provider's pace,
        # not against this gateway's request or token rates.
        model_budgets, _ = self.deployment_limits(batch.resolved, batch.deployment)
        budgets = [*batch.resolved.budgets, *model_budgets]
        if not budgets:
            return None
        request = EnforcementRequest(batch.batch_id, budgets, (), batch.estimate_nanos, batch.estimate_tokens)
        return await self.enforcer.admit(request, lease_seconds=batch.lease_seconds)

    async def release_batch(self, reservation: Reservation) -> None:
        await self.enforcer.release(reservation)

    def deployment_limits(
        self, resolved: ResolvedScopes | None, deployment: Deployment
    ) -> tuple[list[BudgetLimit], list[RateLimit]]:
        """The limits of an attempt at ``deployment`` (step 2 of the module docstring)."""
        static_budgets, static_rates = self._static.get(deployment.id, ((), ()))
        if resolved is None:
            return list(static_budgets), list(static_rates)
        budgets, rates = resolved.model_limits(deployment.group)
        budgets.extend(static_budgets)
        rates.extend(static_rates)
        return budgets, rates

    def _max_output(self, payload: Mapping[str, Any], deployments: Sequence[Deployment]) -> int:
        declared = declared_max_output(payload)
        if declared is None:
            caps = [cap for d in deployments if (cap := d.max_output_tokens()) is not None]
            declared = max(caps) if caps else self.default_output
        return max(0, declared) * declared_choices(payload)

    def _deployment_limits(
        self, deployment: Deployment, providers: Mapping[str, Any]
    ) -> tuple[tuple[BudgetLimit, ...], tuple[RateLimit, ...]]:
        """A deployment's own limits and its provider's budget (fixed by the config)."""
        budgets: list[BudgetLimit] = []
        provider = providers.get(deployment.provider)
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
