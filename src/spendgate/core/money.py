"""Exact money.

Rates are :class:`~decimal.Decimal` USD per unit. Amounts that are stored or added up are
integers of **nano-USD** (1e-9 USD). There is exactly one rounding rule: a Decimal USD
amount becomes nano-USD by rounding half to even at the 9th decimal (:func:`to_nano`).
Floats never hold money; a float given to :func:`parse_rate` is converted through its
shortest ``repr`` so ``2.5e-06`` means exactly ``0.0000025``.
"""

from __future__ import annotations

import re
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

from spendgate.errors import MoneyError

__all__ = [
    "NANOS_PER_USD",
    "ZERO",
    "MoneyError",
    "allocate_nanos",
    "format_usd",
    "from_nano",
    "limit_to_nano",
    "parse_rate",
    "tidy",
    "to_nano",
    "usd_text",
]

NANOS_PER_USD = 1_000_000_000
ZERO = Decimal(0)
_NANO = Decimal("1e-9")
# Enough precision that no product of a rate and a token count is ever rounded.
_CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)
_FLOOR_CTX = Context(prec=60, rounding=ROUND_FLOOR)


def to_nano(usd: Decimal) -> int:
    """Round a USD amount to integer nano-USD, half to even (the one rounding rule)."""
    # Context methods instead of `localcontext()`: this runs for every recorded call.
    return int(_CTX.scaleb(_CTX.quantize(usd, _NANO), 9))


def limit_to_nano(usd: Decimal) -> int:
    """A budget limit in nano-USD (:func:`to_nano`), refusing a positive amount that rounds
    to 0: a limit of 0 means nothing is allowed, the opposite of what was asked.

    Raises:
        ValueError: ``usd`` is positive and rounds to 0 nano-USD.
    """
    nanos = to_nano(usd)
    if nanos == 0 and usd > 0:
        raise ValueError(
            f"{usd} rounds to 0 nano-USD (amounts are kept in nano-USD, 1e-9, rounded half to "
            "even): kept as 0, it would mean nothing is allowed"
        )
    return nanos


def from_nano(nanos: int) -> Decimal:
    """Exact USD value of an integer nano-USD amount."""
    return Decimal(nanos).scaleb(-9)


def usd_text(nanos: int) -> str:
    """Integer nano-USD as plain decimal USD text, exact and without trailing zeros:
    ``62500`` → ``"0.0000625"``, ``12_500_000_000`` → ``"12.5"``, ``0`` → ``"0"``,
    ``-62500`` → ``"-0.0000625"``. The one text form of money in response headers."""
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
    whole, frac = divmod(nanos, NANOS_PER_USD)
    return f"{sign}{whole}.{frac:09d}".rstrip("0").rstrip(".")


def allocate_nanos(parts: list[Decimal], total_nanos: int) -> list[int]:
    """Split ``total_nanos`` over ``parts`` so each is within 1 nano of its exact value.

    Largest-remainder allocation: the integers always add up to ``total_nanos`` exactly,
    which plain per-item rounding cannot promise. (This runs once per recorded call, so
    zero parts and parts that are already whole nanos take a short path.)
    """
    floors = [0] * len(parts)
    fractions: list[tuple[Decimal, int]] = []
    for i, part in enumerate(parts):
        if not part:
            continue
        scaled = _CTX.scaleb(part, 9)
        floor = int(_FLOOR_CTX.to_integral_value(scaled))
        floors[i] = floor
        if scaled != floor:
            fractions.append((scaled - floor, i))
    # sum(floors) <= floor(sum(exact)) <= round(sum(exact)), so ``rest`` is never
    # negative, and it is at most the number of fractional parts when
    # total_nanos = to_nano(sum(parts)).
    rest = total_nanos - sum(floors)
    if rest:
        fractions.sort(reverse=True)
        for n, (_, i) in enumerate(fractions):
            if n >= rest:
                break
            floors[i] += 1
        if rest > len(fractions):  # only when total_nanos was not the rounded sum
            floors[fractions[0][1] if fractions else 0] += rest - len(fractions)
    return floors


_UNIT_SCALE = {
    "": 1,
    "token": 1,
    "tokens": 1,
    "k": 1_000,
    "1k": 1_000,
    "1k tokens": 1_000,
    "k tokens": 1_000,
    "m": 1_000_000,
    "1m": 1_000_000,
    "mtok": 1_000_000,
    "1m tokens": 1_000_000,
    "m tokens": 1_000_000,
}
_PRICE_RE = re.compile(r"^\$?\s*(?P<num>[0-9.eE+-]+)\s*(?:(?:per|/)\s*(?P<unit>.+))?$")


def parse_rate(value: str | int | float | Decimal) -> Decimal:
    """Read a rate in USD per unit.

    Accepts numbers, numeric strings (``"3e-7"``) and per-quantity prices such as
    ``"2.5 per 1M tokens"``, ``"$0.15/1K tokens"`` or ``"3 per mtok"``, which are scaled
    down to a per-unit rate. Negative rates and non-finite values are refused.
    """
    if isinstance(value, bool):
        raise MoneyError(f"not a price: {value!r}")
    if isinstance(value, Decimal):
        rate = value
    elif isinstance(value, int):
        rate = Decimal(value)
    elif isinstance(value, float):
        rate = Decimal(repr(value))
    elif isinstance(value, str):
        match = _PRICE_RE.match(value.strip())
        if match is None:
            raise MoneyError(f"not a price: {value!r}")
        unit = (match["unit"] or "").strip().lower()
        if unit not in _UNIT_SCALE:
            raise MoneyError(f"unknown price unit {unit!r} in {value!r}")
        try:
            rate = Decimal(match["num"]) / _UNIT_SCALE[unit]
        except InvalidOperation:
            raise MoneyError(f"not a price: {value!r}") from None
    else:
        raise MoneyError(f"not a price: {value!r}")
    if not rate.is_finite() or rate < 0:
        raise MoneyError(f"a price must be a finite number >= 0, got {value!r}")
    return rate.normalize() if rate else ZERO


def tidy(amount: Decimal) -> Decimal:
    """The same value without trailing zeros (``0.0025000`` → ``0.0025``, ``1E+2`` → ``100``)."""
    if not amount:
        return ZERO
    norm = amount.normalize()
    return norm if norm.adjusted() < 0 or norm != norm.to_integral_value() else norm.quantize(1)


def format_usd(amount: Decimal | int, *, places: int | None = None) -> str:
    """Format USD for people: ``$0.0075``; ints are read as nano-USD.

    Without ``places`` the amount is shown exactly (down to the nano), with at least two
    decimals.
    """
    usd = from_nano(amount) if isinstance(amount, int) else amount
    sign = "-" if usd < 0 else ""
    usd = abs(usd)
    if places is not None:
        text = f"{usd.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):f}"
    else:
        text = f"{usd.normalize():f}" if usd else "0"
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.ljust(2, '0')}"
    return f"{sign}${text}"
