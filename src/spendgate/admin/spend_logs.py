"""A ``spend_events`` row as a LiteLLM ``LiteLLM_SpendLogs`` row (``/spend/logs``).

The mapping (docs/spend-api.md, "Spend endpoints", lists it too):

=====================  ==============================================================
LiteLLM field          from spend_events
=====================  ==============================================================
request_id             event_id
call_type              endpoint, named as LiteLLM names it (``acompletion`` …)
api_key                the key's hash (``virtual_keys.token``); a deleted key: its id
spend                  cost_nanos, as USD
prompt_tokens          input_tokens (cached and cache-write tokens included)
completion_tokens      output_tokens (reasoning included)
total_tokens           prompt_tokens + completion_tokens
startTime / endTime    started_at (else occurred_at) / occurred_at, UTC ISO 8601
request_duration_ms    latency_ms
model / model_group    model (served) / requested_model
model_id               deployment_id
custom_llm_provider    provider
api_base               "" (spendgate does not record it)
user / team_id         user_id / team_id
organization_id        organization_id
end_user               end_user
request_tags           request_tags
cache_hit              "True" for a response-cache hit (saved_cache_cost: what it saved), else "False"
status                 ``success``; ``adjustment`` for an admin's change of a key's
                       spend (``/key/update`` ``spend``); else ``failure`` (spendgate's
                       own in metadata)
metadata               spendgate's detail: status, unpriced(+reason), estimated,
                       price_source, service_tier, resolved_model, operation_id,
                       batch_id, overhead_ms, every non-zero usage bucket; an
                       adjustment's audit record (by, from/to in USD, budget window)
cost_items             spendgate's itemized cost: item → USD (non-zero items)
catalogue_version      catalogue_version
=====================  ==============================================================
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.admin.views import usd
from spendgate.http.errors import InvalidField
from spendgate.stores.database.models import COST_ITEMS, USAGE_COLUMNS, SpendEventRow, VirtualKey

__all__ = [
    "CALL_TYPES",
    "NEXT_CURSOR_HEADER",
    "SPEND_LOG_FIELDS",
    "call_type",
    "decode_cursor",
    "encode_cursor",
    "key_hashes",
    "log_row",
]

NEXT_CURSOR_HEADER = "x-spendgate-next-cursor"
"""The response header of a full ``/spend/logs`` page: pass its value as ``cursor`` for the
next (older) page."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

SPEND_LOG_FIELDS = (
    "request_id",
    "call_type",
    "api_key",
    "spend",
    "total_tokens",
    "prompt_tokens",
    "completion_tokens",
    "startTime",
    "endTime",
    "request_duration_ms",
    "model",
    "model_id",
    "model_group",
    "custom_llm_provider",
    "api_base",
    "user",
    "metadata",
    "cache_hit",
    "cache_key",
    "request_tags",
    "team_id",
    "organization_id",
    "end_user",
    "status",
    "cost_items",
    "catalogue_version",
)
"""Every field of a row, in order: LiteLLM's, then spendgate's ``cost_items`` and
``catalogue_version``."""

CALL_TYPES = (
    ("chat/completions", "acompletion"),
    ("completions", "atext_completion"),
    ("embeddings", "aembedding"),
    ("images/generations", "aimage_generation"),
    ("images/edits", "aimage_edit"),
    ("audio/transcriptions", "atranscription"),
    ("audio/translations", "atranslation"),
    ("audio/speech", "aspeech"),
    ("responses", "aresponses"),
    ("messages", "anthropic_messages"),
    ("moderations", "amoderation"),
    ("rerank", "arerank"),
    ("batches", "batch"),
)
"""Endpoint path suffix → LiteLLM's call_type (the first suffix that matches)."""


def call_type(endpoint: str | None, batch_id: str | None) -> str:
    """LiteLLM's ``call_type`` for an event's endpoint (a batch: ``batch``)."""
    if batch_id:
        return "batch"
    path = (endpoint or "").rstrip("/")
    for suffix, name in CALL_TYPES:
        if path == suffix or path.endswith("/" + suffix):
            return name
    return path


