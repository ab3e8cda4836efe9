"""The process-wide budget: ``spendgate.max_budget``, reserved before each call, settled after.

LiteLLM's ``litellm.max_budget`` checks the spend before a call and adds the cost after
(and in 1.109.1 never adds it, so it never fires). Here, in ``strict`` mode (the default),
each call **reserves** its worst case before it is sent and settles to its real cost after
(or releases it when nothing is billed), so concurrent calls, threads and asyncio tasks
alike, can never overshoot: the check and the reservation are one step under a lock.
``check_only`` is LiteLLM's behaviour (refuse once the spend has reached the limit).

The counters are integer nano-USD behind one ``threading.Lock``, held for a few integer
operations and never across an ``await``, so it is safe from threads and from an event
loop. A call that reserved nothing (no limit, or ``check_only``) settles without the lock:
its cost joins a queue (``deque.append`` is atomic) that is counted, in order, under the
lock before anything reads or checks the spend, and at least every
:data:`_UNCOUNTED_KEPT` calls.

``max_budget_duration`` ("1d", "7d", "1mo" …) turns the limit into calendar periods of
:mod:`spendgate.core.periods` in ``budget_timezone``: a period's spend is what was settled
inside it, so a new period starts at zero when the clock moves into it (no reset
job), and a window set or changed after spending counts the calls settled inside its
current period (from :class:`~spendgate.sdk.budget_history.SpendHistory`), not the
process's whole spend.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from spendgate.core.money import from_nano
from spendgate.core.periods import Period, Window, get_timezone, parse_duration, period_for
from spendgate.sdk.amounts import plain_usd
from spendgate.sdk.budget_history import SpendHistory
from spendgate.sdk.budget_reservation import usd_to_nanos
from spendgate.sdk.errors import refusal_for

__all__ = ["BUDGET", "BudgetMode", "GlobalBudget", "Hold"]

BudgetMode = Literal["strict", "check_only"]

_UNCOUNTED_KEPT = 1024
"""Settled costs that may wait in the queue before the settling call counts them."""


class Hold:
    """One call's reservation: settled or released once (later calls do nothing)."""

    __slots__ = ("done", "nanos")

    def __init__(self, nanos: int) -> None:
        self.nanos = nanos
        self.done = False


