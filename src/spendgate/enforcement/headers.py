"""Response headers for an admitted request: the tightest budget and rate limits.

* ``x-spendgate-budget-remaining``: USD left in the tightest budget window after this
  request's reservation; ``x-spendgate-budget-reset``: that window's period end (ISO 8601).
* OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for the tightest
  request and token limit (reset in OpenAI's duration format: ``1s``, ``6m0s``, ``20ms``).
"""

from __future__ import annotations

from functools import lru_cache

from spendgate.enforcement.admission import BudgetView, RateView, Ticket
from spendgate.enforcement.limits import utc_from_ms

__all__ = ["format_reset", "limit_headers"]


def format_reset(ms: int) -> str:
    """OpenAI's duration format: ``20ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
    if type(ms) is int:  # integer arithmetic (the usual case); floats below
        hours, rest = divmod(ms, 3_600_000)
        minutes, rest = divmod(rest, 60_000)
        secs, milli = divmod(rest, 1000)
        text = f"{secs}.{milli:03d}".rstrip("0") if milli else str(secs)
        if hours:
            return f"{hours}h{minutes}m{text}s"
        if minutes:
            return f"{minutes}m{text}s"
        return f"{text}s"
    seconds = ms / 1000
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    frac = seconds - int(seconds)
    sec_text = f"{secs + frac:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{sec_text}s"
    if minutes:
        return f"{minutes}m{sec_text}s"
    return f"{sec_text}s"


def _usd(nanos: int) -> str:
    """Exact USD of a non-negative nano-USD amount, without trailing zeros: ``12.5``, ``0``."""
    whole, frac = divmod(nanos, 1_000_000_000)
    return f"{whole}.{frac:09d}".rstrip("0") if frac else str(whole)


@lru_cache(maxsize=1024)
def _iso_utc(ms: int) -> str:
    """ISO 8601 in UTC with ``Z`` (a period end: few distinct values, so cached)."""
    return utc_from_ms(ms).isoformat().replace("+00:00", "Z")


def limit_headers(*tickets: Ticket) -> dict[str, str]:
    """The budget and rate-limit headers for a request admitted by ``tickets`` (the tightest
    over all of them; empty when nothing applies)."""
    out: dict[str, str] = {}
    tightest: BudgetView | None = None  # the first window with the least room left
    room = 0
    rates: list[RateView] = []
    for t in tickets:
        for v in t.budgets:
            if v.limit_nanos is not None:
                left = v.limit_nanos - v.spend_nanos - v.reserved_nanos
                if tightest is None or left < room:
                    tightest, room = v, left
        rates += t.rates
    if tightest is not None:
        out["x-spendgate-budget-remaining"] = _usd(max(0, room))
        if tightest.end_ms:
            out["x-spendgate-budget-reset"] = _iso_utc(tightest.end_ms)
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
                out[f"x-ratelimit-limit-{kind}"] = str(view.limit.limit)
                out[f"x-ratelimit-remaining-{kind}"] = str(left)
                out[f"x-ratelimit-reset-{kind}"] = format_reset(view.reset_ms)
    return out
