"""Where counters live: the storage interface and the operations it executes atomically.

A storage knows nothing about scopes, windows or money: the admission computes every key,
period, amount and expiry and hands over one flat operation per call. Each call is
**atomic** (one Lua script on Redis; one critical section in memory) and each is one round
trip. :class:`~spendgate.stores.counters.memory.MemoryStorage` is the executable
specification; the Lua scripts in ``lua/`` must behave identically (the shared test suite
proves it on random operation sequences).

Units: money in integer nano-USD, time in integer milliseconds since the Unix epoch, taken
from the caller's clock (``now_ms``) so tests can drive time. Key expiries (``ttl_ms``) are
relative and, on Redis, run on the server's clock. A budget counter's, its lease zset's and
a parallel slot zset's expiry is only ever extended, never shortened (``PEXPIRE ... GT``):
a reservation with a long lease (a batch's, 24 h) gives its keys a long life that the
shorter requests after it must not cut.

Budget counter (a hash at ``BudgetOp.key``): ``s`` = settled spend of a calendar period;
``b<i>`` = settled spend in bucket ``i`` (``i = now_ms // bucket_ms``) of a rolling window;
``r`` = sum of open reservations; ``q<request id>`` = that request's reservation. Its lease
zset (``BudgetOp.lease_key``) scores each open reservation by its lease expiry.

Rate counter (a hash at ``RateOp.key``): ``w`` = index of the current fixed window
(``now_ms // window_ms``), ``c`` = units taken in it, ``p`` = units taken in the one before.
Parallel slots: a zset of request ids scored by lease expiry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

__all__ = [
    "RATE_PARALLEL",
    "RATE_TOKENS",
    "RATE_WINDOW",
    "TICKS",
    "AdmitOp",
    "AdmitResult",
    "BudgetOp",
    "BudgetState",
    "RateOp",
    "RateState",
    "SettleOp",
    "Storage",
]

TICKS = 1000
"""A sliding window's previous-window weight moves in steps of 1/TICKS of the window."""

RATE_WINDOW = 0
"""A sliding-window counter of requests (not reconciled at settle)."""
RATE_PARALLEL = 1
"""Parallel slots."""
RATE_TOKENS = 2
"""A sliding-window counter of tokens (reconciled to the real usage at settle)."""


class BudgetOp(NamedTuple):
    """One budget window of one request.

    ``max_nanos < 0`` means unlimited. ``bucket_ms == 0`` for calendar periods (spend in
    field ``s``); for a rolling window the spend is the sum of fields ``b<i>`` with
    ``i >= oldest_bucket`` and ``field`` is the bucket this request is charged to.
    ``ttl_ms == 0`` means the key never expires (lifetime). ``require_seed``: the key must
    exist (it was seeded from the ledger); a missing key is reported as *cold*.
    """

    key: str
    lease_key: str
    max_nanos: int
    estimate_nanos: int
    field: str = "s"
    bucket_ms: int = 0
    oldest_bucket: int = 0
    ttl_ms: int = 0
    require_seed: bool = False


class RateOp(NamedTuple):
    """One rate limit of one request. ``kind``: RATE_WINDOW, RATE_TOKENS or RATE_PARALLEL.

    For a sliding window, ``amount`` units are taken (1 request, or the token estimate);
    ``window_index`` is only used by settle/release (the window the units were taken in).
    For parallel, one slot named by the request id is taken.
    """

    key: str
    kind: int
    limit: int
    amount: int = 1
    window_ms: int = 0
    window_index: int = 0
    ttl_ms: int = 0


class AdmitOp(NamedTuple):
    request_id: str
    now_ms: int
    lease_ms: int
    strict: bool
    budgets: Sequence[BudgetOp]
    rates: Sequence[RateOp]


class SettleOp(NamedTuple):
    """Settle (``settle=True``: charge ``cost_nanos``, reconcile tokens to ``real``) or release.

    ``rates`` carries each rate op with ``amount`` = the units reserved at admission;
    ``real_tokens`` replaces them for token limits (release counts them as 0).
    """

    request_id: str
    now_ms: int
    done_key: str
    done_ttl_ms: int
    settle: bool
    cost_nanos: int
    real_tokens: int
    budgets: Sequence[BudgetOp]
    rates: Sequence[RateOp]


class BudgetState(NamedTuple):
    """A budget counter as seen before this request: settled spend and open reservations.

    ``oldest_bucket`` is the oldest non-empty bucket of a rolling window (-1: none).
    """

    spend: int
    reserved: int
    oldest_bucket: int = -1


class RateState(NamedTuple):
    """A rate counter before this request.

    Sliding window: ``previous`` and ``current`` units and ``elapsed_ms`` into the current
    window. Parallel: ``current`` slots in use, ``previous`` and ``elapsed_ms`` = 0.
    """

    previous: int
    current: int
    elapsed_ms: int