async def key_hashes(session: AsyncSession, key_ids: Iterable[str]) -> dict[str, str]:
    """key_id → the key's hash (``token``), for the keys that still exist."""
    ids = sorted(set(key_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(VirtualKey.key_id, VirtualKey.token).where(VirtualKey.key_id.in_(ids))
    )
    return {kid: token for kid, token in rows.all()}


def log_row(row: SpendEventRow, hashes: dict[str, str]) -> dict[str, Any]:
    """One spend event in LiteLLM's ``LiteLLM_SpendLogs`` shape (module docstring)."""
    prompt, completion = row.input_tokens, row.output_tokens  # type: ignore[attr-defined]
    usage = {name: getattr(row, name) for name in USAGE_COLUMNS if getattr(row, name)}
    if row.seconds_micros:
        usage["seconds_micros"] = row.seconds_micros
    detail = {
        "status": row.status,
        "unpriced": row.unpriced,
        "unpriced_reason": row.unpriced_reason,
        "estimated": row.estimated,
        "price_source": row.price_source,
        "service_tier": row.service_tier,
        "resolved_model": row.resolved_model,
        "operation_id": row.operation_id,
        "batch_id": row.batch_id,
        "overhead_ms": row.overhead_ms,
        "adjustment": _adjustment_out(row.adjustment),
        "usage": usage,
    }
    items = {item: getattr(row, f"cost_{item}_nanos") for item in COST_ITEMS}
    key = row.api_key
    return {
        "request_id": row.event_id,
        "call_type": call_type(row.endpoint, row.batch_id),
        "api_key": hashes.get(key, key) if key else "",
        "spend": usd(row.cost_nanos),
        "total_tokens": prompt + completion,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "startTime": (row.started_at or row.occurred_at).isoformat(),
        "endTime": row.occurred_at.isoformat(),
        "request_duration_ms": row.latency_ms,
        "model": row.model or "",
        "model_id": row.deployment_id or "",
        "model_group": row.requested_model or "",
        "custom_llm_provider": row.provider or "",
        "api_base": "",
        "user": row.user_id or "",
        "metadata": {k: v for k, v in detail.items() if v is not None},
        "cache_hit": "True" if row.cache_hit else "False",
        "saved_cache_cost": usd(row.saved_nanos),
        "cache_key": "",
        "request_tags": list(row.request_tags or []),
        "team_id": row.team_id,
        "organization_id": row.organization_id,
        "end_user": row.end_user or "",
        "status": row.status if row.status in ("success", "adjustment") else "failure",
        "cost_items": {item: usd(n) for item, n in items.items() if n},
        "catalogue_version": row.catalogue_version,
    }


def _adjustment_out(audit: dict[str, Any] | None) -> dict[str, Any] | None:
    """An adjustment's audit record with its amounts in USD (None on other events)."""
    if audit is None:
        return None
    return {
        "by": audit.get("by"),
        "from_spend": usd(int(audit.get("from_nanos") or 0)),
        "to_spend": usd(int(audit.get("to_nanos") or 0)),
        "budget_duration": audit.get("budget_duration"),
        "period_start": audit.get("period_start"),
    }


def encode_cursor(row: SpendEventRow) -> str:
    """The cursor of the page after ``row``: its ``occurred_at`` (epoch microseconds) and
    ``event_id``, URL-safe base64 (opaque to clients; exact, no float or zone in it)."""
    delta = row.occurred_at.astimezone(UTC) - _EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return base64.urlsafe_b64encode(f"{micros}:{row.event_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """``(occurred_at, event_id)`` of :func:`encode_cursor`'s cursor.

    Raises:
        InvalidField: not a cursor this API gave (422, ``param`` ``cursor``).
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, event_id = raw.split(":", 1)
        if not event_id or not micros.lstrip("-").isdigit():
            raise ValueError(raw)
        return _EPOCH + timedelta(microseconds=int(micros)), event_id
    except (ValueError, OverflowError, binascii.Error):
        raise InvalidField(
            "cursor: not a cursor from this API (use the x-spendgate-next-cursor header of the "
            "previous page)",
            param="cursor",
        ) from None
