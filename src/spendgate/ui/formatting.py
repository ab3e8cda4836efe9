"""How the dashboard writes numbers: money with its currency, percentages, times.

Amounts arrive as exact ``Decimal`` USD (or integer nano-USD from the CSV exports) and are
shown rounded for reading, never summed as floats; the exact figure stays in the element's
``data-usd`` attribute and its tooltip.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from markupsafe import Markup, escape

__all__ = ["FILTERS", "money", "money_text", "percent", "usd_of_nanos"]

_NANO = Decimal("1e-9")


def usd_of_nanos(nanos: int) -> Decimal:
    """Integer nano-USD as exact USD."""
    return (Decimal(nanos) * _NANO).normalize() if nanos else Decimal(0)


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def money_text(value: Any) -> str:
    """``$1,234.50 USD``; cents below a dollar keep up to six decimals (LLM calls cost
    fractions of a cent); ``unlimited`` for None."""
    amount = _decimal(value)
    if amount is None:
        return "unlimited"
    places = Decimal("0.01") if abs(amount) >= 1 or amount == 0 else Decimal("0.000001")
    rounded = amount.quantize(places, rounding=ROUND_HALF_EVEN)
    text = f"{rounded:,f}"
    if places != Decimal("0.01"):
        head, _, tail = text.partition(".")
        text = f"{head}.{tail.rstrip('0').ljust(2, '0')}"
    sign = "-" if text.startswith("-") else ""
    return f"{sign}${text.lstrip('-')} USD"


def money(value: Any) -> Markup:
    """The amount as HTML: readable text, the exact USD in ``data-usd`` and the tooltip."""
    amount = _decimal(value)
    if amount is None:
        return Markup('<span class="money unlimited">unlimited</span>')
    exact = escape(f"{amount:f}")
    return Markup('<span class="money" data-usd="{0}" title="{0} USD exactly">{1}</span>').format(
        exact, money_text(amount)
    )


def percent(part: Any, whole: Any) -> Decimal | None:
    """``part`` of ``whole`` in percent (one decimal), None when ``whole`` is unlimited."""
    p, w = _decimal(part), _decimal(whole)
    if p is None or w is None:
        return None
    if w == 0:
        return Decimal(100) if p > 0 else Decimal(0)
    return (p * 100 / w).quantize(Decimal("0.1"), rounding=ROUND_HALF_EVEN)


def when(value: Any) -> str:
    """An ISO date-time as ``2026-12-10 14:03 UTC`` (local offsets kept)."""
    if not value:
        return "—"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    zone = moment.tzname() or ""
    return f"{moment:%Y-%m-%d %H:%M} {zone}".strip()


FILTERS = {"money": money, "money_text": money_text, "when": when}