class AdmitResult(NamedTuple):
    """``status``: ``ok`` (everything taken), ``budget`` / ``rate`` (nothing taken), ``cold``.

    ``cold`` lists the indices of budget ops whose key must be seeded first (nothing taken).
    """

    status: Literal["ok", "budget", "rate", "cold"]
    budgets: tuple[BudgetState, ...]
    rates: tuple[RateState, ...]
    cold: tuple[int, ...] = ()


class Storage(ABC):
    """Counters for budgets and rate limits; every method is one atomic operation.

    ``prefix`` is the start of every key (and, on Redis, the Cluster hash tag ``{prefix}``).

    A storage that does no I/O (in-process) sets ``nowait = True`` and implements
    :meth:`admit_nowait` and :meth:`settle_nowait`: the admission then calls them directly,
    saving a coroutine per request on the hot path. Their semantics are :meth:`admit` and
    :meth:`settle`'s.
    """

    prefix: str = "sg"
    nowait: bool = False

    def admit_nowait(self, op: AdmitOp) -> AdmitResult:
        """:meth:`admit` without awaiting (only when ``nowait`` is set)."""
        raise NotImplementedError

    def settle_nowait(self, op: SettleOp) -> tuple[int, ...] | None:
        """:meth:`settle` without awaiting (only when ``nowait`` is set)."""
        raise NotImplementedError

    @abstractmethod
    async def admit(self, op: AdmitOp) -> AdmitResult:
        """Check every budget and rate limit of a request and, if all pass, take them all.

        In strict mode a budget passes when ``spend + reserved + estimate <= max`` and the
        estimate is then reserved under a lease of ``lease_ms``; in check-only mode it passes
        when ``spend + reserved < max`` and nothing is reserved. A sliding-window rate passes
        when ``previous × (1 − elapsed/window) + current + amount <= limit`` (elapsed in
        steps of 1/TICKS); a parallel limit when ``slots + 1 <= limit``. Expired leases and
        slots are dropped first. If anything fails, nothing is taken.
        """

    @abstractmethod
    async def settle(self, op: SettleOp) -> tuple[int, ...] | None:
        """Settle or release a request exactly once; returns None if it was already done.

        Else one number per budget of ``op``: its spend right after this settle (the
        period's, or the rolling window's sum), or -1 where nothing was charged (a release,
        a cold counter). The spend before is that minus ``cost_nanos``: both are read in the
        same atomic step, so of concurrent settles exactly one sees a given level crossed
        (alert detection, DESIGN §5.13, reads them and costs no extra round trip).

        Settle: each reservation is replaced by ``cost_nanos`` (charged even if the lease
        expired), token units are reconciled to ``real_tokens``, slots freed. A settle after
        a release still charges the cost. Release: reservations, tokens and slots are given
        back; a release after a settle or a release does nothing.
        """

    @abstractmethod
    async def renew(
        self,
        request_id: str,
        now_ms: int,
        lease_ms: int,
        keys: Sequence[str],
        *,
        ttl_ms: int = 0,
        counters: Sequence[str] = (),
    ) -> int:
        """Extend the leases of an open request (lease zsets or slot zsets in ``keys``).

        ``ttl_ms > 0``: the sets that held a renewed lease, and the budget counters in
        ``counters``, then live at least ``ttl_ms`` more (an expiry is never shortened; a
        key kept without expiry is left so). A long lease renewed needs its keys to last.
        """

    @abstractmethod
    async def read(
        self, now_ms: int, budgets: Sequence[BudgetOp], rates: Sequence[RateOp]
    ) -> tuple[tuple[BudgetState | None, ...], tuple[RateState, ...]]:
        """The current state, as :meth:`admit` would see it, without changing anything.

        A budget whose key does not exist is ``None``.
        """

    @abstractmethod
    async def seed(self, key: str, values: Mapping[str, int], ttl_ms: int, now_ms: int) -> bool:
        """Set a cold counter's fields if the key does not exist (never adds); True if set.

        ``ttl_ms == 0``: no expiry. ``now_ms`` only dates the expiry of in-process keys.
        """

    @abstractmethod
    async def set_spend(self, key: str, field: str, value: int, now_ms: int) -> bool:
        """Set an existing budget counter's settled spend to ``value`` (from the ledger),
        keeping its open reservations; True if set.

        ``field`` is ``s`` for a calendar period; for a rolling window it is a bucket
        ``b<i>``, which then holds the whole spend (every other bucket is dropped). A counter
        that does not exist is left so: it is seeded from the ledger when next used.
        """

    @abstractmethod
    async def clear(self) -> None:
        """Delete every key of this storage (its prefix)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
