"""USD amounts the SDK hands to people: exact ``Decimal`` values that print as numbers.

``str(Decimal("0.00000004"))`` is ``4E-8``: Python's decimal switches to scientific notation
below 1e-6, and most single LLM calls cost less than that. :func:`plain_usd` returns the
same exact value (trailing zeros removed, as :func:`spendgate.core.money.tidy` does) as a
:class:`PlainDecimal`, which prints in plain notation (``0.00000004``). Arithmetic on it
gives ordinary ``Decimal`` values: only the amounts the SDK returns print differently.
"""

from __future__ import annotations

from decimal import Context, Decimal

from spendgate.core.money import tidy

__all__ = ["PlainDecimal", "plain_usd"]


class PlainDecimal(Decimal):
    """A ``Decimal`` that prints in plain notation (``0.00000004``, never ``4E-8``); equal to,
    and hashed as, the same ``Decimal``."""

    __slots__ = ()

    def __str__(self) -> str:
        return Decimal.__format__(self, "f")

    def __repr__(self) -> str:
        return f"Decimal('{self!s}')"

    def __format__(self, spec: str, context: Context | None = None, /) -> str:
        """``f"{cost}"`` and ``f"{cost:>12}"`` print plain too (no type given: ``f``)."""
        if not spec or spec[-1] not in "eEfFgGn%":
            spec += "f"
        if context is None:
            return Decimal.__format__(self, spec)
        return Decimal.__format__(self, spec, context)


def plain_usd(amount: Decimal) -> Decimal:
    """``amount`` without trailing zeros, printing in plain notation."""
    return PlainDecimal(tidy(amount))
