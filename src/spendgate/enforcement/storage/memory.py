"""In-process counters: one gateway process, no Redis. The executable specification.

Every method runs to completion without awaiting, so it is atomic with respect to other
coroutines; a lock makes it atomic across threads too. The Lua scripts in ``lua/`` are
line-by-line translations of these methods.

Key expiry follows the caller's clock (``now_ms``), so tests that move time see keys expire
as they would on Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from spendgate.enforcement.storage.base import (
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

__all__ = ["MemoryStorage"]

_NEVER = 1 << 62
_EMPTY = BudgetState(0, 0, -1)


class _ZSet:
    """Member → score, with a lower bound on the smallest score to skip purges cheaply."""

    __slots__ = ("low", "members")

    def __init__(self) -> None:
        self.members: dict[str, int] = {}
        self.low = _NEVER

    def add(self, member: str, score: int) -> None:
        self.members[member] = score
        if score < self.low:
            self.low = score

    def expired(self, now_ms: int) -> list[str]:
        """Members whose score is <= now (not removed); tightens ``low`` as it scans."""
        if now_ms < self.low:
            return []
        gone = []
        low = _NEVER
        for member, score in self.members.items():
            if score <= now_ms:
                gone.append(member)
            elif score < low:
                low = score
        if not gone:
            self.low = low
        return gone

    def refresh_low(self) -> None:
        self.low = min(self.members.values(), default=_NEVER)


class _Entry:
    __slots__ = ("expires", "value")

    def __init__(self, value: dict[str, int] | _ZSet) -> None:
        self.value = value
        self.expires = _NEVER


class MemoryStorage(Storage):
    """Counters in a dict. Not shared between processes: for one gateway process only."""

    def __init__(self, *, prefix: str = "sg") -> None:
        self.prefix = prefix
        self._data: dict[str, _Entry] = {}
        self._done: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._ops = 0
        self._sweep_at = 1000

    # ---- primitive helpers (the Redis commands the Lua uses)

    def _get(self, key: str, now: int) -> _Entry | None:
        entry = self._data.get(key)
        if entry is not None and entry.expires <= now:
            del self._data[key]
            return None
        return entry

    def _hash(self, key: str, now: int) -> dict[str, int] | None:
        entry = self._get(key, now)
        return None if entry is None else entry.value  # type: ignore[return-value]

    def _zset(self, key: str, now: int) -> _ZSet | None:
        entry = self._get(key, now)
        return None if entry is None else entry.value  # type: ignore[return-value]

    def _create(self, key: str, now: int, zset: bool = False) -> _Entry:
        entry = self._get(key, now)
        if entry is None:
            entry = self._data[key] = _Entry(_ZSet() if zset else {})
        return entry

    def _hcreate(self, key: str, now: int) -> tuple[_Entry, dict[str, int]]:
        entry = self._create(key, now)
        assert isinstance(entry.value, dict)
        return entry, entry.value

    def _zcreate(self, key: str, now: int) -> tuple[_Entry, _ZSet]:
        entry = self._create(key, now, zset=True)
        assert isinstance(entry.value, _ZSet)
        return entry, entry.value

    def _expire(self, entry: _Entry, ttl_ms: int, now: int) -> None:
        if ttl_ms > 0:
            entry.expires = now + ttl_ms

    def _zrem(self, key: str, member: str, now: int) -> None:
        # An emptied set is kept until its key expires (Redis deletes it; nothing can tell
        # the difference, and reusing it saves an allocation per request).
        entry = self._data.get(key)
        if entry is not None:
            entry.value.members.pop(member, None)  # type: ignore[union-attr]

    def _purge_leases(self, h: dict[str, int], lease_key: str, now: int) -> int:
        """Drop expired reservations; returns the reserved total that remains."""
        zset = self._zset(lease_key, now)
        if zset is not None:
            gone = zset.expired(now)
            if gone:
                for member in gone:
                    del zset.members[member]
                    h["r"] = h.get("r", 0) - h.pop("q" + member, 0)
                zset.refresh_low()
                if not zset.members:
                    del self._data[lease_key]
        return h.get("r", 0)

    def _expired_reserved(self, h: dict[str, int], lease_key: str, now: int) -> int:
        zset = self._zset(lease_key, now)
        if zset is None:
            return 0
        return sum(h.get("q" + m, 0) for m in zset.expired(now))

    @staticmethod
    def _spend(h: dict[str, int], b: BudgetOp, now: int) -> tuple[int, int]:
        """Spend of a counter and its oldest non-empty bucket (rolling windows; else -1).

        A rolling window sums buckets ``oldest_bucket .. now // bucket_ms``: it scans the
        fields when there are fewer fields than buckets, else reads the buckets by name, so
        the cost is at most the smaller of the two.
        """
        if not b.bucket_ms:
            return h.get("s", 0), -1
        first, last = b.oldest_bucket, now // b.bucket_ms
        spend, oldest = 0, -1
        if len(h) < last - first + 1:  # fewer fields than buckets: scan the fields
            for name, value in h.items():
                if value and name[0] == "b" and name[1:].isdigit():
                    index = int(name[1:])
                    if first <= index <= last:
                        spend += value
                        if oldest < 0 or index < oldest:
                            oldest = index
            return spend, oldest
        for index in range(first, last + 1):
            value = h.get(f"b{index}", 0)
            if value:
                spend += value
                if oldest < 0:
                    oldest = index
        return spend, oldest

    @staticmethod
    def _prune_buckets(h: dict[str, int], oldest: int) -> None:
        """Delete the buckets older than ``oldest`` (run when a new bucket is started)."""
        for name in [n for n in h if n[0] == "b" and n[1:].isdigit() and int(n[1:]) < oldest]:
            del h[name]

    def _rate_state(self, r: RateOp, now: int) -> tuple[int, int, int, int]:
        """(previous, current, elapsed ms, window index) of a sliding window, rotated to now."""
        index = now // r.window_ms
        h = self._hash(r.key, now)
        previous = current = 0
        if h is not None:
            w = h.get("w", 0)
            if w == index:
                previous, current = h.get("p", 0), h.get("c", 0)
            elif w == index - 1:
                previous = h.get("c", 0)
        return previous, current, now - index * r.window_ms, index

    def _slots(self, r: RateOp, now: int, purge: bool) -> int:
        """Live parallel slots (lease expiry > now); expired ones are dropped if ``purge``."""
        entry = self._data.get(r.key)
        if entry is None:
            return 0
        if entry.expires <= now:
            del self._data[r.key]
            return 0
        zset: _ZSet = entry.value  # type: ignore[assignment]
        if now < zset.low:
            return len(zset.members)
        gone = zset.expired(now)
        if not purge:
            return len(zset.members) - len(gone)
        for member in gone:
            del zset.members[member]
        zset.refresh_low()
        if not zset.members:
            del self._data[r.key]
        return len(zset.members)

    # ---- operations

    async def admit(self, op: AdmitOp) -> AdmitResult:
        with self._lock:
            return self._admit(op)

    def _tick(self, now: int) -> None:
        # Redis expires keys actively; here an occasional sweep (amortised O(1) per call)
        # drops keys nobody reads again (done markers, past periods).
        self._ops += 1
        if self._ops >= self._sweep_at:
            for key in [k for k, e in self._data.items() if e.expires <= now]:
                del self._data[key]
            for key in [k for k, v in self._done.items() if v[1] <= now]:
                del self._done[key]
            self._ops = 0
            self._sweep_at = max(1000, len(self._data) + len(self._done))

    def _admit(self, op: AdmitOp) -> AdmitResult:
        now = op.now_ms
        strict = op.strict
        data = self._data
        self._tick(now)
        budgets: list[BudgetState] = []
        cold: list[int] = []
        failed = False
        for i, b in enumerate(op.budgets):
            entry = data.get(b.key)
            if entry is not None and entry.expires <= now:
                del data[b.key]
                entry = None
            if entry is None:
                if b.require_seed:
                    cold.append(i)
                budgets.append(_EMPTY)
                spend = reserved = 0
            else:
                h: dict[str, int] = entry.value  # type: ignore[assignment]
                lease = data.get(b.lease_key)
                if lease is not None and (lease.expires <= now or lease.value.low <= now):  # type: ignore[union-attr]
                    self._purge_leases(h, b.lease_key, now)
                reserved = h.get("r", 0)
                if b.bucket_ms:
                    spend, oldest = self._spend(h, b, now)
                    budgets.append(BudgetState(spend, reserved, oldest))
                else:
                    spend = h.get("s", 0)
                    budgets.append(BudgetState(spend, reserved, -1))
            m = b.max_nanos
            if m >= 0 and not failed:
                if strict:
                    failed = spend + reserved + b.estimate_nanos > m
                else:
                    failed = spend + reserved >= m
        if cold:
            return AdmitResult("cold", tuple(budgets), (), tuple(cold))

        rates: list[RateState] = []
        windows: list[tuple[int, int, int]] = []
        rate_failed = False
        for r in op.rates:
            if r.kind == RATE_PARALLEL:
                n = self._slots(r, now, purge=True)
                rates.append(RateState(0, n, 0))
                windows.append((0, 0, 0))
                rate_failed = rate_failed or n + 1 > r.limit
            else:
                previous, current, elapsed, index = self._rate_state(r, now)
                rates.append(RateState(previous, current, elapsed))
                windows.append((previous, current, index))
                ticks = elapsed * TICKS // r.window_ms
                rate_failed = rate_failed or (
                    previous * (TICKS - ticks) + (current + r.amount) * TICKS > r.limit * TICKS
                )
        if failed:
            return AdmitResult("budget", tuple(budgets), tuple(rates))
        if rate_failed:
            return AdmitResult("rate", tuple(budgets), tuple(rates))

        rid = op.request_id
        field = "q" + rid
        expiry = now + op.lease_ms
        for b in op.budgets:
            entry = data.get(b.key)
            if entry is None:
                entry = data[b.key] = _Entry({})
            h = entry.value  # type: ignore[assignment]
            ttl = b.ttl_ms
            if strict:
                est = b.estimate_nanos
                old = h.get(field, 0)
                h[field] = est
                h["r"] = h.get("r", 0) + est - old
                lease = data.get(b.lease_key)
                if lease is None or lease.expires <= now:
                    lease = data[b.lease_key] = _Entry(_ZSet())
                lease.value.add(rid, expiry)  # type: ignore[union-attr]
                if ttl > 0:
                    lease.expires = now + ttl
            elif "r" not in h:
                h["r"] = 0
            if ttl > 0:
                entry.expires = now + ttl
        for r, (previous, current, index) in zip(op.rates, windows, strict=True):
            if r.kind == RATE_PARALLEL:
                entry, slots = self._zcreate(r.key, now)
                slots.add(rid, expiry)
            else:
                entry = self._create(r.key, now)
                entry.value = {"w": index, "p": previous, "c": current + r.amount}
            self._expire(entry, r.ttl_ms, now)
        return AdmitResult("ok", tuple(budgets), tuple(rates))

    async def settle(self, op: SettleOp) -> bool:
        with self._lock:
            return self._settle(op)

    def _settle(self, op: SettleOp) -> bool:
        now, rid = op.now_ms, op.request_id
        data = self._data
        self._tick(now)
        done = self._done.get(op.done_key)
        state = None if done is None or done[1] <= now else done[0]
        if state == 1 or (state is not None and not op.settle):
            return False
        released = state == 2
        settle = op.settle
        field = "q" + rid
        for b in op.budgets:
            entry = data.get(b.key)
            if entry is not None and entry.expires <= now:
                del data[b.key]
                entry = None
            if entry is None:
                if b.require_seed or not settle:
                    continue
                entry = data[b.key] = _Entry({})
                h: dict[str, int] = entry.value  # type: ignore[assignment]
            else:
                h = entry.value  # type: ignore[assignment]
                old = h.pop(field, None)
                if old is not None:
                    h["r"] = h.get("r", 0) - old
                    self._zrem(b.lease_key, rid, now)
            if settle:
                before = h.get(b.field, 0)
                h[b.field] = before + op.cost_nanos
                if b.bucket_ms and before == 0:
                    self._prune_buckets(h, b.oldest_bucket)
                if b.ttl_ms > 0:
                    entry.expires = now + b.ttl_ms
        for r in op.rates:
            if r.kind == RATE_PARALLEL:
                self._zrem(r.key, rid, now)
            elif r.kind == RATE_TOKENS:
                if settle:
                    delta = op.real_tokens - (0 if released else r.amount)
                else:
                    delta = -r.amount
                hh = self._hash(r.key, now)
                if hh is None or delta == 0:
                    continue
                w = hh.get("w", 0)
                if w == r.window_index:
                    hh["c"] = max(0, hh.get("c", 0) + delta)
                elif w == r.window_index + 1:
                    hh["p"] = max(0, hh.get("p", 0) + delta)
        self._done[op.done_key] = (1 if settle else 2, now + op.done_ttl_ms if op.done_ttl_ms > 0 else _NEVER)
        return True

    async def renew(self, request_id: str, now_ms: int, lease_ms: int, keys: Sequence[str]) -> int:
        with self._lock:
            renewed = 0
            for key in keys:
                zset = self._zset(key, now_ms)
                if zset is not None and request_id in zset.members:
                    zset.members[request_id] = now_ms + lease_ms
                    renewed += 1
            return renewed

    async def read(
        self, now_ms: int, budgets: Sequence[BudgetOp], rates: Sequence[RateOp]
    ) -> tuple[tuple[BudgetState | None, ...], tuple[RateState, ...]]:
        with self._lock:
            now = now_ms
            bout: list[BudgetState | None] = []
            for b in budgets:
                h = self._hash(b.key, now)
                if h is None:
                    bout.append(None)
                    continue
                reserved = h.get("r", 0) - self._expired_reserved(h, b.lease_key, now)
                spend, oldest = self._spend(h, b, now)
                bout.append(BudgetState(spend, reserved, oldest))
            rout: list[RateState] = []
            for r in rates:
                if r.kind == RATE_PARALLEL:
                    rout.append(RateState(0, self._slots(r, now, purge=False), 0))
                else:
                    previous, current, elapsed, _ = self._rate_state(r, now)
                    rout.append(RateState(previous, current, elapsed))
            return tuple(bout), tuple(rout)

    async def seed(self, key: str, values: Mapping[str, int], ttl_ms: int, now_ms: int) -> bool:
        with self._lock:
            if self._get(key, now_ms) is not None:
                return False
            entry = self._create(key, now_ms)
            entry.value = dict(values)
            self._expire(entry, ttl_ms, now_ms)
            return True

    async def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._done.clear()

    def keys(self, now_ms: int) -> list[str]:
        """The live keys (for tests and debugging)."""
        with self._lock:
            return [k for k in list(self._data) if self._get(k, now_ms) is not None]
