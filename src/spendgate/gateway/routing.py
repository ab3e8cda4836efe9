"""Routing: which deployment serves the next attempt of a call, and when to give up.

:meth:`Router.attempts` gives a call its :class:`AttemptPlan`; the pipeline drives it (the
attempt loop is ``Pipeline._forward`` in :mod:`spendgate.gateway.pipeline`)::

    plan = router.attempts(group)
    while (deployment := await plan.next()) is not None:
        ...  # admit at the deployment (plan.refused on refusal), send (plan.failed on error)
    raise plan.error()

The plan picks by the configured strategy:

* ``simple-shuffle``: random, weighted by ``weight`` (else ``rpm``, else ``tpm``, else even);
* ``lowest-cost``: the deployment whose price (1k input + 1k output tokens, per-deployment
  prices and discounts included) is lowest; ties shuffled;
* ``least-busy``: the fewest calls in flight (streams count until they end).

An attempt that fails with a retryable error (429, 408, 409, 5xx, timeout, connection
error) is retried up to ``num_retries`` times, on another deployment of the group when
there is one, after an exponential back-off (or the upstream's ``Retry-After``, capped):
:meth:`AttemptPlan.next` sleeps it. When the group is exhausted, the fallback groups are
tried in order, each with the same retries. A non-retryable error (a 400 from the upstream)
ends the call at once.

A deployment whose limits refuse the attempt (its ``rpm`` / ``tpm`` or budget, its
provider's budget, the key's and team's budgets for that model group) is skipped (no retry
used, no back-off) for the next one in strategy order, then the fallback groups. When every
deployment refuses, :meth:`AttemptPlan.error` is :class:`~spendgate.errors.RateLimited`
(429, the smallest retry-after) when any was only saturated, else the first
:class:`~spendgate.errors.BudgetExceeded`.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal

from spendgate.errors import LimitExceeded, RateLimited, UpstreamError, UpstreamStatusError
from spendgate.gateway.deployments import Deployment

__all__ = ["AttemptPlan", "Router"]


class Router:
    """The model groups and how their deployments are picked (see the module docstring)."""

    def __init__(
        self,
        deployments: Iterable[Deployment],
        *,
        strategy: str = "simple-shuffle",
        num_retries: int = 2,
        fallbacks: dict[str, list[str]] | None = None,
        retry_after: float = 0.05,
        max_retry_delay: float = 2.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.groups: dict[str, list[Deployment]] = {}
        for d in deployments:
            self.groups.setdefault(d.group, []).append(d)
        self.strategy = strategy
        self.num_retries = num_retries
        self.fallbacks = fallbacks or {}
        self.retry_after = retry_after
        self.max_retry_delay = max_retry_delay
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._unit_costs = (
            {id(d): d.unit_cost() for g in self.groups.values() for d in g}
            if strategy == "lowest-cost"
            else {}
        )

    def group(self, name: str) -> list[Deployment] | None:
        return self.groups.get(name)

    def candidates(self, group: str) -> list[Deployment]:
        """Every deployment a call to ``group`` may be billed at: the group's, then its
        fallback groups' (their prices bound the worst case a budget reserves)."""
        out = list(self.groups.get(group) or ())
        for name in self.fallbacks.get(group, ()):
            out.extend(self.groups.get(name) or ())
        return out

    def attempts(self, group: str) -> AttemptPlan:
        """A call's walk through ``group`` and its fallbacks."""
        return AttemptPlan(self, group)

    def pick(self, candidates: list[Deployment]) -> Deployment:
        if len(candidates) == 1:
            return candidates[0]
        if self.strategy == "least-busy":
            low = min(d.in_flight for d in candidates)
            return self._rng.choice([d for d in candidates if d.in_flight == low])
        if self.strategy == "lowest-cost":
            low_cost = min(self._unit_costs.get(id(d), Decimal("Infinity")) for d in candidates)
            return self._rng.choice([d for d in candidates if self._unit_costs.get(id(d)) == low_cost])
        return self._rng.choices(candidates, weights=[d.weight for d in candidates])[0]

    def delay(self, retry: int, error: UpstreamError | None) -> float:
        """The back-off before retry number ``retry`` (0-based) after ``error``."""
        if isinstance(error, UpstreamStatusError):
            hint = error.headers.get("retry-after")
            try:
                seconds = float(hint) if hint else math.nan
            except ValueError:
                seconds = math.nan
            if seconds == seconds and seconds >= 0:
                return float(min(seconds, self.max_retry_delay))
        base: float = min(self.max_retry_delay, self.retry_after * 2.0**retry)
        return base * (0.5 + self._rng.random() / 2)


