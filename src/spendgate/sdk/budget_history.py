"""When the process spent: what lets a budget window set (or changed) after spending count
only the calls settled inside its current period.

``spendgate.max_budget_duration`` and ``spendgate.budget_timezone`` may be set at any
time, and calls may have been settled before. A window's spend must then be the spend
settled inside its current period, no more (earlier periods are not this one's) and no
less (calls earlier in this period count). :class:`SpendHistory` keeps the spend by the
time it was settled, in slots that grow coarser with age, so it stays small:

* by the minute for the last two days (a minute or hour window's period starts on a
  minute, so its spend is exact);
* by the quarter hour for 40 days (every UTC offset in use is a multiple of 15 minutes,
  so local hours, days, weeks and months start on one: exact);
* by the UTC day for 400 days, and one sum before that.

A period that starts inside a slot (a window of seconds; a quarter or a year that began
more than 40 days ago at a local midnight that is not a UTC midnight) counts that slot
whole: never less than the truth, so the budget is never exceeded by it.
"""

from __future__ import annotations

__all__ = ["SpendHistory"]

_TIERS: tuple[tuple[int, int], ...] = ((60, 2 * 86_400), (900, 40 * 86_400), (86_400, 400 * 86_400))
"""(slot length, how long a slot of that length is kept before it joins the next, coarser
tier), in seconds."""


class SpendHistory:
    """Nano-USD settled, by when (epoch seconds); not thread-safe (the budget's lock guards it)."""

    __slots__ = ("_minute", "_older", "_older_until", "_tiers", "total")

    def __init__(self) -> None:
        self.total = 0
        """Everything settled (lifetime)."""
        self._tiers: list[dict[int, int]] = [{} for _ in _TIERS]
        self._older = 0
        self._older_until = 0.0
        """``_older`` was settled before this instant."""
        self._minute = -1

    def add(self, nanos: int, at: float) -> None:
        """``nanos`` settled at ``at`` (epoch seconds)."""
        self.total += nanos
        minute = int(at // 60)
        if minute != self._minute:  # at most once a minute: move old slots to coarser tiers
            self._minute = minute
            self._compact(at)
        minutes = self._tiers[0]
        minutes[minute] = minutes.get(minute, 0) + nanos

    def since(self, start: float) -> int:
        """The spend settled at or after ``start`` (a slot that ``start`` falls inside counts
        whole)."""
        total = self._older if self._older_until > start else 0
        for (size, _), slots in zip(_TIERS, self._tiers, strict=True):
            first = start // size
            total += sum(nanos for slot, nanos in slots.items() if slot >= first)
        return total

    def _compact(self, now: float) -> None:
        last = len(_TIERS) - 1
        for tier, (size, keep) in enumerate(_TIERS):
            slots = self._tiers[tier]
            oldest_kept = (now - keep) // size
            while slots:  # oldest first: slots are added in time order (a slot behind a newer
                slot = next(iter(slots))  # one, after the clock stepped back, waits for it)
                if slot >= oldest_kept:
                    break
                nanos = slots.pop(slot)
                if tier == last:
                    self._older += nanos
                    self._older_until = max(self._older_until, float((slot + 1) * size))
                else:
                    coarser = self._tiers[tier + 1]
                    key = slot * size // _TIERS[tier + 1][0]
                    coarser[key] = coarser.get(key, 0) + nanos
