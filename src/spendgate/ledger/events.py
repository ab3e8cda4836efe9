"""Spend events: one immutable record per billable event, as written to the ledger."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson

from spendgate.core.money import from_nano
from spendgate.core.pricing.breakdown import ITEMS, CostBreakdown
from spendgate.core.usage.model import Usage

__all__ = ["EventStatus", "SpendEvent"]

_USAGE_INTS = tuple(f.name for f in fields(Usage) if f.type == "int")


class EventStatus(enum.StrEnum):
    SUCCESS = "success"
    ERROR = "error"
    PARTIAL = "partial"
    """An error or disconnect after some output: billed for what was produced."""
    CANCELLED = "cancelled"
    ADJUSTMENT = "adjustment"
    """Not a request: an administrator set a key's spend (``/key/update`` with ``spend``);
    ``cost_nanos`` is the difference, counted in the key's spend only
    (:mod:`spendgate.ledger.adjustments`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpendEvent:
    """One billable event.

    ``event_id`` is the request id (the batch id for a batch) and, with ``occurred_at``
    (when the event was billed, UTC), makes the event unique: recording it twice counts
    once. Prompts and responses are only carried when an operator enables it.
    """

    event_id: str
    occurred_at: datetime
    cost_nanos: int
    usage: Usage = field(default_factory=Usage)
    cost_items: dict[str, int] = field(default_factory=dict)
    """Nano-USD per breakdown item (non-zero items only); they add up to ``cost_nanos``."""
    status: EventStatus = EventStatus.SUCCESS
    unpriced: bool = False
    unpriced_reason: str | None = None
    estimated: bool = False
    cache_hit: bool = False
    """Answered from the gateway's response cache: no upstream call, so no cost."""
    saved_nanos: int = 0
    """What a cache hit saved: the cost of the call its answer was cached from (nano-USD)."""
    catalogue_version: str | None = None
    price_source: str | None = None
    resolved_model: str | None = None
    service_tier: str | None = None
    started_at: datetime | None = None
    api_key: str | None = None
    """The key's stable id (the hash it was first issued with), never the key."""
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    end_user: str | None = None
    tags: tuple[str, ...] = ()
    requested_model: str | None = None
    model: str | None = None
    deployment_id: str | None = None
    provider: str | None = None
    endpoint: str | None = None
    operation_id: str | None = None
    batch_id: str | None = None
    latency_ms: int | None = None
    overhead_ms: int | None = None
    messages: Any = None
    response: Any = None

    def __post_init__(self) -> None:
        if not self.event_id:
            raise ValueError("a spend event needs an event_id")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))
        if self.started_at is not None:
            if self.started_at.tzinfo is None:
                raise ValueError("started_at must be timezone-aware")
            object.__setattr__(self, "started_at", self.started_at.astimezone(UTC))
        object.__setattr__(self, "status", EventStatus(self.status))
        object.__setattr__(self, "tags", tuple(dict.fromkeys(self.tags)))
        if self.unpriced and self.cost_nanos:
            raise ValueError("an unpriced event cannot carry a cost")
        if self.cache_hit and self.cost_nanos:
            raise ValueError("a cache hit cannot carry a cost (its saving goes in saved_nanos)")

    @property
    def cost_usd(self) -> Decimal:
        return from_nano(self.cost_nanos)

    @classmethod
    def from_breakdown(
        cls,
        breakdown: CostBreakdown,
        *,
        event_id: str,
        occurred_at: datetime,
        status: EventStatus | str = EventStatus.SUCCESS,
        estimated: bool = False,
        **attribution: Any,
    ) -> SpendEvent:
        """Build the event of a priced (or unpriced) call.

        ``attribution`` takes the remaining fields (``api_key``, ``team_id``, ``tags``,
        ``requested_model``, ``deployment_id``, ``latency_ms``…). ``model`` and
        ``provider`` default to the breakdown's.
        """
        attribution.setdefault("model", breakdown.model)
        attribution.setdefault("provider", breakdown.provider)
        items = {k: v for k, v in breakdown.item_nanos().items() if v} if breakdown.priced else {}
        return cls(
            event_id=event_id,
            occurred_at=occurred_at,
            cost_nanos=sum(items.values()),  # == total_nanos: the items are allocated from it
            cost_items=items,
            usage=breakdown.usage,
            status=EventStatus(status),
            unpriced=not breakdown.priced,
            unpriced_reason=breakdown.unpriced_reason,
            estimated=estimated,
            catalogue_version=breakdown.catalogue_version,
            price_source=breakdown.price_source,
            resolved_model=breakdown.resolved_model,
            service_tier=breakdown.service_tier,
            **attribution,
        )

    def with_(self, **changes: Any) -> SpendEvent:
        return replace(self, **changes)

    # -- serialisation ---------------------------------------------------------------

    def to_row(self) -> dict[str, Any]:
        """The ``spend_events`` row (column name → value)."""
        row: dict[str, Any] = {
            "event_id": self.event_id,
            "occurred_at": self.occurred_at,
            "started_at": self.started_at,
            "status": self.status.value,
            "unpriced": self.unpriced,
            "estimated": self.estimated,
            "cost_nanos": self.cost_nanos,
            "cache_hit": self.cache_hit,
            "saved_nanos": self.saved_nanos,
            "catalogue_version": self.catalogue_version,
            "price_source": self.price_source,
            "unpriced_reason": self.unpriced_reason,
            "service_tier": self.service_tier,
            "api_key": self.api_key,
            "user_id": self.user_id,
            "team_id": self.team_id,
            "organization_id": self.organization_id,
            "end_user": self.end_user,
            "request_tags": list(self.tags) if self.tags else None,
            "requested_model": self.requested_model,
            "model": self.model,
            "resolved_model": self.resolved_model,
            "deployment_id": self.deployment_id,
            "provider": self.provider,
            "endpoint": self.endpoint,
            "operation_id": self.operation_id,
            "batch_id": self.batch_id,
            "latency_ms": self.latency_ms,
            "overhead_ms": self.overhead_ms,
            "seconds_micros": int(
                (self.usage.seconds * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN)
            ),
            "image_size": self.usage.image_size,
            "image_quality": self.usage.image_quality,
            "search_context_size": self.usage.search_context_size,
            "messages": self.messages,
            "response": self.response,
        }
        for name in _USAGE_INTS:
            row[name] = getattr(self.usage, name)
        for item in ITEMS:
            row[f"cost_{item}_nanos"] = self.cost_items.get(item, 0)
        return row

    def to_json(self) -> bytes:
        """An exact JSON form (the journal record); orjson serialises the dataclass in C."""
        return orjson.dumps(self, default=_json_default)

    @classmethod
    def from_json(cls, raw: bytes | str) -> SpendEvent:
        data = orjson.loads(raw)
        data["occurred_at"] = datetime.fromisoformat(data["occurred_at"])
        if data.get("started_at"):
            data["started_at"] = datetime.fromisoformat(data["started_at"])
        usage = data.pop("usage", None) or {}
        if "seconds" in usage:
            usage["seconds"] = Decimal(usage["seconds"])
        data["usage"] = Usage(**usage)
        data["tags"] = tuple(data.get("tags") or ())
        return cls(**data)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} in a spend event")
