"""The JSON a client reads about its files and batches: the provider's own objects with every
id replaced by the managed id the client knows, or, where the provider is not asked (lists,
a settled batch the provider no longer has), the same shape built from the row.

A client never sees a provider id: a batch's ``input_file_id`` is the managed file's id, its
``output_file_id`` / ``error_file_id`` are managed files too (:func:`derived_file_id`, one row
each, made the first time the batch shows them), and an Anthropic batch's ``results_url``
points back at this gateway.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from spendgate.core.money import usd_text
from spendgate.gateway.managed import epoch
from spendgate.stores.database.models import ManagedObject

__all__ = [
    "anthropic_batch_view",
    "derived_file_id",
    "file_view",
    "openai_batch_view",
    "page_view",
    "spendgate_view",
]

FileRole = Literal["output", "error"]


def derived_file_id(batch_id: str, role: FileRole) -> str:
    """The managed id of a batch's output or error file: derived from the batch's own random
    id, so every instance names it the same without asking another, and it cannot be guessed
    without that id."""
    digest = hashlib.blake2b(f"{batch_id}:{role}".encode(), digest_size=16).hexdigest()
    return f"file-sg{digest}"


def file_view(row: ManagedObject) -> dict[str, Any]:
    """OpenAI's file object."""
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes or 0,
        "created_at": epoch(row.created_at),
        "filename": row.filename or "",
        "purpose": row.purpose or "batch",
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def openai_batch_view(row: ManagedObject, provider: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """OpenAI's batch object: the provider's (ids mapped), else built from the row."""
    if provider is not None:
        view = dict(provider)
    else:
        view = {
            "object": "batch",
            "errors": None,
            "completion_window": "24h",
            "created_at": epoch(row.created_at),
            "metadata": row.metadata_,
            "model": row.model_group,
            "output_file_id": row.output_file_id,
            "error_file_id": row.error_file_id,
            "request_counts": {
                "total": row.requests_total,
                "completed": row.requests_completed,
                "failed": row.requests_failed,
            },
        }
    view["id"] = row.id
    view["endpoint"] = row.endpoint
    view["input_file_id"] = row.input_file_id
    view.setdefault("status", row.status)
    if provider is None:
        view["status"] = row.status
    for role, name in (("output", "output_file_id"), ("error", "error_file_id")):
        if view.get(name):
            view[name] = derived_file_id(row.id, role)  # type: ignore[arg-type]
    view["spendgate"] = spendgate_view(row)
    return view


def spendgate_view(row: ManagedObject) -> dict[str, Any]:
    """What spendgate knows of a batch beyond the provider's object: the worst case reserved
    at creation (held until the batch is settled or retired), its bill once settled (exact
    USD numbers from the nano-USD columns) and its creator as recorded at creation (the
    key's id, never the key). SDKs ignore the extra field; the dashboard's Batches page
    reads it."""
    settled = row.settled_at is not None and not row.stale
    return {
        "reserved_cost": _usd(row.reserved_nanos),
        "cost": _usd(row.cost_nanos) if settled else None,
        "settled": settled,
        "settled_at": epoch(row.settled_at),
        "stale": row.stale,
        "unpriced": row.unpriced,
        "creator": {
            "key_id": row.api_key,
            "user_id": row.user_id,
            "team_id": row.team_id,
            "organization_id": row.organization_id,
            "end_user": row.end_user,
        },
    }


def _usd(nanos: int | None) -> orjson.Fragment | None:
    """An exact JSON number (``0.000123``) from integer nano-USD: no float involved."""
    return None if nanos is None else orjson.Fragment(usd_text(nanos).encode())


def anthropic_batch_view(
    row: ManagedObject, base_url: str, provider: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Anthropic's message batch object: the provider's (id and results URL mapped), else
    built from the row (its counts then are those the poller last saw)."""
    results_url = f"{base_url.rstrip('/')}/v1/messages/batches/{row.id}/results"
    if provider is not None:
        view = dict(provider)
        view["id"] = row.id
        if view.get("results_url"):
            view["results_url"] = results_url
        view["spendgate"] = spendgate_view(row)
        return view
    ended = row.status == "ended"
    processing = max(0, row.requests_total - row.requests_completed - row.requests_failed)
    return {
        "id": row.id,
        "type": "message_batch",
        "processing_status": row.status,
        "request_counts": {
            "processing": 0 if ended else processing,
            "succeeded": row.requests_completed,
            "errored": row.requests_failed,
            "canceled": 0,
            "expired": 0,
        },
        "ended_at": None,
        "created_at": _iso(row.created_at),
        "expires_at": None,
        "archived_at": None,
        "cancel_initiated_at": None,
        "results_url": results_url if ended else None,
        "spendgate": spendgate_view(row),
    }


def page_view(data: list[dict[str, Any]], has_more: bool, *, openai: bool = True) -> dict[str, Any]:
    """A list page: OpenAI's (``object: list``) or Anthropic's."""
    page: dict[str, Any] = {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
    if openai:
        page = {"object": "list", **page}
    return page


def _iso(moment: datetime) -> str:
    """RFC 3339 in UTC, as Anthropic writes its times."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
