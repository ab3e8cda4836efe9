"""Admission: the one interface budgets and rate limits plug into.

The pipeline calls, for every request that passed authentication::

    ticket = await admission.admit(request)     # before routing; may raise (429, budget)
    gate = admission.attempts(ticket)           # the router admits each attempt at its deployment
    ...                                           # route, forward, meter, price
    await admission.settle(ticket, cost_nanos, usage)   # the call was billed
    # or, when nothing was billed (the upstream failed before any usage):
    await admission.release(ticket)

Exactly one of ``settle`` / ``release`` is called per ticket, also for streams (when the
stream ends, however it ends); they also settle or release the serving attempt's hold,
which the router appends to ``ticket.data[ATTEMPT_HOLDS]``. ``admit`` raises a
:class:`~spendgate.http.errors.GatewayError` or a :class:`~spendgate.errors.LimitExceeded`
(``RateLimited`` → 429, ``BudgetExceeded`` → ``general_settings.budget_exceeded_status``;
both with ``Retry-After``) to refuse.
:class:`AllowAll` is the implementation until budgets and rate limits exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from spendgate.core.usage.model import Usage
from spendgate.gateway.auth import Principal
from spendgate.gateway.routing import AttemptGate

__all__ = ["ATTEMPT_HOLDS", "Admission", "AdmissionRequest", "AllowAll", "Scopes", "Ticket"]

ATTEMPT_HOLDS = "attempt_holds"
"""``Ticket.data`` entry: the router's hold on the serving deployment (settled, released with
the ticket)."""


@dataclass(frozen=True, slots=True)
class Scopes:
    """Everything a request is attributed to (and may be limited by)."""

    api_key: str | None
    """The key's stable id (``virtual_keys.key_id``)."""
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    end_user: str | None = None
    tags: tuple[str, ...] = ()
    model_group: str = ""


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    request_id: str
    endpoint: str
    principal: Principal
    scopes: Scopes
    payload: dict[str, Any]
    """The request body (JSON fields): ``max_tokens``, ``messages`` … for a worst-case estimate."""
    estimated_input_tokens: int
    deployments: tuple[Any, ...] = ()
    """The model group's deployments (``routing.Deployment``): their prices bound the cost."""


@dataclass(slots=True)
class Ticket:
    """What ``admit`` hands back; passed to ``settle`` or ``release``."""

    request_id: str
    reserved_nanos: int = 0
    tokens: int = 0
    """The request's token estimate (prompt + output cap)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Response headers the implementation adds (``x-ratelimit-*``, budget remaining …)."""
    data: dict[str, Any] = field(default_factory=dict)
    """For the implementation (reservation keys, rate-limit slots …)."""


class Admission(Protocol):
    async def admit(self, request: AdmissionRequest) -> Ticket:
        """Reserve for the request, or raise to refuse it."""
        ...

    async def settle(self, ticket: Ticket, cost_nanos: int, usage: Usage) -> None:
        """Replace the reservation with the real cost (idempotent per ticket)."""
        ...

    async def release(self, ticket: Ticket) -> None:
        """Give the reservation back: nothing was billed."""
        ...

    def attempts(self, ticket: Ticket) -> AttemptGate | None:
        """The gate that admits the call's attempts at their deployments (None: none needed)."""
        ...


class AllowAll:
    """Admits everything (no budgets or rate limits configured)."""

    async def admit(self, request: AdmissionRequest) -> Ticket:
        return Ticket(request.request_id)

    async def settle(self, ticket: Ticket, cost_nanos: int, usage: Usage) -> None:
        return None

    async def release(self, ticket: Ticket) -> None:
        return None

    def attempts(self, ticket: Ticket) -> AttemptGate | None:
        return None
