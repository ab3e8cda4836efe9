"""Between request models and rows: exact USD ↔ nano-USD, limits, budget windows, JSON.

Where LiteLLM keeps a field in the entity's ``metadata`` (``model_rpm_limit``,
``model_tpm_limit``, ``temp_budget_increase``, ``temp_budget_expiry``) spendgate does too,
except that money is stored exactly, as ``temp_budget_increase_nanos`` (an integer).
``model_max_budget`` is stored normalised::

    {"<model>": {"max_budget_nanos": int | null, "budget_duration": str | null,
                 "tpm_limit": int | null, "rpm_limit": int | null}}

Extra budget windows (``budget_limits``) are rows of ``budget_windows`` keyed by
``(scope_type, scope_id)``; scope types are those of :class:`spendgate.enforcement.Scope`:
``key`` (id = the key's hash), ``user``, ``team``, ``organization``, ``end_user``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.admin.schemas import BudgetLimitField, ModelBudget
from spendgate.core.money import from_nano, to_nano
from spendgate.http.errors import InvalidField, NotFound
from spendgate.stores.database.models import Budget, BudgetWindow

__all__ = [
    "INTERNAL_METADATA",
    "MANAGED_METADATA",
    "apply_limits",
    "audit_out",
    "budget_row",
    "delete_windows",
    "limits_out",
    "load_windows",
    "merged_metadata",
    "nanos",
    "public_metadata",
    "replace_windows",
    "require_row",
    "stamp",
    "usd",
    "utc",
]

INTERNAL_METADATA = frozenset({"temp_budget_increase_nanos"})
"""Metadata keys spendgate writes itself and never shows (their USD form is shown instead)."""

_PLAIN_LIMITS = ("budget_duration", "tpm_limit", "rpm_limit", "tpd_limit", "max_parallel_requests")
_META_LIMITS = ("model_rpm_limit", "model_tpm_limit")


def nanos(amount: Decimal | None) -> int | None:
    """Exact USD → integer nano-USD (``None`` stays ``None``: unlimited)."""
    return None if amount is None else to_nano(amount)


def usd(amount: int | None) -> orjson.Fragment | None:
    """Integer nano-USD → an exact JSON number (``12.5``, ``0.000000001``), no float involved."""
    if amount is None:
        return None
    text = f"{from_nano(amount).normalize():f}"
    return orjson.Fragment(text.encode())


def _model_budget_in(value: dict[str, ModelBudget] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {
        model: {
            "max_budget_nanos": nanos(cfg.max_budget),
            "budget_duration": cfg.budget_duration,
            "tpm_limit": cfg.tpm_limit,
            "rpm_limit": cfg.rpm_limit,
        }
        for model, cfg in value.items()
    }


def _model_budget_out(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    out: dict[str, Any] = {}
    for model, cfg in value.items():
        cfg = cfg if isinstance(cfg, dict) else {}
        out[model] = {
            "max_budget": usd(cfg.get("max_budget_nanos")),
            "budget_duration": cfg.get("budget_duration"),
            "tpm_limit": cfg.get("tpm_limit"),
            "rpm_limit": cfg.get("rpm_limit"),
        }
    return out


def public_metadata(value: dict[str, Any] | None) -> dict[str, Any]:
    """Stored metadata without spendgate's internal keys."""
    return {k: v for k, v in (value or {}).items() if k not in INTERNAL_METADATA}


MANAGED_METADATA = INTERNAL_METADATA | {"model_rpm_limit", "model_tpm_limit", "temp_budget_expiry", "tags"}
"""Metadata keys set through their own request fields; a new ``metadata`` keeps them."""


def merged_metadata(stored: dict[str, Any] | None, given: dict[str, Any]) -> dict[str, Any]:
    """Replace the caller's part of ``metadata``; keep the keys set through their own fields
    unless ``given`` names them (LiteLLM clients send ``model_rpm_limit`` in metadata)."""
    for name in INTERNAL_METADATA:
        if name in given:
            raise InvalidField(f"metadata.{name} is reserved", param=f"metadata.{name}")
    kept = {k: v for k, v in (stored or {}).items() if k in MANAGED_METADATA}
    return {**kept, **_plain(given)}


