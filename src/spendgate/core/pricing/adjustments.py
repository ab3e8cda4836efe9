"""Discounts and margins by provider or model pattern (LiteLLM's ``cost_discount_config``
and ``cost_margin_config``).

A discount applies first, then the margin: ``total = subtotal × (1 − d) × (1 + m) + fixed``.
Discount keys are a provider (``"openai"``) or a ``provider/model`` glob
(``"openai/gpt-4o*"``); the most specific match wins (a pattern beats a provider).
Margin keys are a provider or ``"global"``; values are a fraction (``0.1``) or
``{"percentage": 0.1, "fixed_amount": 0.001}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

from spendgate.core.money import ZERO, MoneyError, parse_rate
from spendgate.core.pricing.calculator import Adjustment
from spendgate.core.pricing.catalogue import canonical_provider

__all__ = ["AdjustmentRules"]

_ONE = Decimal(1)


def _fraction(value: object, where: str) -> Decimal:
    try:
        frac = parse_rate(value)  # type: ignore[arg-type]
    except MoneyError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if frac > _ONE:
        raise ValueError(f"{where}: expected a fraction between 0 and 1, got {value!r}")
    return frac


@dataclass(frozen=True, slots=True)
class AdjustmentRules:
    """Discount and margin rules, resolved per (provider, model)."""

    discounts: Mapping[str, Decimal] = field(default_factory=dict)
    margins: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)

    @classmethod
    def from_litellm(
        cls,
        cost_discount_config: Mapping[str, Any] | None = None,
        cost_margin_config: Mapping[str, Any] | None = None,
    ) -> AdjustmentRules:
        discounts = {
            str(k).lower(): _fraction(v, f"cost_discount_config.{k}")
            for k, v in (cost_discount_config or {}).items()
        }
        margins: dict[str, tuple[Decimal, Decimal]] = {}
        for key, value in (cost_margin_config or {}).items():
            where = f"cost_margin_config.{key}"
            if isinstance(value, Mapping):
                unknown = set(value) - {"percentage", "fixed_amount"}
                if unknown:
                    raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
                pct = parse_rate(value.get("percentage", 0))
                fixed = parse_rate(value.get("fixed_amount", 0))
            else:
                pct, fixed = parse_rate(value), ZERO
            margins[str(key).lower()] = (pct, fixed)
        return cls(discounts=discounts, margins=margins)

    def for_model(self, provider: str | None, model: str) -> Adjustment:
        prov = canonical_provider(provider) if provider else ""
        name = model.lower()
        qualified = name if "/" in name else f"{prov}/{name}"
        discount = ZERO
        best = -1
        for key, frac in self.discounts.items():
            if "/" in key:
                if fnmatchcase(qualified, key) or fnmatchcase(name, key):
                    # Longer literal patterns are more specific.
                    score = 1 + len(key.replace("*", ""))
                    if score > best:
                        best, discount = score, frac
            elif canonical_provider(key) == prov and best < 0:
                best, discount = 0, frac
        pct, fixed = self.margins.get(prov) or self.margins.get("global") or (ZERO, ZERO)
        return Adjustment(discount=discount, margin=pct, margin_fixed=fixed)
