"""Budget windows as the entity endpoints show them (``budget_windows``), ready to draw."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spendgate.ui.formatting import percent

__all__ = ["Window", "windows_of"]


@dataclass(frozen=True, slots=True)
class Window:
    """One budget window of one entity."""

    kind: str  # key, team, user, customer
    entity: str  # the id shown
    label: str  # alias or id, for people
    duration: str  # "24h", "1mo", "lifetime"
    model: str | None
    limit: Decimal | None
    spend: Decimal
    remaining: Decimal | None
    reset_at: str | None
    soft_budget: Decimal | None

    @property
    def used_percent(self) -> Decimal | None:
        return percent(self.spend, self.limit)

    @property
    def bar_percent(self) -> Decimal:
        """The bar's width: the used share, capped at 100."""
        return min(self.used_percent or Decimal(0), Decimal(100))

    @property
    def soft_percent(self) -> Decimal | None:
        """Where the soft-budget marker sits on the bar."""
        if self.soft_budget is None or self.limit is None:
            return None
        return min(percent(self.soft_budget, self.limit) or Decimal(0), Decimal(100))

    @property
    def state(self) -> str:
        used = self.used_percent
        if used is None:
            return "ok"
        if used >= 100:
            return "exceeded"
        if (self.soft_budget is not None and self.spend >= self.soft_budget) or used >= 80:
            return "warning"
        return "ok"


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def windows_of(entity: dict[str, Any], kind: str, id_field: str = "token") -> list[Window]:
    """Every window of an entity object (a key, user, team or customer as the API shows it)."""
    ident = str(entity.get(id_field) or entity.get(f"{kind}_id") or entity.get("user_id") or "")
    label = str(entity.get("key_alias") or entity.get("team_alias") or entity.get("key_name") or ident)
    soft = _dec(entity.get("soft_budget"))
    out = []
    for i, w in enumerate(entity.get("budget_windows") or ()):
        out.append(
            Window(
                kind=kind,
                entity=ident,
                label=label,
                duration=str(w.get("budget_duration") or "lifetime"),
                model=w.get("model"),
                limit=_dec(w.get("max_budget")),
                spend=_dec(w.get("spend")) or Decimal(0),
                remaining=_dec(w.get("remaining")),
                reset_at=w.get("budget_reset_at"),
                soft_budget=soft if i == 0 and not w.get("model") else None,
            )
        )
    return out
