"""Batches: each batch's status, lines done and failed, the worst case reserved at creation,
the bill once settled and its creator, from ``GET /v1/batches`` (OpenAI) and
``GET /v1/messages/batches`` (Anthropic) as the signed-in key: a key sees its own batches, a
team admin also the team's, proxy admins all of them (docs/batches.md). Pages follow the
API's own cursor (``after`` / ``after_id``), never an offset."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.responses import Response

from spendgate.ui.api import ApiError
from spendgate.ui.context import PageContext

__all__ = ["batches"]

_PAGE_SIZE = 50
_APIS = {"openai": ("/v1/batches", "after"), "anthropic": ("/v1/messages/batches", "after_id")}


@dataclass(frozen=True, slots=True)
class BatchRow:
    """One batch as the page shows it."""

    id: str
    created: str
    status: str
    model: str
    total: int
    done: int
    failed: int
    reserved: Decimal | None
    cost: Decimal | None
    state: str  # "settled", "unpriced", "stale", "pending"
    key: str
    user: str | None
    team: str | None


def _when(value: Any) -> str:
    """Epoch seconds (OpenAI) or RFC 3339 (Anthropic) as ``2026-12-10 14:03 UTC``."""
    if isinstance(value, int | Decimal):
        return f"{datetime.fromtimestamp(int(value), UTC):%Y-%m-%d %H:%M} UTC"
    try:
        return f"{datetime.fromisoformat(str(value)).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return str(value or "—")


def _row(item: dict[str, Any], names: dict[str, str]) -> BatchRow:
    extra = item.get("spendgate") or {}
    creator = extra.get("creator") or {}
    counts = item.get("request_counts") or {}
    if "processing_status" in item:  # Anthropic
        done, failed = int(counts.get("succeeded") or 0), int(counts.get("errored") or 0)
        total = done + failed + sum(int(counts.get(k) or 0) for k in ("processing", "canceled", "expired"))
        status = str(item["processing_status"])
    else:
        done, failed, total = (int(counts.get(k) or 0) for k in ("completed", "failed", "total"))
        status = str(item.get("status") or "")
    state = "pending"
    if extra.get("stale"):
        state = "stale"
    elif extra.get("settled"):
        state = "unpriced" if extra.get("unpriced") else "settled"
    key_id = str(creator.get("key_id") or "")
    return BatchRow(
        id=str(item["id"]),
        created=_when(item.get("created_at")),
        status=status,
        model=str(item.get("model") or item.get("endpoint") or ""),
        total=total,
        done=done,
        failed=failed,
        reserved=extra.get("reserved_cost"),
        cost=extra.get("cost"),
        state=state,
        key=names.get(key_id, key_id[:12]),
        user=creator.get("user_id"),
        team=creator.get("team_id"),
    )


async def _creator_names(ctx: PageContext, items: list[dict[str, Any]]) -> dict[str, str]:
    """The aliases of this page's creators only (``/key/info`` each, at the same time): not
    a list of every key with its spend, which costs a second on a large ledger."""
    ids = sorted(
        {str(k) for i in items if (k := ((i.get("spendgate") or {}).get("creator") or {}).get("key_id"))}
    )

    async def name(key_id: str) -> tuple[str, str | None]:
        try:
            info = (await ctx.api.get("/key/info", {"key": key_id}))["info"]
        except ApiError:  # regenerated since (its id is no longer its hash), or not readable
            return key_id, None
        return key_id, str(info.get("key_alias") or info.get("key_name") or "") or None

    found = await asyncio.gather(*(name(k) for k in ids))
    return {k: v for k, v in found if v}


async def batches(ctx: PageContext) -> Response:
    api = ctx.query("api", "openai")
    if api not in _APIS:
        api = "openai"
    path, cursor = _APIS[api]
    after = ctx.query("after")
    answer = await ctx.api.get(path, {"limit": _PAGE_SIZE, cursor: after})
    items = list(answer.get("data") or [])
    names = await _creator_names(ctx, items)
    rows = [_row(item, names) for item in items]
    return ctx.render(
        "batches.html",
        rows=rows,
        api=api,
        after=after,
        next_after=answer.get("last_id") if answer.get("has_more") else None,
    )
