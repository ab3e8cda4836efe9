"""The bounded memo that steps aside: what the price calculator and the worst-case
estimate keep, filled by :func:`remember`.

A memo of ``size`` entries is emptied when full. If it saved fewer than one lookup in
eight since it was last emptied (``stats[0]``, counted by the caller on each hit), the
caller goes without it for ``pause`` calls (``stats[1]``, counted down by the caller), so
a workload that never repeats pays one key and one insertion per call at most.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["remember"]

K = TypeVar("K")
V = TypeVar("V")


def remember(memo: dict[K, V], stats: list[int], key: K, value: V, size: int, pause: int) -> None:
    """Keep ``value`` under ``key``; a full memo is emptied first, and when it saved too
    little, nothing is kept and ``stats[1]`` is set to ``pause``."""
    if len(memo) >= size:
        if stats[0] < size // 8:
            stats[1] = pause
        stats[0] = 0
        memo.clear()
        if stats[1] > 0:
            return
    memo[key] = value
