"""An entity's budget and rate-limit fields, both ways: request fields → columns (the
encoder the management API writes with) and rows → :class:`LimitSpec` (the decoder the
gateway enforces with). One module, so a field added to one side is seen on the other.

Where LiteLLM keeps a field in the entity's ``metadata`` (``model_rpm_limit``,
``model_tpm_limit``, ``temp_budget_increase``, ``temp_budget_expiry``) spendgate does too,
except that money is stored exactly, as ``temp_budget_increase_nanos`` (an integer).
``model_max_budget`` is stored normalised::

    {"<model>": {"max_budget_nanos": int | null, "budget_duration": str | null,
                 "tpm_limit": int | null, "rpm_limit": int | null,
                 "budget_start": "<ISO 8601>"}}

Extra budget windows (``budget_limits``) are rows of ``budget_windows`` keyed by
``(scope_type, scope_id)``. Money is integer nano-USD throughout.

Every budget carries its start, where a duration that is no calendar unit (``90d``)
counts its periods from (:attr:`spendgate.core.periods.Window.runs_from_start`): the
row's ``budget_start`` (set on creation and whenever ``budget_duration`` changes), a
``budget_limits`` window's ``created_at`` (kept while its duration is unchanged), a model
budget's ``budget_start`` (likewise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from spendgate.alerts.budget import alert_email_table
from spendgate.core.money import to_nano
from spendgate.core.scopes import Scope
from spendgate.enforcement import BudgetLimit, RateLimit, scope_limits
from spendgate.stores.database.models import Budget, BudgetWindow

__all__ = [
    "CustomerOwners",
    "KeyEntities",
    "LimitSpec",
    "alert_thresholds",
    "apply_limits",
    "decode_limits",
    "encode_model_budget",
    "model_start",
    "nanos",
]

_PLAIN_LIMITS = ("budget_duration", "tpm_limit", "rpm_limit", "tpd_limit", "max_parallel_requests")
_META_LIMITS = ("model_rpm_limit", "model_tpm_limit")


# -- rows → limits (what the gateway enforces) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One entity's budget and rate-limit fields (money in nano-USD)."""

    max_budget_nanos: int | None = None
    soft_budget_nanos: int | None = None
    budget_duration: str | None = None
    windows: tuple[tuple[str, int | None, str | None], ...] = ()
    """``budget_limits``: (duration, max nanos, timezone)."""
    budget_start: datetime | None = None
    """Where the main window's periods run from when its duration is no calendar unit."""
    window_starts: tuple[datetime | None, ...] = ()
    """The start of each of ``windows``, in order."""
    tpm_limit: int | None = None
    rpm_limit: int | None = None
    rpd_limit: int | None = None
    tpd_limit: int | None = None
    max_parallel_requests: int | None = None
    model_max_budget: Mapping[str, Any] = field(default_factory=dict)
    model_rpm_limit: Mapping[str, Any] = field(default_factory=dict)
    model_tpm_limit: Mapping[str, Any] = field(default_factory=dict)
    temp_increase_nanos: int = 0
    temp_expiry: datetime | None = None
    blocked: bool = False
    alert_thresholds: tuple[Decimal, ...] = ()
    """Percents of ``max_budget`` this entity alerts at besides the configured ones: the
    keys of LiteLLM's ``metadata.max_budget_alert_emails`` (``{"50": [emails], "90": […]}``)."""

    def limits(
        self, scope: Scope, *, tz: str, rate_window: float
    ) -> tuple[list[BudgetLimit], list[RateLimit]]:
        budgets, rates = scope_limits(
            scope,
            max_budget_nanos=self.max_budget_nanos,
            budget_duration=self.budget_duration,
            soft_budget_nanos=self.soft_budget_nanos,
            tz=tz,
            temp_increase_nanos=self.temp_increase_nanos,
            temp_expiry=self.temp_expiry,
            alert_thresholds=self.alert_thresholds,
            anchor=self.budget_start,
            rpm_limit=self.rpm_limit,
            tpm_limit=self.tpm_limit,
            rpd_limit=self.rpd_limit,
            tpd_limit=self.tpd_limit,
            max_parallel_requests=self.max_parallel_requests,
            rate_window_seconds=rate_window,
        )
        for duration, max_nanos, window_tz, anchor in self.started_windows():
            budgets.append(BudgetLimit.of(scope, duration, max_nanos, tz=window_tz or tz, anchor=anchor))
        return budgets, rates

    def started_windows(self) -> list[tuple[str, int | None, str | None, datetime | None]]:
        """``windows``, each with its start: (duration, max nanos, timezone, start)."""
        starts = (*self.window_starts, *(None,) * (len(self.windows) - len(self.window_starts)))
        return [(*w, start) for w, start in zip(self.windows, starts, strict=False)]

    def model_limits(
        self, scope: Scope, model: str, *, tz: str, rate_window: float
    ) -> tuple[list[BudgetLimit], list[RateLimit]]:
        """``model_max_budget[model]`` and ``model_rpm_limit`` / ``model_tpm_limit[model]``."""
        cfg = self.model_max_budget.get(model)
        cfg = cfg if isinstance(cfg, Mapping) else {}
        rpm = _int(self.model_rpm_limit.get(model))
        tpm = _int(self.model_tpm_limit.get(model))
        rpm = _min(rpm, _int(cfg.get("rpm_limit")))
        tpm = _min(tpm, _int(cfg.get("tpm_limit")))
        return scope_limits(
            scope,
            max_budget_nanos=_int(cfg.get("max_budget_nanos")),
            budget_duration=cfg.get("budget_duration")
            if isinstance(cfg.get("budget_duration"), str)
            else None,
            tz=tz,
            anchor=model_start(cfg),
            rpm_limit=rpm,
            tpm_limit=tpm,
            rate_window_seconds=rate_window,
        )


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _instant(value: Any) -> datetime | None:
    """A stored ISO 8601 timestamp (naive read as UTC); anything else: None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def model_start(cfg: Mapping[str, Any]) -> datetime | None:
    """A stored ``model_max_budget`` entry's start (None: none recorded)."""
    return _instant(cfg.get("budget_start"))


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def decode_limits(row: Any, profile: Budget | None, windows: Sequence[BudgetWindow] = ()) -> LimitSpec:
    """An entity's fields, falling back to its budget profile's where the entity has none."""

    def pick(name: str) -> Any:
        value = getattr(row, name, None) if row is not None else None
        if value is None and profile is not None:
            value = getattr(profile, name, None)
        return value

    metadata = getattr(row, "metadata_", None) or {}
    metadata = metadata if isinstance(metadata, dict) else {}
    expiry = _instant(metadata.get("temp_budget_expiry"))
    # The start of the main window comes from the row its duration comes from.
    owner = next((r for r in (row, profile) if getattr(r, "budget_duration", None) is not None), None)
    start = (
        None if owner is None else getattr(owner, "budget_start", None) or getattr(owner, "created_at", None)
    )
    model_rpm = metadata.get("model_rpm_limit")
    model_tpm = metadata.get("model_tpm_limit")
    return LimitSpec(
        max_budget_nanos=pick("max_budget_nanos"),
        soft_budget_nanos=pick("soft_budget_nanos"),
        budget_duration=pick("budget_duration"),
        windows=tuple((w.budget_duration, w.max_budget_nanos, w.timezone) for w in windows),
        budget_start=_instant(start),
        window_starts=tuple(_instant(w.created_at) for w in windows),
        tpm_limit=pick("tpm_limit"),
        rpm_limit=pick("rpm_limit"),
        rpd_limit=_int(metadata.get("rpd_limit")),
        tpd_limit=pick("tpd_limit"),
        max_parallel_requests=pick("max_parallel_requests"),
        model_max_budget=pick("model_max_budget") or {},
        model_rpm_limit=model_rpm if isinstance(model_rpm, dict) else {},
        model_tpm_limit=model_tpm if isinstance(model_tpm, dict) else {},
        temp_increase_nanos=_int(metadata.get("temp_budget_increase_nanos")) or 0,
        temp_expiry=expiry,
        blocked=bool(getattr(row, "blocked", False)),
        alert_thresholds=alert_thresholds(metadata),
    )


