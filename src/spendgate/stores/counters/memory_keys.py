"""The in-process counters' keys, as objects: the Redis data model of one key each.

:class:`~spendgate.stores.counters.memory.MemoryStorage` holds these instead of
string-keyed hashes because they are on the path of every request:

* :class:`BudgetCounter` — a budget counter hash and its lease zset (two Redis keys);
* :class:`SlidingCounter` — a sliding-window rate counter (fields ``w``, ``p``, ``c``);
* :class:`SlotSet` — parallel slots (a zset: request id → lease expiry).

``NEVER`` is the expiry of a key kept without one (and of a zset that does not exist yet).
"""

from __future__ import annotations

from spendgate.stores.counters.base import BudgetOp, BudgetState

__all__ = ["NEVER", "BudgetCounter", "SlidingCounter", "SlotSet"]

NEVER = 1 << 62
# NamedTuple constructors are Python functions; tuple.__new__ builds the same value in C.
_new = tuple.__new__


class SlotSet:
    """Member → score (a lease expiry), with a lower bound on the smallest score."""

    __slots__ = ("expires", "low", "members")

    def __init__(self) -> None:
        self.members: dict[str, int] = {}
        self.low = NEVER
        self.expires = NEVER

    def add(self, member: str, score: int) -> None:
        self.members[member] = score
        if score < self.low:
            self.low = score

    def expired(self, now_ms: int) -> list[str]:
        """Members whose score is <= now (not removed); tightens ``low`` as it scans."""
        if now_ms < self.low:
            return []
        gone = []
        low = NEVER
        for member, score in self.members.items():
            if score <= now_ms:
                gone.append(member)
            elif score < low:
                low = score
        if not gone:
            self.low = low
        return gone

    def purge(self, now_ms: int) -> list[str]:
        """Remove the expired members; returns them."""
        gone = self.expired(now_ms)
        if gone:
            for member in gone:
                del self.members[member]
            self.low = min(self.members.values(), default=NEVER)
        return gone


class BudgetCounter:
    """A budget counter and its lease set (two Redis keys: a hash and a zset)."""

    __slots__ = (
        "buckets",
        "expires",
        "holds",
        "lease_expires",
        "lease_low",
        "leases",
        "registered",
        "reserved",
        "spend",
    )

    def __init__(self) -> None:
        self.expires = NEVER
        self.spend = 0  # field s
        self.buckets: dict[int, int] = {}  # fields b<i> (rolling windows)
        self.reserved = 0  # field r
        self.holds: dict[str, int] = {}  # fields q<request id>
        # The lease zset: request id → lease expiry. It is a separate key in Redis, so it
        # has its own expiry; "absent" is empty with lease_expires = NEVER.
        self.leases: dict[str, int] = {}
        self.lease_low = NEVER  # a lower bound on the smallest lease expiry
        self.lease_expires = NEVER
        self.registered = False  # in MemoryStorage._leases (lease key → counter, for renew)

    def drop_leases(self) -> None:
        """The lease key expired: it is gone (its reservations stay in ``reserved``, as on Redis)."""
        self.leases = {}
        self.lease_low = NEVER
        self.lease_expires = NEVER

    def purge(self, now: int) -> None:
        """Give back the reservations whose lease expired."""
        if self.lease_expires <= now:
            self.drop_leases()
            return
        low = NEVER
        gone = []
        for member, score in self.leases.items():
            if score <= now:
                gone.append(member)
            elif score < low:
                low = score
        self.lease_low = low
        for member in gone:
            del self.leases[member]
            self.reserved -= self.holds.pop(member, 0)
        if gone and not self.leases:
            self.lease_expires = NEVER  # Redis deletes an emptied zset

    def expired_reserved(self, now: int) -> int:
        """The reservations a purge would give back (read-only)."""
        if self.lease_expires <= now or now < self.lease_low:
            return 0
        return sum(self.holds.get(m, 0) for m, score in self.leases.items() if score <= now)

    def state(self, b: BudgetOp, now: int) -> BudgetState:
        """Spend, reserved and (rolling windows) the oldest non-empty bucket in the window.

        A rolling window sums buckets ``oldest_bucket .. now // bucket_ms``.
        """
        if not b.bucket_ms:
            return _new(BudgetState, (self.spend, self.reserved, -1))
        first, last = b.oldest_bucket, now // b.bucket_ms
        spend, oldest = 0, -1
        buckets = self.buckets
        if len(buckets) < last - first + 1:  # fewer buckets stored than in the window: scan them
            for index, value in buckets.items():
                if value and first <= index <= last:
                    spend += value
                    if oldest < 0 or index < oldest:
                        oldest = index
        else:
            for index in range(first, last + 1):
                value = buckets.get(index, 0)
                if value:
                    spend += value
                    if oldest < 0:
                        oldest = index
        return _new(BudgetState, (spend, self.reserved, oldest))

    def set_field(self, name: str, value: int) -> None:
        if name == "s":
            self.spend = value
        elif name == "r":
            self.reserved = value
        elif name[0] == "b" and name[1:].isdigit():
            self.buckets[int(name[1:])] = value
        elif name[0] == "q":
            self.holds[name[1:]] = value
        else:
            raise ValueError(f"a budget counter has no field {name!r}")


class SlidingCounter:
    """A sliding-window rate counter: window index ``w``, its count ``c``, the previous ``p``."""

    __slots__ = ("c", "expires", "p", "w")

    def __init__(self, w: int, p: int, c: int) -> None:
        self.w, self.p, self.c = w, p, c
        self.expires = NEVER