class AttemptPlan:
    """One call's attempts: the next deployment to try, the back-off, the final error.

    Each group (the requested one, then its fallbacks) gets ``num_retries + 1`` attempts;
    a refused deployment is set aside without using one."""

    def __init__(self, router: Router, group: str) -> None:
        self.router = router
        self.group = group
        self.number = 0
        """Attempts sent so far (the current one's number once :meth:`sent` is called)."""
        self._groups = iter((group, *router.fallbacks.get(group, ())))
        self._deployments: list[Deployment] | None = None
        self._retry = 0
        self._tried: set[int] = set()
        self._saturated: set[int] = set()
        self._backoff: float | None = None
        self._last: UpstreamError | None = None
        self._refusals: list[LimitExceeded] = []

    async def next(self) -> Deployment | None:
        """The deployment for the next attempt (after the back-off, if one is due); None when
        every group is exhausted."""
        if self._backoff is not None:
            delay, self._backoff = self._backoff, None
            await self.router._sleep(delay)
        while True:
            if self._deployments is None:
                name = next(self._groups, None)
                if name is None:
                    return None
                self._deployments = self.router.groups.get(name) or []
                self._retry, self._tried, self._saturated = 0, set(), set()
            if self._retry <= self.router.num_retries:
                open_ = [d for d in self._deployments if id(d) not in self._saturated]
                candidates = [d for d in open_ if id(d) not in self._tried] or open_
                if candidates:
                    return self.router.pick(candidates)
            self._deployments = None

    def refused(self, deployment: Deployment, refusal: LimitExceeded) -> None:
        """``deployment``'s limits refused the attempt: skip it (no retry used)."""
        self._saturated.add(id(deployment))
        self._refusals.append(refusal)

    def sent(self, deployment: Deployment) -> int:
        """The attempt was admitted and goes to ``deployment``: its number (1-based)."""
        self._tried.add(id(deployment))
        self.number += 1
        return self.number

    def failed(self, error: UpstreamError) -> None:
        """The attempt failed: raise ``error`` when it cannot be retried, else schedule the
        back-off before the next attempt of this group."""
        if not error.retryable:
            raise error
        self._last = error
        if self._retry < self.router.num_retries:
            self._backoff = self.router.delay(self._retry, error)
        self._retry += 1

    def error(self) -> LimitExceeded | UpstreamError:
        """Why the call failed once :meth:`next` has nothing left."""
        if self._last is None and self._refusals:
            return _refused(self.group, self._refusals)
        assert self._last is not None, "a model group always has a deployment"
        return self._last


def _refused(group: str, refusals: list[LimitExceeded]) -> LimitExceeded:
    """The error when every deployment refused: a 429 naming the one that frees up first
    when any was only saturated (a retry can succeed soon), else the first budget refusal."""
    saturated = [r for r in refusals if isinstance(r, RateLimited)]
    if not saturated:
        return refusals[0]
    soonest = min(saturated, key=lambda r: math.inf if r.retry_after is None else r.retry_after)
    return RateLimited(
        scope=f"model group {group!r} (every deployment is saturated)",
        kind=soonest.kind,
        limit=soonest.limit,
        window_seconds=soonest.window_seconds,
        retry_after=soonest.retry_after,
    )