def alert_thresholds(metadata: Mapping[str, Any]) -> tuple[Decimal, ...]:
    """The percents named by ``metadata.max_budget_alert_emails`` (LiteLLM's per-entity
    email thresholds), ascending."""
    return tuple(sorted({p.normalize() for p in alert_email_table(metadata)}))


@dataclass(frozen=True, slots=True)
class KeyEntities:
    """The entities above one key, as stored (loaded once per cache TTL)."""

    key: LimitSpec
    user_id: str | None = None
    user: LimitSpec | None = None
    team_id: str | None = None
    team: LimitSpec | None = None
    member: LimitSpec | None = None
    organization_id: str | None = None
    organization: LimitSpec | None = None
    end_user_id: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomerOwners:
    """Who may bill a customer by naming it in a request (docs/enforcement.md, "Whose
    customer"): its own ``team_id`` / ``organization_id``, plus the team (else the
    organization, else the user) of every key bound to it. Nobody: any key may."""

    teams: frozenset[str] = frozenset()
    organizations: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.teams or self.organizations or self.users)

    def allow(self, ents: KeyEntities | None) -> bool:
        """Whether a key with these entities may bill the customer."""
        if not self:
            return True
        if ents is None:
            return False
        return (
            (ents.team_id is not None and ents.team_id in self.teams)
            or (ents.organization_id is not None and ents.organization_id in self.organizations)
            or (ents.user_id is not None and ents.user_id in self.users)
        )


