"""In-process counters: one gateway process, no Redis. The executable specification.

Every method runs to completion without awaiting, so it is atomic with respect to other
coroutines; a lock makes it atomic across threads too.

The data model is Redis's (see :mod:`~spendgate.stores.counters.base` and
``docs/enforcement.md``), held in objects (:mod:`~spendgate.stores.counters.memory_keys`)
rather than string-keyed hashes because this is the path of every request:

* a budget counter (:class:`BudgetCounter`; Redis: the hash at ``BudgetOp.key`` and the lease
  zset at ``BudgetOp.lease_key``): ``spend`` is field ``s``, ``buckets[i]`` field ``b<i>``,
  ``reserved`` field ``r``, ``holds[request id]`` field ``q<request id>``, and ``leases``
  the lease zset, with its own expiry (``lease_expires``) like the separate Redis key;
* a sliding-window counter (:class:`SlidingCounter`): fields ``w``, ``p``, ``c``;
* parallel slots (:class:`SlotSet`): request id → lease expiry.

The Lua scripts in ``lua/`` implement the same operations on Redis keys; the equivalence
test (``tests/stores/counters/test_counters_equivalence.py``) runs random operation
sequences against both and requires identical outcomes and counters.

Key expiry follows the caller's clock (``now_ms``), so tests that move time see keys expire
as they would on Redis. A budget counter's, its lease set's and a slot set's expiry is
extended, never shortened (Redis: ``PEXPIRE ... GT``), so a reservation with a long lease
(a batch's) keeps its keys alive whatever shorter requests come after it. An empty lease or
slot set is an absent one (Redis deletes an emptied zset): the next reservation in it sets
its expiry afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from spendgate.stores.counters.base import (
    RATE_PARALLEL,
    RATE_TOKENS,
    TICKS,
    AdmitOp,
    AdmitResult,
    BudgetOp,
    BudgetState,
    RateOp,
    RateState,
    SettleOp,
    Storage,
)
from spendgate.stores.counters.memory_keys import NEVER, BudgetCounter, SlidingCounter, SlotSet

__all__ = ["DEFAULT_MAX_DONE", "MemoryStorage"]

_EMPTY = BudgetState(0, 0, -1)
# NamedTuple constructors are Python functions; tuple.__new__ builds the same value in C
# (used on the per-request path, with every field given in order).
_new = tuple.__new__
# A done marker is one int: (expiry << 2) | state, state 1 settled, 2 released.
_SETTLED, _RELEASED = 1, 2
DEFAULT_MAX_DONE = 10_000
"""Done markers kept at most (oldest evicted first), whatever ``idempotency_seconds`` says."""


class MemoryStorage(Storage):
    """Counters in dicts. Not shared between processes: for one gateway process only.

    Done markers (a settled or released request id) are bounded by time (the settle's
    ``done_ttl_ms``) **and by count**: at most ``max_done`` are kept, the oldest evicted
    first. A marker only has to outlive the terminal calls of its own request (a settle
    after a release, an attempt's release then the request's settle), which come within
    that request's handling; ``max_done`` later settlements are far longer than that, so
    evicting by count keeps the guarantee while one gateway's memory stays flat however
    many requests an hour brings. See ``docs/enforcement.md`` ("Idempotency markers").
    """

    nowait = True

    def __init__(self, *, prefix: str = "sg", max_done: int = DEFAULT_MAX_DONE) -> None:
        if max_done < 1:
            raise ValueError("max_done must be at least 1")
        self.prefix = prefix
        self.max_done = max_done
        self._counters: dict[str, BudgetCounter] = {}
        self._leases: dict[str, BudgetCounter] = {}  # lease key → its counter (for renew)
        self._sliding: dict[str, SlidingCounter] = {}
        self._slots: dict[str, SlotSet] = {}
        # Insertion order is settle order (an updated marker moves to the end), so the first
        # entry is the oldest: eviction by count is popitem(last=False), O(1).
        self._done: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()
        self._ops = 0
        self._sweep_at = 1000

    # ---- helpers

    def _counter(self, key: str, now: int) -> BudgetCounter | None:
        c = self._counters.get(key)
        if c is not None and c.expires <= now:
            del self._counters[key]
            return None
        return c

    def _window(self, r: RateOp, now: int) -> tuple[int, int, int, int]:
        """(previous, current, elapsed ms, window index) of a sliding window, rotated to now."""
        index = now // r.window_ms
        s = self._sliding.get(r.key)
        previous = current = 0
        if s is not None:
            if s.expires <= now:
                del self._sliding[r.key]
            elif s.w == index:
                previous, current = s.p, s.c
            elif s.w == index - 1:
                previous = s.c
        return previous, current, now - index * r.window_ms, index

    def _live_slots(self, key: str, now: int, purge: bool) -> int:
        """Live parallel slots (lease expiry > now); expired ones are dropped if ``purge``."""
        z = self._slots.get(key)
        if z is None:
            return 0
        if z.expires <= now:
            del self._slots[key]
            return 0
        if now < z.low:
            return len(z.members)
        if not purge:
            return len(z.members) - len(z.expired(now))
        z.purge(now)
        if not z.members:
            del self._slots[key]
        return len(z.members)

    def _sweep(self, now: int) -> None:
        # Redis expires keys actively; here an occasional sweep (amortised O(1) per request,
        # counted at settlement: every admitted request is settled or released) drops keys
        # nobody reads again (done markers, past periods).
        for key in [k for k, c in self._counters.items() if c.expires <= now]:
            del self._counters[key]
        for key in [k for k, s in self._sliding.items() if s.expires <= now]:
            del self._sliding[key]
        for key in [k for k, z in self._slots.items() if z.expires <= now or not z.members]:
            del self._slots[key]
        # A counter's lease key expires no later than the counter: both are extended to the
        # same expiry when a reservation is taken, and only the counter's after that. An
        # emptied lease set is gone too (as on Redis); the next reservation registers it again.
        for key in [
            k for k, c in self._leases.items() if c.lease_expires <= now or c.expires <= now or not c.leases
        ]:
            self._leases.pop(key).registered = False
        for key in [k for k, v in self._done.items() if v >> 2 <= now]:
            del self._done[key]
        self._ops = 0
        self._sweep_at = max(
            1000, len(self._counters) + len(self._sliding) + len(self._slots) + len(self._done)
        )

    # ---- operations

    async def admit(self, op: AdmitOp) -> AdmitResult:
        return self.admit_nowait(op)

    def admit_nowait(self, op: AdmitOp) -> AdmitResult:
        # acquire/release rather than `with`: half the cost, on the path of every request.
        self._lock.acquire()
        try:
            # The per-request path: fields are unpacked once, and the first pass keeps what
            # the second (taking everything) needs.
            rid, now, lease_ms, strict, bops, rops = op
            counters = self._counters
            budgets: list[BudgetState] = []
            found: list[tuple[BudgetCounter | None, str, str, int, int]] = []
            cold: list[int] = []
            failed = False
            for b in bops:
                key, lease_key, m, estimate, _, bucket_ms, _, ttl, require_seed = b
                c = counters.get(key)
                if c is not None and c.expires <= now:
                    del counters[key]
                    c = None
                if c is None:
                    if require_seed:
                        cold.append(len(found))
                    budgets.append(_EMPTY)
                    spend = reserved = 0
                else:
                    if c.lease_low <= now or c.lease_expires <= now:
                        c.purge(now)  # expired leases give their reservations back
                    if bucket_ms:
                        state = c.state(b, now)
                        spend, reserved = state[0], state[1]
                        budgets.append(state)
                    else:
                        spend, reserved = c.spend, c.reserved
                        budgets.append(_new(BudgetState, (spend, reserved, -1)))
                found.append((c, key, lease_key, estimate, ttl))
                if m >= 0 and not failed:
                    failed = (spend + reserved + estimate > m) if strict else (spend + reserved >= m)
            if cold:
                return _new(AdmitResult, ("cold", tuple(budgets), (), tuple(cold)))

            rates: list[RateState] = []
            seen: list[tuple[int, int, int]] = []  # previous, current, window index
            rate_failed = False
            for r in rops:
                key, kind, limit, amount, window_ms, _, _ = r
                if kind == RATE_PARALLEL:
                    n = self._live_slots(key, now, purge=True)
                    rates.append(_new(RateState, (0, n, 0)))
                    seen.append((0, 0, 0))
                    if n + 1 > limit:
                        rate_failed = True
                    continue
                # The sliding window rotated to now (as _window, inline: once per request).
                index = now // window_ms
                previous = current = 0
                sw = self._sliding.get(key)
                if sw is not None:
                    if sw.expires <= now:
                        del self._sliding[key]
                    elif sw.w == index:
                        previous, current = sw.p, sw.c
                    elif sw.w == index - 1:
                        previous = sw.c
                elapsed = now - index * window_ms
                rates.append(_new(RateState, (previous, current, elapsed)))
                seen.append((previous, current, index))
                ticks = elapsed * TICKS // window_ms
                if previous * (TICKS - ticks) + (current + amount) * TICKS > limit * TICKS:
                    rate_failed = True
            if failed:
                return _new(AdmitResult, ("budget", tuple(budgets), tuple(rates), ()))
            if rate_failed:
                return _new(AdmitResult, ("rate", tuple(budgets), tuple(rates), ()))

            # Everything passed: take it all.
            expiry = now + lease_ms
            for c, key, lease_key, estimate, ttl in found:
                if c is None:  # looked up again: the same key may appear twice in a request
                    c = counters.get(key)
                    if c is None:
                        c = counters[key] = BudgetCounter()
                    if ttl > 0:  # a new key: its first expiry
                        c.expires = now + ttl
                elif ttl > 0 and now + ttl > c.expires:
                    c.expires = now + ttl
                if strict:
                    holds = c.holds
                    c.reserved += estimate - holds.get(rid, 0)
                    holds[rid] = estimate
                    if c.lease_expires <= now:  # the lease key expired: a new one
                        c.drop_leases()
                    leases = c.leases
                    new_set = not leases  # Redis deletes an emptied zset: its expiry is new
                    leases[rid] = expiry
                    if expiry < c.lease_low:
                        c.lease_low = expiry
                    if ttl > 0 and (new_set or now + ttl > c.lease_expires):
                        c.lease_expires = now + ttl
                    if not c.registered:
                        self._leases[lease_key] = c
                        c.registered = True
            if rops:
                for j, r in enumerate(rops):
                    key, kind, _, amount, _, _, ttl = r
                    if kind == RATE_PARALLEL:
                        z = self._slots.get(key)
                        if z is None or z.expires <= now:
                            z = self._slots[key] = SlotSet()
                        new_set = not z.members  # as for a lease set
                        z.add(rid, expiry)
                        if ttl > 0 and (new_set or now + ttl > z.expires):
                            z.expires = now + ttl
                        continue
                    previous, current, index = seen[j]
                    s = self._sliding.get(key)
                    if s is None or s.expires <= now:
                        s = self._sliding[key] = SlidingCounter(index, previous, current + amount)
                    else:
                        s.w, s.p, s.c = index, previous, current + amount
                    if ttl > 0:
                        s.expires = now + ttl
            return _new(AdmitResult, ("ok", tuple(budgets), tuple(rates), ()))
        finally:
            self._lock.release()

    async def settle(self, op: SettleOp) -> tuple[int, ...] | None:
        return self.settle_nowait(op)

    def settle_nowait(self, op: SettleOp) -> tuple[int, ...] | None:
        self._lock.acquire()
        try:
            rid, now, done_key, done_ttl_ms, settle, cost, real_tokens, bops, rops = op
            self._ops += 1
            if self._ops >= self._sweep_at:
                self._sweep(now)
            done = self._done.get(done_key)
            state = 0 if done is None or done >> 2 <= now else done & 3
            if state == _SETTLED or (state and not settle):
                return None
            counters = self._counters
            spends: list[int] = []
            for b in bops:
                key, _, _, _, name, bucket_ms, oldest, ttl, require_seed = b
                c = counters.get(key)
                if c is not None and c.expires <= now:
                    del counters[key]
                    c = None
                if c is None:
                    if require_seed or not settle:
                        spends.append(-1)
                        continue
                    c = counters[key] = BudgetCounter()
                    if ttl > 0:  # a new key: its first expiry
                        c.expires = now + ttl
                else:
                    old = c.holds.pop(rid, None)
                    if old is not None:
                        c.reserved -= old
                        c.leases.pop(rid, None)
                if settle:
                    if bucket_ms:
                        index = int(name[1:])
                        before = c.buckets.get(index, 0)
                        c.buckets[index] = before + cost
                        if before == 0:  # a new bucket: drop the ones that left the window
                            for i in [i for i in c.buckets if i < oldest]:
                                del c.buckets[i]
                    else:
                        c.spend += cost
                    if ttl > 0 and now + ttl > c.expires:
                        c.expires = now + ttl
                    spends.append(c.state(b, now).spend if bucket_ms else c.spend)
                else:
                    spends.append(-1)
            if rops:
                released = state == _RELEASED
                for r in rops:
                    key, kind, _, amount, _, window_index, _ = r
                    if kind == RATE_PARALLEL:
                        z = self._slots.get(key)
                        if z is not None:
                            z.members.pop(rid, None)
                        continue
                    if kind != RATE_TOKENS:
                        continue
                    delta = (real_tokens - (0 if released else amount)) if settle else -amount
                    s = self._sliding.get(key)
                    if s is None or delta == 0:
                        continue
                    if s.expires <= now:
                        del self._sliding[key]
                    elif s.w == window_index:
                        s.c = max(0, s.c + delta)
                    elif s.w == window_index + 1:
                        s.p = max(0, s.p + delta)
            expires = now + done_ttl_ms if done_ttl_ms > 0 else NEVER
            marks = self._done
            if done is not None:  # a settle after a release (or a stale marker): now the newest
                marks.move_to_end(done_key)
            marks[done_key] = expires << 2 | (_SETTLED if settle else _RELEASED)
            if len(marks) > self.max_done:
                marks.popitem(last=False)
            return tuple(spends)
        finally:
            self._lock.release()

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
        with self._lock:
            renewed = 0
            until = now_ms + ttl_ms  # a key kept without expiry (NEVER) is left so
            for key in keys:
                members: dict[str, int] | None = None
                z = self._slots.get(key)
                c = None
                if z is not None:
                    if z.expires > now_ms:
                        members = z.members
                else:
                    c = self._leases.get(key)
                    if c is not None and c.lease_expires > now_ms and c.expires > now_ms:
                        members = c.leases
                if members is not None and request_id in members:
                    members[request_id] = now_ms + lease_ms
                    renewed += 1
                    if ttl_ms > 0:
                        if z is not None and z.expires != NEVER and until > z.expires:
                            z.expires = until
                        elif c is not None and c.lease_expires != NEVER and until > c.lease_expires:
                            c.lease_expires = until
            if ttl_ms > 0:
                for key in counters:
                    counter = self._counter(key, now_ms)
                    if counter is not None and until > counter.expires:
                        counter.expires = until
            return renewed

    async def read(
        self, now_ms: int, budgets: Sequence[BudgetOp], rates: Sequence[RateOp]
    ) -> tuple[tuple[BudgetState | None, ...], tuple[RateState, ...]]:
        with self._lock:
            now = now_ms
            bout: list[BudgetState | None] = []
            for b in budgets:
                c = self._counter(b.key, now)
                if c is None:
                    bout.append(None)
                    continue
                spend, reserved, oldest = c.state(b, now)
                bout.append(BudgetState(spend, reserved - c.expired_reserved(now), oldest))
            rout: list[RateState] = []
            for r in rates:
                if r.kind == RATE_PARALLEL:
                    rout.append(RateState(0, self._live_slots(r.key, now, purge=False), 0))
                else:
                    previous, current, elapsed, _ = self._window(r, now)
                    rout.append(RateState(previous, current, elapsed))
            return tuple(bout), tuple(rout)

    async def seed(self, key: str, values: Mapping[str, int], ttl_ms: int, now_ms: int) -> bool:
        with self._lock:
            if self._counter(key, now_ms) is not None:
                return False
            c = self._counters[key] = BudgetCounter()
            for name, value in values.items():
                c.set_field(name, value)
            if ttl_ms > 0:
                c.expires = now_ms + ttl_ms
            return True

    async def set_spend(self, key: str, field: str, value: int, now_ms: int) -> bool:
        with self._lock:
            c = self._counter(key, now_ms)
            if c is None:
                return False
            if field != "s":
                c.buckets.clear()
            c.set_field(field, value)
            return True

    async def clear(self) -> None:
        with self._lock:
            self._counters.clear()
            for c in self._leases.values():
                c.registered = False
            self._leases.clear()
            self._sliding.clear()
            self._slots.clear()
            self._done.clear()

    def keys(self, now_ms: int) -> list[str]:
        """The live keys (for tests and debugging)."""
        with self._lock:
            live: list[str] = [k for k, c in self._counters.items() if c.expires > now_ms]
            live += [
                k
                for k, c in self._leases.items()
                if c.leases and c.lease_expires > now_ms and c.expires > now_ms
            ]
            live += [k for k, s in self._sliding.items() if s.expires > now_ms]
            live += [k for k, z in self._slots.items() if z.expires > now_ms and z.members]
            return live
