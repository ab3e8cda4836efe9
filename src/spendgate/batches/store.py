"""Every statement on the managed files and batches (the ``managed_objects`` table).

A batch is one billed operation: its row is written at creation (with the creator's
attribution and the enforcer's persisted reservation) and settled once, by whichever poller
instance claims it. :class:`ManagedObjectRepository` wraps one open session and never
commits: the caller owns the transaction. The exactly-once guarantees live in single
conditional statements, so they hold across processes and after a crash:

- :meth:`~ManagedObjectRepository.claim` is ONE conditional UPDATE (unsettled, not stale,
  and unclaimed, claimed by the same claimer, or under an expired claim lease): of any
  number of concurrent claimers at most one sees ``True``;
- :meth:`~ManagedObjectRepository.settle` applies only for the current claimer of a row not
  yet settled, so a claimer whose lease ran out and was overtaken cannot settle too.

Visibility (who may see an object): an admin sees all; a key sees the objects created with
it (``api_key`` is the key's stable ``key_id``); a team admin also sees those created by
its teams' keys. "Absent" and "not yours" are the same ``None``, so a caller answers both
with the same 404.

Times are always passed in (``now``), never read from the database clock, so both
databases and the tests agree on them.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, CursorResult, Delete, Update, and_, delete, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.stores.database.models import ManagedObject

__all__ = [
    "BatchCursor",
    "ManagedObjectPage",
    "ManagedObjectRepository",
    "ObjectApi",
    "ObjectKind",
    "RequestCounts",
    "UnsettledBatches",
    "new_object_id",
]

ObjectKind = Literal["file", "batch"]
ObjectApi = Literal["openai", "anthropic"]

_PREFIXES: dict[tuple[str, str], str] = {
    ("file", "openai"): "file-sg",
    ("batch", "openai"): "batch_sg",
    ("batch", "anthropic"): "msgbatch_sg",
}


def new_object_id(kind: ObjectKind, api: ObjectApi) -> str:
    """A new random client-facing id: ``file-sg…``, ``batch_sg…`` or ``msgbatch_sg…``
    followed by 32 hex digits (128 random bits), so an id cannot be guessed or forged."""
    try:
        prefix = _PREFIXES[(kind, api)]
    except KeyError:
        raise ValueError(f"no managed {kind} for the {api} API") from None
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """A batch's request counts (OpenAI's ``request_counts``)."""

    total: int
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class BatchCursor:
    """A keyset position in creation order: the last row a poller lane handed out."""

    created_at: datetime
    id: str

    @classmethod
    def of(cls, obj: ManagedObject) -> BatchCursor:
        return cls(created_at=obj.created_at, id=obj.id)

    def to_json(self) -> dict[str, str]:
        """A JSON-safe form, for a caller that persists the cursor between cycles."""
        return {"created_at": self.created_at.isoformat(), "id": self.id}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> BatchCursor:
        created_at = datetime.fromisoformat(data["created_at"])
        if created_at.tzinfo is None:
            raise ValueError("a batch cursor's created_at must carry its timezone")
        return cls(created_at=created_at, id=data["id"])


@dataclass(frozen=True, slots=True)
class ManagedObjectPage:
    """One page of a listing and whether more follow (OpenAI's ``has_more``)."""

    objects: tuple[ManagedObject, ...]
    has_more: bool

    @property
    def first_id(self) -> str | None:
        return self.objects[0].id if self.objects else None

    @property
    def last_id(self) -> str | None:
        return self.objects[-1].id if self.objects else None


@dataclass(frozen=True, slots=True)
class UnsettledBatches:
    """One poll cycle's batches, and where each lane resumes next cycle.

    Pass ``recent_after`` / ``older_after`` back to the next
    :meth:`ManagedObjectRepository.unsettled_batches`; ``None`` means the lane starts again
    from its oldest row (it was read to its end).
    """

    objects: tuple[ManagedObject, ...]
    recent_after: BatchCursor | None
    older_after: BatchCursor | None


def _after(cursor: BatchCursor | None, *, descending: bool = False) -> list[ColumnElement[bool]]:
    if cursor is None:
        return []
    if descending:
        return [
            or_(
                ManagedObject.created_at < cursor.created_at,
                and_(ManagedObject.created_at == cursor.created_at, ManagedObject.id < cursor.id),
            )
        ]
    return [
        or_(
            ManagedObject.created_at > cursor.created_at,
            and_(ManagedObject.created_at == cursor.created_at, ManagedObject.id > cursor.id),
        )
    ]


def _visible(
    key_id: str | None, team_ids_admin: Collection[str], is_admin: bool
) -> list[ColumnElement[bool]]:
    if is_admin:
        return []
    owners: list[ColumnElement[bool]] = []
    if key_id is not None:
        owners.append(ManagedObject.api_key == key_id)
    if team_ids_admin:
        owners.append(ManagedObject.team_id.in_(sorted(team_ids_admin)))
    return [or_(*owners)] if owners else [false()]


def _unclaimed(now: datetime, lease_seconds: float) -> ColumnElement[bool]:
    return or_(
        ManagedObject.claimed_at.is_(None),
        ManagedObject.claimed_at < now - timedelta(seconds=lease_seconds),
    )


def _unsettled() -> list[ColumnElement[bool]]:
    return [ManagedObject.settled_at.is_(None), ManagedObject.stale.is_(False)]


class ManagedObjectRepository:
    """The managed-object statements, over one session the caller commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- rows --------------------------------------------------------------------------------

    async def add(self, obj: ManagedObject) -> None:
        """Insert ``obj`` (flushed: a duplicate id surfaces here, inside the transaction)."""
        self.session.add(obj)
        await self.session.flush()

    async def get(self, object_id: str) -> ManagedObject | None:
        """The row with ``object_id``, whoever owns it (for the poller and admin tools)."""
        return await self.session.get(ManagedObject, object_id)

    async def get_visible(
        self,
        object_id: str,
        *,
        key_id: str | None,
        team_ids_admin: Collection[str] = (),
        is_admin: bool = False,
        kind: ObjectKind | None = None,
        api: ObjectApi | None = None,
    ) -> ManagedObject | None:
        """The row if the caller may see it (and it is of ``kind`` / ``api`` when given);
        ``None`` when it is absent, not the caller's, or of another kind."""
        where = [ManagedObject.id == object_id, *_visible(key_id, team_ids_admin, is_admin)]
        if kind is not None:
            where.append(ManagedObject.kind == kind)
        if api is not None:
            where.append(ManagedObject.api == api)
        return (await self.session.scalars(select(ManagedObject).where(*where))).one_or_none()

    async def list_visible(
        self,
        kind: ObjectKind,
        *,
        key_id: str | None,
        team_ids_admin: Collection[str] = (),
        is_admin: bool = False,
        api: ObjectApi | None = None,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = 20,
        order: Literal["asc", "desc"] = "desc",
    ) -> ManagedObjectPage:
        """The caller's objects of ``kind`` in creation order, newest first by default (as
        OpenAI and Anthropic list), keyset-paginated: ``after`` is the id of the last object
        of the previous page. An ``after`` the caller may not see gives an empty page, so
        the cursor reveals nothing about other owners' objects."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        where = [ManagedObject.kind == kind, *_visible(key_id, team_ids_admin, is_admin)]
        if api is not None:
            where.append(ManagedObject.api == api)
        if purpose is not None:
            where.append(ManagedObject.purpose == purpose)
        descending = order == "desc"
        if after is not None:
            anchor = await self.get_visible(
                after, key_id=key_id, team_ids_admin=team_ids_admin, is_admin=is_admin, kind=kind
            )
            if anchor is None:
                return ManagedObjectPage(objects=(), has_more=False)
            where.extend(_after(BatchCursor.of(anchor), descending=descending))
        ordering = (
            (ManagedObject.created_at.desc(), ManagedObject.id.desc())
            if descending
            else (ManagedObject.created_at.asc(), ManagedObject.id.asc())
        )
        stmt = select(ManagedObject).where(*where).order_by(*ordering).limit(limit + 1)
        rows = list((await self.session.scalars(stmt)).all())
        return ManagedObjectPage(objects=tuple(rows[:limit]), has_more=len(rows) > limit)

    async def file_in_use(self, file_id: str) -> bool:
        """True while an unsettled batch was made from file ``file_id`` (its provider
        file must stay until the batch is billed)."""
        stmt = select(ManagedObject.id).where(
            ManagedObject.kind == "batch", ManagedObject.input_file_id == file_id, *_unsettled()
        )
        return (await self.session.scalars(stmt.limit(1))).first() is not None

    async def remove_file(self, object_id: str) -> bool:
        """Delete a file's row (``DELETE /v1/files/{id}``); a batch's row is never deleted
        here, since it carries a reservation and a bill. True if a row went."""
        stmt = delete(ManagedObject).where(ManagedObject.id == object_id, ManagedObject.kind == "file")
        return await self._changed(stmt)

    # -- the poller --------------------------------------------------------------------------

    async def unsettled_batches(
        self,
        *,
        limit: int,
        now: datetime,
        recent_hours: float = 48,
        recent_after: BatchCursor | None = None,
        older_after: BatchCursor | None = None,
        lease_seconds: float | None = None,
    ) -> UnsettledBatches:
        """Up to ``limit`` unsettled, non-stale batches for one poll cycle, from two lanes so
        old stuck rows cannot starve new ones (reference §9.2 step 1): those created in the
        last ``recent_hours`` and the older ones, each in creation order from its own keyset
        cursor. Each lane gets half the cycle (the recent lane the odd one); a lane with
        fewer rows leaves its share to the other. The lanes alternate in the result. With
        ``lease_seconds``, rows under a live claim are skipped (another instance has them).
        """
        if limit < 1:
            return UnsettledBatches(objects=(), recent_after=recent_after, older_after=older_after)
        boundary = now - timedelta(hours=recent_hours)
        base = [ManagedObject.kind == "batch", *_unsettled()]
        if lease_seconds is not None:
            base.append(_unclaimed(now, lease_seconds))
        recent = await self._lane([*base, ManagedObject.created_at >= boundary], recent_after, limit)
        older = await self._lane([*base, ManagedObject.created_at < boundary], older_after, limit)
        recent_share = (limit + 1) // 2
        older_share = limit - recent_share
        # A lane that cannot fill its share gives the rest to the other.
        take_recent = min(len(recent), recent_share + max(0, older_share - len(older)))
        take_older = min(len(older), limit - take_recent)
        chosen_recent, chosen_older = recent[:take_recent], older[:take_older]
        objects: list[ManagedObject] = []
        for i in range(max(take_recent, take_older)):
            objects.extend(lane[i] for lane in (chosen_recent, chosen_older) if i < len(lane))
        return UnsettledBatches(
            objects=tuple(objects),
            recent_after=_next_cursor(recent, take_recent, limit, recent_after),
            older_after=_next_cursor(older, take_older, limit, older_after),
        )

    async def _lane(
        self, where: list[ColumnElement[bool]], cursor: BatchCursor | None, limit: int
    ) -> list[ManagedObject]:
        stmt = (
            select(ManagedObject)
            .where(*where, *_after(cursor))
            .order_by(ManagedObject.created_at, ManagedObject.id)
            .limit(limit)
        )
        return list((await self.session.scalars(stmt)).all())

    async def claim(self, object_id: str, *, by: str, now: datetime, lease_seconds: float) -> bool:
        """Claim an unsettled, non-stale row for ``by`` until ``now + lease_seconds``: ONE
        conditional UPDATE, true for at most one of any number of concurrent claimers. A
        row is claimable when nobody holds it, its claim lease has run out (the claimer
        crashed), or ``by`` already holds it (renewing the claim)."""
        stmt = update(ManagedObject).where(
            ManagedObject.id == object_id,
            *_unsettled(),
            or_(_unclaimed(now, lease_seconds), ManagedObject.claimed_by == by),
        )
        return await self._changed(stmt.values(claimed_by=by, claimed_at=now, updated_at=now))

    async def settle(
        self,
        object_id: str,
        *,
        by: str,
        cost_nanos: int,
        unpriced: bool,
        usage: dict[str, Any] | None,
        counts: RequestCounts,
        status: str,
        now: datetime,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
    ) -> bool:
        """Record the batch's exact bill and mark it settled, only if ``by`` holds the claim
        and the row is not settled yet; false otherwise (the caller lost the row). The
        output and error file ids are set when given."""
        values: dict[str, Any] = {
            "cost_nanos": cost_nanos,
            "unpriced": unpriced,
            "usage": usage,
            "status": status,
            "settled_at": now,
            "updated_at": now,
            **_counts(counts),
        }
        if output_file_id is not None:
            values["output_file_id"] = output_file_id
        if error_file_id is not None:
            values["error_file_id"] = error_file_id
        stmt = update(ManagedObject).where(
            ManagedObject.id == object_id, ManagedObject.claimed_by == by, *_unsettled()
        )
        return await self._changed(stmt.values(**values))

    async def release_claim(self, object_id: str, *, by: str) -> bool:
        """Give up ``by``'s claim on a row it has not settled (a retryable failure), so the
        next cycle, on any instance, may claim it at once."""
        stmt = update(ManagedObject).where(
            ManagedObject.id == object_id,
            ManagedObject.claimed_by == by,
            ManagedObject.settled_at.is_(None),
        )
        return await self._changed(stmt.values(claimed_by=None, claimed_at=None))

    async def mark_stale(self, object_id: str, *, now: datetime, by: str | None = None) -> bool:
        """Retire an unsettled batch stuck too long: ``stale`` and ``settled_at`` set,
        ``cost_nanos`` left NULL (nothing billed; the caller releases its reservation).
        With ``by``, only if ``by`` holds the claim, so one instance releases the
        reservation. True if this call retired it."""
        where = [ManagedObject.id == object_id, *_unsettled()]
        if by is not None:
            where.append(ManagedObject.claimed_by == by)
        stmt = update(ManagedObject).where(*where)
        return await self._changed(stmt.values(stale=True, settled_at=now, updated_at=now))

    async def update_status(
        self,
        object_id: str,
        *,
        status: str,
        now: datetime,
        counts: RequestCounts | None = None,
        output_file_id: str | None = None,
        error_file_id: str | None = None,
    ) -> bool:
        """Record what the provider last said about an object (status, counts, output and
        error file ids when given). A settled row is final and left as it is (a client
        retrieve racing the poller cannot undo the settled status); false then."""
        values: dict[str, Any] = {"status": status, "updated_at": now}
        if counts is not None:
            values.update(_counts(counts))
        if output_file_id is not None:
            values["output_file_id"] = output_file_id
        if error_file_id is not None:
            values["error_file_id"] = error_file_id
        stmt = update(ManagedObject).where(ManagedObject.id == object_id, ManagedObject.settled_at.is_(None))
        return await self._changed(stmt.values(**values))

    async def _changed(self, stmt: Update | Delete) -> bool:
        # "fetch" keeps objects already loaded in this session in step with the rows the
        # database really changed (not with what Python would guess from stale attributes).
        result = await self.session.execute(stmt.execution_options(synchronize_session="fetch"))
        return cast(CursorResult[Any], result).rowcount > 0


def _counts(counts: RequestCounts) -> dict[str, int]:
    return {
        "requests_total": counts.total,
        "requests_completed": counts.completed,
        "requests_failed": counts.failed,
    }


def _next_cursor(
    lane: Sequence[ManagedObject], taken: int, fetched_limit: int, current: BatchCursor | None
) -> BatchCursor | None:
    """Where a lane resumes: after the last row handed out, or from its start (None) once
    it was read to its end; unchanged when it handed out nothing but has rows left."""
    if taken == len(lane) and len(lane) < fetched_limit:
        return None
    if taken == 0:
        return current
    return BatchCursor.of(lane[taken - 1])