# -- request fields → columns (what the management API writes) ---------------------------------


def nanos(amount: Decimal | None) -> int | None:
    """Exact USD → integer nano-USD (``None`` stays ``None``: unlimited)."""
    return None if amount is None else to_nano(amount)


def encode_model_budget(
    value: Mapping[str, Any] | None,
    previous: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, Any] | None:
    """``model_max_budget`` as given (``{model: {max_budget, budget_duration, tpm_limit,
    rpm_limit}}``, attributes of a request model) → its stored form (nano-USD). Each entry
    keeps the ``budget_start`` of its ``previous`` form while its duration is unchanged,
    else starts at ``now``."""
    if value is None:
        return None
    at = (now or datetime.now(UTC)).isoformat()
    out: dict[str, Any] = {}
    for model, cfg in value.items():
        old = (previous or {}).get(model)
        old = old if isinstance(old, Mapping) else {}
        kept = old.get("budget_start") if old.get("budget_duration") == cfg.budget_duration else None
        out[model] = {
            "max_budget_nanos": nanos(cfg.max_budget),
            "budget_duration": cfg.budget_duration,
            "tpm_limit": cfg.tpm_limit,
            "rpm_limit": cfg.rpm_limit,
            "budget_start": kept if isinstance(kept, str) else at,
        }
    return out


def apply_limits(
    row: Any, body: BaseModel, fields: set[str] | None = None, *, now: datetime | None = None
) -> None:
    """Copy the budget and rate-limit fields the request set onto ``row``.

    ``fields`` is the set of fields given (``body.model_fields_set`` by default), so an
    update touches only what was sent, and an explicit ``null`` clears a limit. The
    budget's start moves to ``now`` (default: the clock) on a new row and when
    ``budget_duration`` changes.
    """
    given = body.model_fields_set if fields is None else fields
    data = body.__dict__
    at = now or datetime.now(UTC)
    if hasattr(row, "budget_start") and (
        getattr(row, "budget_start", None) is None
        or ("budget_duration" in given and data["budget_duration"] != row.budget_duration)
    ):
        row.budget_start = at
    if "max_budget" in given:
        row.max_budget_nanos = nanos(data["max_budget"])
    if "soft_budget" in given:
        row.soft_budget_nanos = nanos(data["soft_budget"])
    for name in _PLAIN_LIMITS:
        if name in given and hasattr(row, name):
            setattr(row, name, data[name])
    if "model_max_budget" in given:
        row.model_max_budget = encode_model_budget(data["model_max_budget"], row.model_max_budget, now=at)
    if "allowed_models" in given and hasattr(row, "allowed_models"):
        row.allowed_models = data["allowed_models"]
    meta_given = [name for name in _META_LIMITS if name in given]
    if meta_given:
        metadata = dict(row.metadata_ or {})
        for name in meta_given:
            if data[name] is None:
                metadata.pop(name, None)
            else:
                metadata[name] = dict(data[name])
        row.metadata_ = metadata