def _plain(value: Any) -> Any:
    """JSON-storable: the body's Decimals (see ``_http``) become ints or floats again."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def apply_limits(row: Any, body: BaseModel, fields: set[str] | None = None) -> None:
    """Copy the budget and rate-limit fields the request set onto ``row``.

    ``fields`` is the set of fields given (``body.model_fields_set`` by default), so an
    update touches only what was sent, and an explicit ``null`` clears a limit.
    """
    given = body.model_fields_set if fields is None else fields
    data = body.__dict__
    if "max_budget" in given:
        row.max_budget_nanos = nanos(data["max_budget"])
    if "soft_budget" in given:
        row.soft_budget_nanos = nanos(data["soft_budget"])
    for name in _PLAIN_LIMITS:
        if name in given and hasattr(row, name):
            setattr(row, name, data[name])
    if "model_max_budget" in given:
        row.model_max_budget = _model_budget_in(data["model_max_budget"])
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


def limits_out(row: Any) -> dict[str, Any]:
    """The budget and rate-limit fields of ``row``, with USD amounts."""
    metadata = getattr(row, "metadata_", None) or {}
    out: dict[str, Any] = {
        "max_budget": usd(row.max_budget_nanos),
        "soft_budget": usd(row.soft_budget_nanos),
        "budget_duration": row.budget_duration,
        "tpm_limit": row.tpm_limit,
        "rpm_limit": row.rpm_limit,
        "tpd_limit": row.tpd_limit,
        "max_parallel_requests": row.max_parallel_requests,
        "model_max_budget": _model_budget_out(row.model_max_budget),
    }
    if hasattr(row, "metadata_"):
        out["model_rpm_limit"] = metadata.get("model_rpm_limit")
        out["model_tpm_limit"] = metadata.get("model_tpm_limit")
    return out


def budget_row(budget: Budget | None) -> dict[str, Any] | None:
    """A budget profile as JSON (LiteLLM ``litellm_budget_table``)."""
    if budget is None:
        return None
    return {
        "budget_id": budget.budget_id,
        **limits_out(budget),
        "allowed_models": budget.allowed_models,
        "created_at": budget.created_at,
        "updated_at": budget.updated_at,
        "created_by": budget.created_by,
        "updated_by": budget.updated_by,
    }


async def replace_windows(
    session: AsyncSession,
    scope_type: str,
    scope_id: str,
    limits: list[BudgetLimitField] | None,
    *,
    now: datetime,
    by: str,
) -> None:
    """Make the scope's extra budget windows exactly ``limits`` (``None`` or ``[]``: none)."""
    await session.execute(
        delete(BudgetWindow).where(BudgetWindow.scope_type == scope_type, BudgetWindow.scope_id == scope_id)
    )
    for item in limits or ():
        session.add(
            BudgetWindow(
                scope_type=scope_type,
                scope_id=scope_id,
                budget_duration=item.budget_duration,
                max_budget_nanos=nanos(item.max_budget),
                created_at=now,
                updated_at=now,
                created_by=by,
                updated_by=by,
            )
        )
    await session.flush()


async def delete_windows(session: AsyncSession, scope_type: str, scope_ids: list[str]) -> None:
    if scope_ids:
        await session.execute(
            delete(BudgetWindow).where(
                BudgetWindow.scope_type == scope_type, BudgetWindow.scope_id.in_(scope_ids)
            )
        )


async def load_windows(
    session: AsyncSession, scope_type: str, scope_ids: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """``budget_limits`` of each scope id, as JSON, ordered by duration text."""
    out: dict[str, list[dict[str, Any]]] = {sid: [] for sid in scope_ids}
    if not scope_ids:
        return out
    rows = await session.scalars(
        select(BudgetWindow)
        .where(BudgetWindow.scope_type == scope_type, BudgetWindow.scope_id.in_(scope_ids))
        .order_by(BudgetWindow.scope_id, BudgetWindow.id)
    )
    for w in rows:
        out[w.scope_id].append({"budget_duration": w.budget_duration, "max_budget": usd(w.max_budget_nanos)})
    return out


def utc(value: datetime | None) -> datetime | None:
    """A naive datetime from a request is read as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def require_row(session: AsyncSession, model: type[Any], ident: str, what: str, param: str) -> Any:
    """The row with primary key ``ident``, or 404 naming the object and the field."""
    row = await session.get(model, ident)
    if row is None:
        raise NotFound(f"{what} {ident!r} not found", param=param)
    return row


def stamp(row: Any, now: datetime, by: str, *, created: bool = False) -> None:
    """Set the audit columns explicitly (server defaults would need a reload)."""
    if created:
        row.created_at = now
        row.created_by = by
    row.updated_at = now
    row.updated_by = by


def audit_out(row: Any) -> dict[str, Any]:
    return {
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "created_by": row.created_by,
        "updated_by": row.updated_by,
    }
