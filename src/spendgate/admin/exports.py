"""Spend exports (``GET /global/spend/export``, CSV and FOCUS 1.2), streamed: issue #13.

Why this shape: authorization runs inside the request's one transaction (the role rule of
:mod:`spendgate.admin.spend_access`), and only then does the handler answer with a
``StreamingResponse`` whose generator opens **its own** connection
(:func:`spendgate.ledger.exports.export_chunks`): the export is read through a server-side
cursor a chunk at a time, so memory stays constant whatever the range. Admins export every
event; anyone else only the events of the keys, user and teams they may read, and a filter
naming someone else's key, user or team is a 403.
"""

from __future__ import annotations

from sqlalchemy import and_
from starlette.responses import StreamingResponse

from spendgate.admin._http import Context, Endpoint, endpoint
from spendgate.admin.schemas.export import ExportQuery
from spendgate.admin.schemas.spend_range import MAX_DAYS
from spendgate.admin.spend_access import SpendAccess, resolve_key_ref, spend_access
from spendgate.admin.spend_range import DayRange
from spendgate.http.errors import InvalidField, PermissionDenied
from spendgate.ledger.exports import check_group_by, export_chunks, export_filename
from spendgate.stores.database.models import SpendEventRow

__all__ = ["ENDPOINTS"]

_MAX_HOURLY_DAYS = 366
"""A grouped export covers at most :data:`MAX_DAYS` (ten years; its periods are listed in
memory), at most a year by hour."""


def _allowed(access: SpendAccess, dims: tuple[str, ...]) -> dict[str, frozenset[str]] | None:
    """For a non-admin grouped export: the rows it may see, by its scope dimension."""
    if access.everything:
        return None
    sets = {"key": access.key_ids, "user": access.user_ids, "team": access.team_ids}
    allowed = {d: sets[d] for d in dims if d in sets}
    if not allowed:
        raise PermissionDenied(
            "group_by: without admin rights an export may be grouped by key, user or team only "
            "(the spend you may read)",
            param="group_by",
        )
    return allowed


async def export_spend(ctx: Context, query: ExportQuery) -> StreamingResponse:
    """Stream the spend of ``[start_date, end_date]`` (local days in ``timezone``) as CSV or FOCUS."""
    access = await spend_access(ctx.repo, ctx.caller)
    key_id = await resolve_key_ref(ctx.repo, query.api_key) if query.api_key is not None else None
    access.check_key(key_id)
    access.check_user(query.user_id)
    access.check_team(query.team_id)
    days = DayRange(query, ctx.now)
    dims = query.dimensions
    allowed = None
    if dims:
        if query.format != "csv":
            raise InvalidField(
                "group_by: FOCUS rows are per event and meter; group_by applies to format=csv",
                param="group_by",
            )
        try:
            check_group_by(dims)
        except ValueError as exc:
            raise InvalidField(f"group_by: {exc}", param="group_by") from None
        for name in ("api_key", "user_id", "team_id"):
            if getattr(query, name) is not None:
                raise InvalidField(
                    f"{name}: filters apply to per-event exports; group by key, user or team instead",
                    param=name,
                )
        if len(days) > (_MAX_HOURLY_DAYS if query.granularity == "hour" else MAX_DAYS):
            raise InvalidField("end_date: the range is too long for a grouped export", param="end_date")
        allowed = _allowed(access, dims)
        if query.top is not None and len(dims) != 1:
            raise InvalidField("top: keeps the top values of one group_by dimension", param="top")
    elif query.top is not None:
        raise InvalidField("top: applies to a grouped export (group_by)", param="top")
    conditions = [c for c in (access.events_clause(),) if c is not None]
    if key_id is not None:
        conditions.append(SpendEventRow.api_key == key_id)
    if query.user_id is not None:
        conditions.append(SpendEventRow.user_id == query.user_id)
    if query.team_id is not None:
        conditions.append(SpendEventRow.team_id == query.team_id)
    where = and_(*conditions) if conditions else None
    chunks = export_chunks(
        ctx.settings.engine_for(ctx.request),
        fmt=query.format,
        start=days.start,
        end=days.end,
        tz=days.tz,
        group_by=dims,
        granularity=query.granularity,
        where=where,
        allowed=allowed,
        top=query.top,
    )
    filename = export_filename(query.format, days.first, days.last, dims)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


ENDPOINTS: tuple[Endpoint, ...] = (
    endpoint(
        "/global/spend/export",
        export_spend,
        "Export spend as CSV or FOCUS 1.2 (streamed): per event, or grouped from the rollups",
        query=ExportQuery,
        write=False,
        plain_keys=True,
        media_type="text/csv",
    ),
)
