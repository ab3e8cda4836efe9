"""Every response header spendgate adds, by name, and how each value is written.

==================================  =========================================================
header                              value
==================================  =========================================================
``x-spendgate-request-id``          the request id (every response, errors included)
``x-spendgate-response-cost``       exact USD of the call (``0.0000625``) or ``unpriced``
``x-litellm-response-cost``         LiteLLM's name for the same USD (not sent when unpriced)
``x-spendgate-overhead-ms``         time spent in the gateway, upstream excluded (``1.234``)
``x-spendgate-budget-remaining``    USD left in the tightest budget window after this request
                                    (once settled: after its real cost; a stream's, sent
                                    before its cost is known: after its reservation)
``x-spendgate-budget-reset``        that window's period end (ISO 8601, UTC, ``Z``)
``x-ratelimit-limit-{kind}``        OpenAI's: the tightest request (``requests``) or token
``x-ratelimit-remaining-{kind}``    (``tokens``) limit, what is left of it and when it resets
``x-ratelimit-reset-{kind}``        (OpenAI's duration format: ``20ms``, ``1.5s``, ``6m0s``)
``retry-after``                     whole seconds (at least 1) before a refused call may pass
==================================  =========================================================

Money is written by :func:`spendgate.core.money.usd_text`; a wait by :func:`format_reset`
(both on admitted responses and on 429 refusals).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from spendgate.core.money import usd_text

if TYPE_CHECKING:
    from spendgate.enforcement import BudgetView, RateView, Reservation

__all__ = [
    "BUDGET_REMAINING",
    "BUDGET_RESET",
    "LITELLM_RESPONSE_COST",
    "OVERHEAD_MS",
    "REQUEST_ID",
    "RESPONSE_COST",
    "RETRY_AFTER",
    "cost_text",
    "format_reset",
    "format_wait",
    "limit_headers",
    "overhead_text",
    "rate_limit_headers",
    "retry_after_text",
]

REQUEST_ID = "x-spendgate-request-id"
RESPONSE_COST = "x-spendgate-response-cost"
LITELLM_RESPONSE_COST = "x-litellm-response-cost"
OVERHEAD_MS = "x-spendgate-overhead-ms"
BUDGET_REMAINING = "x-spendgate-budget-remaining"
BUDGET_RESET = "x-spendgate-budget-reset"
RETRY_AFTER = "retry-after"


def cost_text(nanos: int, *, priced: bool = True) -> str:
    """``x-spendgate-response-cost``: exact USD, or ``unpriced`` (never a made-up $0)."""
    return usd_text(nanos) if priced else "unpriced"


def overhead_text(seconds: float) -> str:
    """``x-spendgate-overhead-ms``: milliseconds with three decimals."""
    return f"{seconds * 1000:.3f}"


def retry_after_text(seconds: float) -> str:
    """``retry-after``: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def format_reset(ms: int | float) -> str:
    """OpenAI's duration format: ``20ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h2m3s``.

    One way for every ``x-ratelimit-reset-*`` header (admitted answers and 429 refusals):
    whole milliseconds, a fraction rounded up (a client that waits that long is past the
    reset), negative as ``0ms``.
    """
    if type(ms) is not int:
        ms = math.ceil(ms)
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, milli = divmod(rest, 1000)
    text = f"{secs}.{milli:03d}".rstrip("0") if milli else str(secs)
    if hours:
        return f"{hours}h{minutes}m{text}s"
    if minutes:
        return f"{minutes}m{text}s"
    return f"{text}s"


def format_wait(seconds: float) -> str:
    """A wait in seconds in :func:`format_reset`'s format, rounded up to the millisecond."""
    return format_reset(seconds * 1000)


def rate_limit_headers(kind: str, limit: int | None, remaining: int, reset: str | None) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` trio for one kind (``requests`` or ``tokens``); ``reset``
    already formatted (no reset header when ``None``)."""
    out = {f"x-ratelimit-limit-{kind}": str(limit), f"x-ratelimit-remaining-{kind}": str(remaining)}
    if reset is not None:
        out[f"x-ratelimit-reset-{kind}"] = reset
    return out


@lru_cache(maxsize=1024)
def _iso_utc(ms: int) -> str:
    """ISO 8601 in UTC with ``Z`` (a period end: few distinct values, so cached)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def limit_headers(*reservations: Reservation, settled_nanos: int | None = None) -> dict[str, str]:
    """The budget and rate-limit headers for a request admitted by ``reservations`` (the
    tightest over all of them; empty when nothing applies).

    ``settled_nanos``: the request's real cost once settled. The budget left is then what
    remains after settlement (its reservation replaced by the cost), not the admission's
    figure, which also subtracts the worst case reserved for it.
    """
    out: dict[str, str] = {}
    tightest: BudgetView | None = None  # the first window with the least room left
    room = 0
    rates: list[RateView] = []
    for t in reservations:
        # Each window of a reservation holds its whole estimate (reserved_nanos).
        given_back = 0 if settled_nanos is None else t.reserved_nanos - settled_nanos
        for v in t.budgets:
            if v.limit_nanos is not None:
                left = v.limit_nanos - v.spend_nanos - v.reserved_nanos + given_back
                if tightest is None or left < room:
                    tightest, room = v, left
        rates += t.rates
    if tightest is not None:
        out[BUDGET_REMAINING] = usd_text(max(0, room))
        if tightest.end_ms:
            out[BUDGET_RESET] = _iso_utc(tightest.end_ms)
    if rates:
        # Per kind, the first limit with the least remaining (ties: the later reset).
        best: dict[str, tuple[int, int, RateView]] = {}
        for rv in rates:
            kind = rv.limit.kind
            if kind == "parallel":
                continue
            key = (max(0, (rv.limit.limit or 0) - rv.used), -rv.reset_ms)
            seen = best.get(kind)
            if seen is None or key < seen[:2]:
                best[kind] = (*key, rv)
        for kind in ("requests", "tokens"):
            if kind in best:
                left, _, view = best[kind]
                out.update(rate_limit_headers(kind, view.limit.limit, left, format_reset(view.reset_ms)))
    return out
