"""The enforcer: reserve at admission, settle or release afterwards.

::

    enforcer = Enforcer(storage_from_url("redis://127.0.0.1:6379/0"))
    reservation = await enforcer.admit(EnforcementRequest(request_id, budgets, rate_limits,
                                                          estimate_nanos, estimate_tokens))
    ...                                   # forward the call, meter and price it
    await enforcer.settle(reservation, real_cost_nanos, real_tokens)
    # or, when nothing was billed:
    await enforcer.release(reservation)

A reservation that outlives the process (a batch, settled hours later by whichever instance
polls it) takes its own lease and is persisted as JSON::

    reservation = await enforcer.admit(request, lease_seconds=24 * 3600)
    row.reservation = reservation.to_json()
    ...                                   # later, anywhere on the same storage
    await other_enforcer.settle(Reservation.from_json(row.reservation), total_nanos)

``admit`` is one storage call (one Redis round trip): every budget window of every scope
and every rate limit of the request are checked and taken together, all or nothing. It
raises :class:`~spendgate.errors.BudgetExceeded` or :class:`~spendgate.errors.RateLimited`
(a budget failure wins when both fail: retrying cannot help it). ``settle`` and ``release``
are one call each and idempotent by request id. See ``docs/enforcement.md``.

The parts: :mod:`~spendgate.enforcement.planning` (limits → storage operations),
:mod:`~spendgate.enforcement.refusals` (what a refusal says),
:mod:`~spendgate.enforcement.seeding` (cold counters from the ledger) and
:mod:`~spendgate.enforcement.reservation` (what goes in and comes out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from spendgate.enforcement.limits import BudgetLimit, KeySpace, RateLimit
from spendgate.enforcement.planning import SLACK_MS, BudgetPlan, BudgetPlanner, PlannedBudget, new_tuple
from spendgate.enforcement.refusals import refusal, soft_crossings, zero_budget_refusal, zero_rate_refusal
from spendgate.enforcement.reservation import EnforcementRequest, Reservation
from spendgate.enforcement.seeding import CounterSeeder, SeedLoader
from spendgate.errors import ConfigurationError, StorageError
from spendgate.stores.counters.base import (
    RATE_PARALLEL,
    AdmitOp,
    BudgetOp,
    BudgetState,
    RateOp,
    RateState,
    SettleOp,
    Storage,
)

__all__ = ["CounterReading", "Enforcer", "Mode"]

log = logging.getLogger("spendgate.enforcement")

Mode = Literal["strict", "check_only"]


@dataclass(frozen=True, slots=True)
class CounterReading:
    """The counters of a request as :meth:`Enforcer.read` found them (nothing was taken).

    ``budgets[i]`` is counted in ``budget_states[i]`` (None: the counter does not exist);
    ``rate_limits[i]`` (the limited ones of the request) by ``rate_ops[i]`` in ``rate_states[i]``.
    """

    now_ms: int
    budgets: list[PlannedBudget]
    budget_states: list[BudgetState | None]
    rate_limits: list[RateLimit]
    rate_ops: list[RateOp]
    rate_states: list[RateState]


class Enforcer:
    """Admits, settles and releases requests against one storage.

    Args:
        storage: where counters live (:func:`~spendgate.stores.counters.storage_from_url`).
        mode: ``strict`` reserves the worst case (default); ``check_only`` compares the
            current spend only, like LiteLLM, and can be raced past by concurrent requests.
        lease_seconds: how long a reservation or parallel slot lives without a settle,
            release or renew; a crashed instance's reservations expire after it.
        clock: seconds since the epoch (injected in tests).
        loader: seeds a cold budget counter from the ledger; when given, a counter that does
            not exist is never assumed to be zero. A loader failure is a storage failure
            (the fail-open / fail-closed policy applies).
        fail_open_budgets: admit unchecked when the storage fails and the request has
            budgets (default: refuse, raising :class:`StorageError`).
        fail_open_rate_limits: admit unchecked when the storage fails and the request has
            only rate limits (default: admit).
        idempotency_seconds: how long a settled or released request id is remembered.
        watch: called after every settle that charged, with the reservation, each budget's
            spend after it (-1: not charged) and the time in ms, to detect budget crossings
            (:class:`~spendgate.enforcement.crossings.CrossingWatch`). It runs on the
            request path: it must be quick and must not block; an exception is logged.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        mode: Mode = "strict",
        lease_seconds: float = 900.0,
        clock: Callable[[], float] = time.time,
        loader: SeedLoader | None = None,
        fail_open_budgets: bool = False,
        fail_open_rate_limits: bool = True,
        idempotency_seconds: float = 3600.0,
        watch: Callable[[Reservation, Sequence[int], int], None] | None = None,
    ) -> None:
        if mode not in ("strict", "check_only"):
            raise ConfigurationError(f"enforcement mode must be 'strict' or 'check_only', got {mode!r}")
        if lease_seconds <= 0:
            raise ConfigurationError("lease_seconds must be positive")
        self.storage = storage
        self.mode: Mode = mode
        self.lease_ms = int(lease_seconds * 1000)
        self.clock = clock
        self.loader = loader
        self.fail_open_budgets = fail_open_budgets
        self.fail_open_rate_limits = fail_open_rate_limits
        self.watch = watch
        self.keys = KeySpace(storage.prefix)
        self.done_ttl_ms = max(int(idempotency_seconds * 1000), self.lease_ms)
        self._done_tag = self.keys.request("")  # + a request id that needs no escaping
        planner = BudgetPlanner(self.keys, lease_ms=self.lease_ms, seeded=loader is not None)
        # Bound once: the per-request path calls these without a further attribute look-up.
        self._plan = planner.budget
        self._plan_rate = planner.rate
        self._seeder = CounterSeeder(storage, loader) if loader is not None else None

    # ---- admission

    async def admit(self, request: EnforcementRequest, *, lease_seconds: float | None = None) -> Reservation:
        """Reserve the request's worst case against every budget and take its rate-limit units.

        ``lease_seconds``: this reservation's lease, instead of the enforcer's (a batch passes
        its completion window, 24 h). Its counters and parallel slots then live at least
        the lease plus an hour, and the reservation remembers its lease: :meth:`renew`
        extends by it and :meth:`settle` remembers the request id at least as long, so a
        settle repeated within the lease counts once.

        Raises:
            BudgetExceeded: a budget window has no room (the strictest one is named).
            RateLimited: a rate limit has no room; ``retry_after`` says when to retry.
            StorageError: the storage failed and the fail-closed policy applies.
        """
        now_ms = int(self.clock() * 1000)
        lease_ms = self.lease_ms if lease_seconds is None else _lease_ms(lease_seconds)
        strict = self.mode == "strict"
        estimate = request.estimate_nanos if strict and request.estimate_nanos > 0 else 0
        planned: list[BudgetPlan] = []
        budget_ops: list[BudgetOp] = []
        soft = False
        for b in request.budgets:
            # An unlimited budget is only counted when it has a soft threshold to report.
            if b.max_nanos is None and b.soft_nanos is None:
                continue
            plan = self._plan(b, now_ms, estimate)
            bop = plan[1]
            if bop.max_nanos == 0:  # zero allows nothing, whatever the request costs
                raise await zero_budget_refusal(self.storage, PlannedBudget(*plan), estimate, now_ms)
            planned.append(plan)
            budget_ops.append(bop)
            if b.soft_nanos is not None:
                soft = True
        tokens = request.estimate_tokens if request.estimate_tokens > 0 else 0
        limits: list[RateLimit] = []
        rate_ops: list[RateOp] = []
        if request.rate_limits:
            for r in request.rate_limits:
                if r.limit is None:
                    continue
                if r.limit == 0:
                    raise zero_rate_refusal(r)
                limits.append(r)
                rate_ops.append(self._plan_rate(r, now_ms, tokens))
        if lease_seconds is not None:  # its keys live at least the lease and an hour
            _stretch(planned, budget_ops, rate_ops, lease_ms + SLACK_MS)
        op = new_tuple(AdmitOp, (request.request_id, now_ms, lease_ms, strict, budget_ops, rate_ops))
        try:
            storage = self.storage
            result = storage.admit_nowait(op) if storage.nowait else await storage.admit(op)
            if result.status == "cold" and self._seeder is not None:
                result = await self._seeder.readmit(op, result, planned, now_ms)
        except StorageError:
            if (planned and not self.fail_open_budgets) or (rate_ops and not self.fail_open_rate_limits):
                raise
            log.warning(
                "counter storage unavailable: request %s admitted unchecked (fail-open)",
                request.request_id,
                exc_info=True,
            )
            return Reservation(request.request_id, now_ms, 0, tokens, enforced=False)
        if result.status != "ok":
            raise refusal(result, planned, limits, rate_ops, now_ms, strict)
        own = estimate if planned else 0
        reservation = Reservation(
            request.request_id,
            now_ms,
            own,
            tokens,
            tuple(budget_ops),
            tuple(rate_ops),
            soft_crossings(planned, result, request.estimate_nanos) if soft else (),
            True,
            (own, planned, result.budgets, limits, rate_ops, result.rates),
        )
        if lease_seconds is not None:
            reservation.lease_ms = lease_ms
        return reservation

    # ---- settlement

    async def settle(
        self, reservation: Reservation, real_cost_nanos: int, real_tokens: int | None = None
    ) -> bool:
        """Replace the reservation with the real cost; reconcile tokens; free the slot.

        Idempotent by request id: only the first settle counts (a settle after a release
        still charges the cost). A settle after the lease expired charges the cost once.
        Returns False when nothing changed (already settled, or not enforced). A storage
        failure is logged, not raised: the ledger still records the spend. The ``watch``
        (if any) then sees each budget's spend after this settle.
        """
        if real_cost_nanos < 0 or (real_tokens is not None and real_tokens < 0):
            raise ValueError("a real cost or token count cannot be negative")
        if not reservation.enforced:
            return False
        rid = reservation.request_id
        op = new_tuple(
            SettleOp,
            (
                rid,
                int(self.clock() * 1000),
                self._done_tag + rid if ":" not in rid and "%" not in rid else self.keys.request(rid),
                self.done_ttl_ms if not reservation.lease_ms else self._done_ttl(reservation),
                True,
                real_cost_nanos,
                reservation.estimate_tokens if real_tokens is None else real_tokens,
                reservation.budget_ops,
                reservation.rate_ops,
            ),
        )
        try:
            storage = self.storage
            spends = storage.settle_nowait(op) if storage.nowait else await storage.settle(op)
        except StorageError:
            self._not_recorded(op)
            return False
        if spends is None:
            return False
        watch = self.watch
        if watch is not None and spends:
            try:
                watch(reservation, spends, op.now_ms)
            except Exception:  # detection must never fail the request it watches
                log.exception("budget crossing detection failed for %s", rid)
        return True

    async def release(self, reservation: Reservation) -> bool:
        """Give back the reservation, the reserved tokens and the slot (nothing was billed).

        The request still counts against request-rate limits. Idempotent; a release after
        a settle does nothing.
        """
        if not reservation.enforced:
            return False
        rid = reservation.request_id
        op = SettleOp(
            rid,
            self._now_ms(),
            self.keys.request(rid),
            self.done_ttl_ms if not reservation.lease_ms else self._done_ttl(reservation),
            False,
            0,
            0,
            reservation.budget_ops,
            reservation.rate_ops,
        )
        try:
            return await self.storage.settle(op) is not None
        except StorageError:
            self._not_recorded(op)
            return False

    @staticmethod
    def _not_recorded(op: SettleOp) -> None:
        log.warning(
            "counter storage unavailable: %s of %s not recorded in the counters",
            "settle" if op.settle else "release",
            op.request_id,
            exc_info=True,
        )

    def _done_ttl(self, reservation: Reservation) -> int:
        """How long a settle or release is remembered: at least the reservation's own lease."""
        return max(self.done_ttl_ms, reservation.lease_ms)

    async def renew(self, reservation: Reservation) -> int:
        """Extend the lease of a long-running request (a long stream); returns leases renewed.

        The lease is extended by the reservation's own lease when it was admitted with one
        (``admit(..., lease_seconds=...)``), else by the enforcer's.
        """
        if not reservation.enforced:
            return 0
        keys = [b.lease_key for b in reservation.budget_ops if self.mode == "strict"]
        keys += [r.key for r in reservation.rate_ops if r.kind == RATE_PARALLEL]
        if not reservation.lease_ms:
            return await self.storage.renew(reservation.request_id, self._now_ms(), self.lease_ms, keys)
        # Its own lease may outlast its keys' life: they are kept the lease and an hour more.
        counters = [b.key for b in reservation.budget_ops if b.ttl_ms > 0]
        return await self.storage.renew(
            reservation.request_id,
            self._now_ms(),
            reservation.lease_ms,
            keys,
            ttl_ms=reservation.lease_ms + SLACK_MS,
            counters=counters,
        )

    # ---- reading

    async def read(self, request: EnforcementRequest, *, seed_cold: bool = False) -> CounterReading:
        """The counters of ``request``, planned as :meth:`admit` plans them; nothing is taken.

        ``seed_cold``: a budget counter that does not exist yet (after a restart, a flush of
        Redis) is first seeded from the ledger exactly as :meth:`admit` seeds it, so what
        is read is what the next admission would see.
        """
        now_ms = self._now_ms()
        estimate = max(0, request.estimate_nanos) if self.mode == "strict" else 0
        planned = [PlannedBudget(*self._plan(b, now_ms, estimate)) for b in request.budgets]
        limits = [r for r in request.rate_limits if r.limit is not None]
        ops = [self._plan_rate(r, now_ms, max(0, request.estimate_tokens)) for r in limits]
        states, rstates = await self.storage.read(now_ms, [p.op for p in planned], ops)
        seeder = self._seeder if seed_cold else None
        cold = [i for i, st in enumerate(states) if st is None] if seeder is not None else []
        if seeder is not None and cold:
            await seeder.seed(planned, cold, now_ms)
            states, rstates = await self.storage.read(now_ms, [p.op for p in planned], ops)
        return CounterReading(now_ms, planned, list(states), limits, ops, list(rstates))

    async def set_from_ledger(self, budgets: Sequence[BudgetLimit]) -> int:
        """Set the counters of ``budgets`` to the ledger's spend in their current periods,
        keeping their open reservations: a settle after this adds to the value set.

        This is how a change of spend made in the ledger (``/key/update`` with ``spend``,
        :mod:`spendgate.ledger.adjustments`) is enforced at once, on every instance sharing
        the storage: the counters are **set** from the ledger, never added to. A counter
        that does not exist is left alone (the next admission seeds it from the ledger).
        Returns the number of counters set (0 without a seed loader: nothing to read).

        Raises:
            StorageError: the storage or the ledger could not be reached.
        """
        if self._seeder is None:
            return 0
        now_ms = self._now_ms()
        done = 0
        for budget in budgets:
            done += await self._seeder.set_from_ledger(PlannedBudget(*self._plan(budget, now_ms, 0)), now_ms)
        return done

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


def _stretch(
    planned: list[BudgetPlan], budget_ops: list[BudgetOp], rate_ops: list[RateOp], ttl_ms: int
) -> None:
    """Give every expiring budget counter and parallel slot set at least ``ttl_ms`` to live."""
    for i, bop in enumerate(budget_ops):
        if 0 < bop.ttl_ms < ttl_ms:
            budget_ops[i] = bop = bop._replace(ttl_ms=ttl_ms)
            budget, _, window, now_ms = planned[i]
            planned[i] = (budget, bop, window, now_ms)
    for j, rop in enumerate(rate_ops):
        if rop.kind == RATE_PARALLEL and 0 < rop.ttl_ms < ttl_ms:
            rate_ops[j] = rop._replace(ttl_ms=ttl_ms)


def _lease_ms(lease_seconds: float) -> int:
    """A per-request lease in ms (positive, finite)."""
    if not 0 < lease_seconds < float("inf"):
        raise ValueError(f"lease_seconds must be positive and finite, got {lease_seconds!r}")
    return int(lease_seconds * 1000)
