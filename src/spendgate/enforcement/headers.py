"""Response headers for an admitted request: the tightest budget and rate limits.

* ``x-spendgate-budget-remaining``: USD left in the tightest budget window after this
  request's reservation; ``x-spendgate-budget-reset``: that window's period end (ISO 8601).
* OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for the tightest
  request and token limit (reset in OpenAI's duration format: ``1s``, ``6m0s``, ``20ms``).
"""

from __future__ import annotations

from spendgate.core.money import from_nano
from spendgate.enforcement.admission import RateView, Ticket

__all__ = ["format_reset", "limit_headers"]


def format_reset(ms: int) -> str:
    """OpenAI's duration format: ``20ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if ms < 1000:
        return f"{max(ms, 0)}ms"
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


def _tightest(views: list[RateView]) -> RateView | None:
    return min(views, key=lambda v: (v.remaining, -v.reset_ms), default=None)


def limit_headers(*tickets: Ticket) -> dict[str, str]:
    """The budget and rate-limit headers for a request admitted by ``tickets`` (the tightest
    over all of them; empty when nothing applies)."""
    out: dict[str, str] = {}
    limited = [v for t in tickets for v in t.budgets if v.limit_nanos is not None]
    if limited:
        view = min(limited, key=lambda v: v.remaining_nanos or 0)
        remaining = max(0, view.remaining_nanos or 0)
        out["x-spendgate-budget-remaining"] = format(from_nano(remaining).normalize(), "f")
        if view.period_end is not None:
            out["x-spendgate-budget-reset"] = view.period_end.isoformat().replace("+00:00", "Z")
    for kind in ("requests", "tokens"):
        view_ = _tightest([v for t in tickets for v in t.rates if v.limit.kind == kind])
        if view_ is not None:
            out[f"x-ratelimit-limit-{kind}"] = str(view_.limit.limit)
            out[f"x-ratelimit-remaining-{kind}"] = str(view_.remaining)
            out[f"x-ratelimit-reset-{kind}"] = format_reset(view_.reset_ms)
    return out