class GlobalBudget:
    """The counters behind ``spendgate.max_budget`` (one per process: :data:`BUDGET`).

    Args:
        clock: the time, in epoch seconds (tests inject one).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._duration: str | None = None
        self._window: Window | None = None
        self._tz = "UTC"
        self._mode: BudgetMode = "strict"
        self._period: Period | None = None
        self._period_start = self._period_end = 0.0
        self._history = SpendHistory()
        self._spent = 0
        """The spend the limit applies to: the current period's (the lifetime's without a window)."""
        self._reserved = 0
        self._uncounted: deque[tuple[int, float]] = deque()
        """(nano-USD, when) settled without the lock, not yet in the counters."""

    # -- settings (the facade forwards spendgate.<name> here) ---------------------------------

    @property
    def max_budget(self) -> Decimal | None:
        """The limit in USD (None: unlimited; spend is still counted)."""
        return None if self._limit is None else plain_usd(from_nano(self._limit))

    @max_budget.setter
    def max_budget(self, value: object) -> None:
        limit = None if value is None else usd_to_nanos(value, "spendgate.max_budget", limit=True)
        with self._lock:
            self._limit = limit

    @property
    def max_budget_duration(self) -> str | None:
        """The budget window as given (``"1d"``, ``"30d"``, ``"1mo"`` …); None: lifetime."""
        return self._duration

    @max_budget_duration.setter
    def max_budget_duration(self, value: str | None) -> None:
        window = None if value is None else parse_duration(value)
        with self._lock:
            self._count()
            self._duration, self._window, self._period = value, window, None
            if window is None:
                self._spent = self._history.total

    @property
    def budget_timezone(self) -> str:
        """The IANA timezone the budget's calendar periods follow (default UTC)."""
        return self._tz

    @budget_timezone.setter
    def budget_timezone(self, value: str) -> None:
        get_timezone(value)  # ValueError for an unknown zone
        with self._lock:
            self._tz, self._period = value, None

    @property
    def budget_mode(self) -> BudgetMode:
        """``strict`` (reserve the worst case) or ``check_only`` (LiteLLM's check)."""
        return self._mode

    @budget_mode.setter
    def budget_mode(self, value: str) -> None:
        if value == "strict":
            self._mode = "strict"
        elif value == "check_only":
            self._mode = "check_only"
        else:
            raise ValueError(f"spendgate.budget_mode must be 'strict' or 'check_only', got {value!r}")

    @property
    def current_cost(self) -> Decimal:
        """The spend of the current period (all time without a duration), exact USD."""
        return plain_usd(from_nano(self.current_cost_nanos))

    @property
    def current_cost_nanos(self) -> int:
        with self._lock:
            self._count()
            self._roll(self._clock())
            return self._spent

    @property
    def needs_estimate(self) -> bool:
        """True when a call must compute its worst case (strict mode with a limit)."""
        return self._limit is not None and self._mode == "strict"

    @property
    def reserved_nanos(self) -> int:
        """What calls in flight have reserved."""
        with self._lock:
            return self._reserved

    # -- reserve / settle / release ----------------------------------------------------------

    def reserve(
        self,
        worst_nanos: int,
        *,
        unbounded_output: int | None = None,
        catalogued_output: bool = False,
        endpoint: str = "",
    ) -> Hold:
        """Reserve a call's worst case (strict) or check the spend (check_only).

        Args:
            worst_nanos: the most the call can cost.
            unbounded_output: when the call declares no output cap, the output tokens its
                worst case assumed (named in the refusal, with how to bound it).
            catalogued_output: ``unbounded_output`` is the model's maximum in the
                catalogue (else the default the catalogue's silence left).
            endpoint: the endpoint the call is to (``messages`` …): a refusal is raised as
                :func:`~spendgate.sdk.errors.refusal_for` that endpoint says.

        Raises:
            BudgetExceededError: the call does not fit.
        """
        if self._limit is None and worst_nanos <= 0:
            return Hold(0)  # unlimited and nothing to reserve: no lock (the spend is counted at settle)
        with self._lock:
            self._count()
            self._roll(self._clock())
            limit = self._limit
            strict = self._mode == "strict"
            amount = max(0, worst_nanos) if strict else 0
            if limit is not None:
                over = self._spent + self._reserved + amount > limit if strict else self._spent >= limit
                if over:
                    period = self._period
                    raise refusal_for(endpoint)(
                        window=self._window.name if self._window is not None else "lifetime",
                        spend_nanos=self._spent,
                        reserved_nanos=self._reserved,
                        limit_nanos=limit,
                        requested_nanos=amount,
                        reset_at=period.end if period is not None else None,
                        unbounded_output=unbounded_output if strict else None,
                        catalogued_output=catalogued_output,
                    )
            self._reserved += amount
            return Hold(amount)

    def settle(self, hold: Hold, cost_nanos: int) -> None:
        """The call's real cost replaces its reservation (once)."""
        if not hold.nanos:  # nothing reserved: queued, counted before the spend is next read
            if hold.done:
                return
            hold.done = True
            if cost_nanos > 0:
                uncounted = self._uncounted
                uncounted.append((cost_nanos, self._clock()))
                if len(uncounted) >= _UNCOUNTED_KEPT:
                    with self._lock:
                        self._count()
            return
        with self._lock:
            if hold.done:
                return
            hold.done = True
            self._reserved -= hold.nanos
            if cost_nanos > 0:
                self._count()  # first: the costs settled before this one
                self._add(cost_nanos, self._clock())

    def release(self, hold: Hold) -> None:
        """Nothing is billed: give the reservation back (once)."""
        self.settle(hold, 0)

    def reset(self) -> None:
        """Back to the defaults: no limit, no spend, strict, lifetime, UTC (tests use it)."""
        with self._lock:
            self._uncounted.clear()
            self._limit, self._duration, self._window, self._period = None, None, None, None
            self._tz, self._mode, self._spent, self._reserved = "UTC", "strict", 0, 0
            self._history = SpendHistory()

    def _add(self, nanos: int, at: float) -> None:
        """Count ``nanos`` settled at ``at`` (lock held)."""
        if self._window is not None:
            self._roll(at)  # first: the period it is settled in
        self._history.add(nanos, at)
        self._spent += nanos

    def _count(self) -> None:
        """Count the costs settled without the lock, in the order they were settled (lock
        held; ``popleft`` is atomic, so a cost appended meanwhile waits for the next count)."""
        uncounted = self._uncounted
        while uncounted:
            nanos, at = uncounted.popleft()
            self._add(nanos, at)

    def _roll(self, now: float) -> None:
        """Keep ``_spent`` the spend of the period the clock is in (lock held): when it moves
        into another period (or the window or timezone changed), the spend settled inside
        that period, which is 0 for a period the clock has just entered."""
        if self._window is None:
            return
        if self._period is None or not (self._period_start <= now < self._period_end):
            current = period_for(self._window, datetime.fromtimestamp(now, UTC), self._tz)
            if self._period is None or current.key != self._period.key:
                self._spent = self._history.since(current.start.timestamp())
            self._period = current
            self._period_start, self._period_end = current.start.timestamp(), current.end.timestamp()


BUDGET = GlobalBudget()
"""The process's budget (``spendgate.max_budget`` and friends read and write it)."""
