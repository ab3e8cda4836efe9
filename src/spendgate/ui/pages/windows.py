"""Budget windows as the entity endpoints show them (``budget_windows``), ready to draw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from spendgate.ui.formatting import percent

__all__ = ["Window", "windows_of"]

_PAGES = {"key": "keys", "team": "teams", "user": "users", "customer": "customers"}
"""The dashboard page of each kind (organizations have none)."""
_LABELS = ("key_alias", "team_alias", "user_alias", "alias", "organization_alias", "key_name")


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
    temp_increase: Decimal | None = None
    """A key's temporary increase (on its main window only), with its expiry."""
    temp_expiry: str | None = None

    @property
    def href(self) -> str | None:
        """The entity's page in the dashboard."""
        page = _PAGES.get(self.kind)
        return None if page is None or not self.entity else f"/ui/{page}/{quote(self.entity, safe='')}"

    @property
    def temp_active(self) -> bool:
        """Whether the temporary increase still applies (no expiry: it does)."""
        if self.temp_increase is None:
            return False
        if not self.temp_expiry:
            return True
        try:
            expiry = datetime.fromisoformat(self.temp_expiry)
        except ValueError:
            return True
        return datetime.now(UTC) < (expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC))

    @property
    def effective_limit(self) -> Decimal | None:
        """What the gateway enforces: the limit plus an unexpired temporary increase."""
        if self.limit is not None and self.temp_increase is not None and self.temp_active:
            return self.limit + self.temp_increase
        return self.limit

    @property
    def used_percent(self) -> Decimal | None:
        """The spend's share of what is enforced (a temporary increase widens the bar's whole)."""
        return percent(self.spend, self.effective_limit)

    @property
    def bar_percent(self) -> Decimal:
        """The bar's width: the used share, capped at 100."""
        return min(self.used_percent or Decimal(0), Decimal(100))

    @property
    def soft_percent(self) -> Decimal | None:
        """Where the soft-budget marker sits on the bar."""
        limit = self.effective_limit
        if self.soft_budget is None or limit is None:
            return None
        return min(percent(self.soft_budget, limit) or Decimal(0), Decimal(100))

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
    """Every window of an entity object (a key, user, team, customer or organization as the
    API shows it)."""
    ident = str(entity.get(id_field) or entity.get(f"{kind}_id") or entity.get("user_id") or "")
    label = next((str(entity[name]) for name in _LABELS if entity.get(name)), ident)
    soft = _dec(entity.get("soft_budget"))
    increase = _dec(entity.get("temp_budget_increase"))
    expiry = str(entity.get("temp_budget_expiry") or "") or None
    out = []
    for i, w in enumerate(entity.get("budget_windows") or ()):
        main = i == 0 and not w.get("model")
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
                soft_budget=soft if main else None,
                temp_increase=increase if main else None,
                temp_expiry=expiry if main else None,
            )
        )
    return out
