"""The managed-object repository on SQLite and PostgreSQL: rows, visibility, listings, the
poller's fair lanes, and the claim / settle protocol that bills a batch exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from spendgate.batches.store import (
    BatchCursor,
    ManagedObjectRepository,
    RequestCounts,
    new_object_id,
)
from spendgate.stores.database.models import ManagedObject

NOW = datetime(2026, 12, 4, 12, 0, 0, 123456, tzinfo=UTC)
LEASE = 300.0


def _batch(object_id: str, created_at: datetime = NOW, **fields: Any) -> ManagedObject:
    values: dict[str, Any] = {
        "kind": "batch",
        "api": "openai",
        "status": "in_progress",
        "api_key": "key-a",
        "team_id": "team-1",
        "created_at": created_at,
        "updated_at": created_at,
    }
    values.update(fields)
    return ManagedObject(id=object_id, **values)


def _file(object_id: str, created_at: datetime = NOW, **fields: Any) -> ManagedObject:
    values: dict[str, Any] = {"kind": "file", "status": "processed", "purpose": "batch", **fields}
    return _batch(object_id, created_at, **values)


@pytest_asyncio.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine, expire_on_commit=False) as s:
        yield s


async def _add(session: AsyncSession, *objects: ManagedObject) -> ManagedObjectRepository:
    repo = ManagedObjectRepository(session)
    for obj in objects:
        await repo.add(obj)
    await session.commit()
    return repo


# -- ids and rows -----------------------------------------------------------------------------


def test_new_object_ids_are_prefixed_random_and_distinct() -> None:
    assert new_object_id("file", "openai").startswith("file-sg")
    assert new_object_id("batch", "openai").startswith("batch_sg")
    assert new_object_id("batch", "anthropic").startswith("msgbatch_sg")
    ids = {new_object_id("batch", "openai") for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == len("batch_sg") + 32 for i in ids)
    with pytest.raises(ValueError, match="no managed file for the anthropic API"):
        new_object_id("file", "anthropic")


async def test_a_row_round_trips_every_field(engine: AsyncEngine) -> None:
    reservation = {"id": "r-1", "operations": [["key", "key-a", 123]], "lease_ms": 86_400_000}
    obj = _batch(
        "batch_sg1",
        api="anthropic",
        deployment_id="dep-1",
        provider_id="batch_upstream",
        model_group="gpt-4o-mini",
        endpoint="/v1/chat/completions",
        input_file_id="file-sg1",
        requests_total=500,
        user_id="u-1",
        organization_id="org-1",
        end_user="cust-1",
        tags=["prod", "nightly"],
        reservation=reservation,
        reserved_nanos=2**62,  # BIGINT, far past 32 bits
        metadata_={"note": "x"},
    )
    async with AsyncSession(engine) as s:
        await _add(s, obj)
    async with AsyncSession(engine) as s:
        row = await ManagedObjectRepository(s).get("batch_sg1")
        assert row is not None
        assert (row.kind, row.api, row.deployment_id, row.provider_id) == (
            "batch",
            "anthropic",
            "dep-1",
            "batch_upstream",
        )
        assert row.reservation == reservation and row.tags == ["prod", "nightly"]
        assert row.reserved_nanos == 2**62 and row.requests_total == 500
        assert row.cost_nanos is None and row.settled_at is None and row.usage is None
        assert row.unpriced is False and row.stale is False
        assert row.created_at == NOW and row.created_at.tzinfo is not None
        assert row.metadata_ == {"note": "x"}
        assert await ManagedObjectRepository(s).get("batch_sg2") is None


# -- visibility -------------------------------------------------------------------------------


async def test_visibility_owner_team_admin_and_admin(session: AsyncSession) -> None:
    repo = await _add(session, _batch("b1"), _batch("b2", api_key="key-b", team_id=None), _file("f1"))

    async def sees(object_id: str, **who: Any) -> bool:
        return await repo.get_visible(object_id, **who) is not None

    assert await sees("b1", key_id="key-a")
    assert not await sees("b1", key_id="key-b")  # another key: same answer as absent
    assert not await sees("absent", key_id="key-a")
    assert await sees("b1", key_id="key-b", team_ids_admin={"team-1"})  # its team's admin
    assert not await sees("b2", key_id="key-c", team_ids_admin={"team-1"})  # no team
    assert await sees("b2", key_id=None, is_admin=True)
    assert not await sees("b2", key_id=None)  # no key, no teams: nothing
    assert await sees("f1", key_id="key-a", kind="file")
    assert not await sees("f1", key_id="key-a", kind="batch")
    assert not await sees("b1", key_id="key-a", api="anthropic")
    assert await sees("b1", key_id="key-a", kind="batch", api="openai")


async def test_a_key_never_sees_rows_without_an_owner(session: AsyncSession) -> None:
    repo = await _add(session, _batch("b1", api_key=None, team_id=None))
    assert await repo.get_visible("b1", key_id="key-a", team_ids_admin={"team-1"}) is None
    assert (await repo.list_visible("batch", key_id="key-a")).objects == ()


# -- listings ---------------------------------------------------------------------------------


async def test_listing_is_keyset_paginated_newest_first(session: AsyncSession) -> None:
    # Five share one timestamp: the id breaks the tie, so no row is skipped or repeated.
    rows = [_batch(f"b{i:02d}", NOW + timedelta(seconds=i // 5)) for i in range(12)]
    others = [_batch("x1", api_key="key-b", team_id="team-2"), _file("f1")]
    repo = await _add(session, *rows, *others)
    expected = [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)]

    seen: list[str] = []
    after: str | None = None
    while True:
        page = await repo.list_visible("batch", key_id="key-a", after=after, limit=5)
        seen.extend(o.id for o in page.objects)
        if not page.has_more:
            break
        after = page.last_id
    assert seen == expected
    assert page.first_id == expected[10] and page.last_id == expected[-1]

    ascending = await repo.list_visible("batch", key_id="key-a", order="asc", limit=50)
    assert [o.id for o in ascending.objects] == expected[::-1] and not ascending.has_more
    exact = await repo.list_visible("batch", key_id="key-a", limit=12)
    assert len(exact.objects) == 12 and not exact.has_more


async def test_listing_filters_and_a_foreign_cursor(session: AsyncSession) -> None:
    repo = await _add(
        session,
        _batch("b1"),
        _batch("m1", NOW + timedelta(seconds=1), api="anthropic"),
        _batch("x1", api_key="key-b", team_id="team-2"),
        _file("f1"),
        _file("f2", purpose="batch_output"),
    )
    mine = await repo.list_visible("batch", key_id="key-a")
    assert [o.id for o in mine.objects] == ["m1", "b1"]
    openai = await repo.list_visible("batch", key_id="key-a", api="openai")
    assert [o.id for o in openai.objects] == ["b1"]
    files = await repo.list_visible("file", key_id="key-a", purpose="batch")
    assert [o.id for o in files.objects] == ["f1"]
    team = await repo.list_visible("batch", key_id="key-z", team_ids_admin=["team-2"])
    assert [o.id for o in team.objects] == ["x1"]
    every = await repo.list_visible("batch", key_id=None, is_admin=True)
    assert {o.id for o in every.objects} == {"b1", "m1", "x1"}
    # Another owner's id as the cursor says nothing about it: an empty page.
    foreign = await repo.list_visible("batch", key_id="key-a", after="x1")
    assert foreign.objects == () and not foreign.has_more
    with pytest.raises(ValueError):
        await repo.list_visible("batch", key_id="key-a", limit=0)


# -- the poller's lanes -----------------------------------------------------------------------


async def test_lanes_share_a_cycle_and_old_rows_cannot_starve_new_ones(session: AsyncSession) -> None:
    old = [_batch(f"old{i:03d}", NOW - timedelta(days=5, minutes=-i)) for i in range(100)]
    new = [_batch(f"new{i}", NOW - timedelta(hours=1, minutes=-i)) for i in range(3)]
    excluded = [
        _batch("settled", NOW, settled_at=NOW, cost_nanos=1),
        _batch("stale", NOW, stale=True, settled_at=NOW),
        _file("file", NOW),
    ]
    repo = await _add(session, *old, *new, *excluded)

    first = await repo.unsettled_batches(limit=4, now=NOW)
    assert [o.id for o in first.objects] == ["new0", "old000", "new1", "old001"]
    assert first.recent_after == BatchCursor.of(new[1]) and first.older_after == BatchCursor.of(old[1])

    second = await repo.unsettled_batches(
        limit=4, now=NOW, recent_after=first.recent_after, older_after=first.older_after
    )
    # The recent lane has one row left: the older lane takes the rest of the cycle.
    assert [o.id for o in second.objects] == ["new2", "old002", "old003", "old004"]
    assert second.recent_after is None  # read to its end: starts again next cycle
    assert second.older_after == BatchCursor.of(old[4])

    third = await repo.unsettled_batches(
        limit=4, now=NOW, recent_after=second.recent_after, older_after=second.older_after
    )
    assert [o.id for o in third.objects] == ["new0", "old005", "new1", "old006"]


async def test_lanes_visit_every_row_and_wrap_around(session: AsyncSession) -> None:
    rows = [_batch(f"r{i:02d}", NOW - timedelta(hours=i * 7)) for i in range(20)]  # both lanes
    repo = await _add(session, *rows)
    recent: BatchCursor | None = None
    older: BatchCursor | None = None
    seen: list[str] = []
    sizes: list[int] = []
    for _ in range(6):
        cycle = await repo.unsettled_batches(limit=5, now=NOW, recent_after=recent, older_after=older)
        seen.extend(o.id for o in cycle.objects)
        sizes.append(len(cycle.objects))
        recent, older = cycle.recent_after, cycle.older_after
    # 7 recent rows (48 h) and 13 older ones: the recent lane goes round twice meanwhile.
    assert sizes == [5, 5, 5, 5, 5, 2]
    assert set(seen) == {r.id for r in rows}
    assert recent is None and older is None  # both lanes read to their end: start again


async def test_lanes_skip_live_claims_and_handle_a_tiny_limit(session: AsyncSession) -> None:
    repo = await _add(
        session,
        _batch("held", NOW - timedelta(hours=1), claimed_by="other", claimed_at=NOW - timedelta(seconds=10)),
        _batch("lapsed", NOW - timedelta(hours=2), claimed_by="dead", claimed_at=NOW - timedelta(hours=1)),
        _batch("old", NOW - timedelta(days=3)),
    )
    every = await repo.unsettled_batches(limit=10, now=NOW)
    assert {o.id for o in every.objects} == {"held", "lapsed", "old"}
    free = await repo.unsettled_batches(limit=10, now=NOW, lease_seconds=LEASE)
    assert [o.id for o in free.objects] == ["lapsed", "old"]
    one = await repo.unsettled_batches(limit=1, now=NOW, lease_seconds=LEASE)
    assert [o.id for o in one.objects] == ["lapsed"] and one.older_after is None
    none = await repo.unsettled_batches(limit=0, now=NOW, older_after=BatchCursor.of(every.objects[0]))
    assert none.objects == () and none.older_after == BatchCursor.of(every.objects[0])


def test_a_cursor_survives_json() -> None:
    cursor = BatchCursor(created_at=NOW, id="batch_sg1")
    assert BatchCursor.from_json(cursor.to_json()) == cursor
    with pytest.raises(ValueError):
        BatchCursor.from_json({"created_at": "2026-12-04T12:00:00", "id": "x"})


# -- claim, settle, release, stale ------------------------------------------------------------


async def test_claim_is_exclusive_until_its_lease_runs_out(session: AsyncSession) -> None:
    repo = await _add(session, _batch("b1"))
    assert await repo.claim("b1", by="p1", now=NOW, lease_seconds=LEASE)
    assert not await repo.claim("b1", by="p2", now=NOW + timedelta(seconds=LEASE - 1), lease_seconds=LEASE)
    assert await repo.claim("b1", by="p1", now=NOW + timedelta(seconds=60), lease_seconds=LEASE)  # renew
    assert not await repo.claim("b1", by="p2", now=NOW + timedelta(seconds=LEASE), lease_seconds=LEASE)
    later = NOW + timedelta(seconds=60 + LEASE + 1)
    assert await repo.claim("b1", by="p2", now=later, lease_seconds=LEASE)  # p1 died
    await session.commit()
    row = await repo.get("b1")
    assert row is not None and (row.claimed_by, row.claimed_at) == ("p2", later)
    assert not await repo.claim("absent", by="p1", now=NOW, lease_seconds=LEASE)


async def test_settle_only_by_the_claimer_and_only_once(engine: AsyncEngine) -> None:
    async with AsyncSession(engine, expire_on_commit=False) as s:
        repo = await _add(s, _batch("b1", reserved_nanos=9_000_000_000))
        settle: dict[str, Any] = {
            "cost_nanos": 1_234_567_891_011,
            "unpriced": False,
            "usage": {"input_tokens": 1000, "output_tokens": 200},
            "counts": RequestCounts(total=500, completed=498, failed=2),
            "status": "completed",
            "output_file_id": "file-sgout",
            "error_file_id": "file-sgerr",
        }
        assert not await repo.settle("b1", by="p1", now=NOW, **settle)  # not claimed
        assert await repo.claim("b1", by="p1", now=NOW, lease_seconds=LEASE)
        assert not await repo.settle("b1", by="p2", now=NOW, **settle)  # not the claimer
        done = NOW + timedelta(seconds=5)
        assert await repo.settle("b1", by="p1", now=done, **settle)
        assert not await repo.settle("b1", by="p1", now=done, **settle)  # once
        await s.commit()
    async with AsyncSession(engine) as s:
        repo = ManagedObjectRepository(s)
        row = await repo.get("b1")
        assert row is not None
        assert (row.cost_nanos, row.unpriced, row.status, row.settled_at) == (
            1_234_567_891_011,
            False,
            "completed",
            done,
        )
        assert (row.requests_total, row.requests_completed, row.requests_failed) == (500, 498, 2)
        assert (row.output_file_id, row.error_file_id) == ("file-sgout", "file-sgerr")
        assert row.usage == {"input_tokens": 1000, "output_tokens": 200}
        assert row.reserved_nanos == 9_000_000_000 and row.updated_at == done
        # Settled: nobody claims it again, not even after any lease, and the claim stays.
        far = NOW + timedelta(days=30)
        assert not await repo.claim("b1", by="p2", now=far, lease_seconds=LEASE)
        assert not await repo.release_claim("b1", by="p1")
        assert not await repo.mark_stale("b1", now=far)
        assert not await repo.update_status("b1", status="in_progress", now=far)
        assert (await repo.unsettled_batches(limit=10, now=far)).objects == ()


async def test_a_released_claim_is_free_at_once(session: AsyncSession) -> None:
    repo = await _add(session, _batch("b1"))
    assert await repo.claim("b1", by="p1", now=NOW, lease_seconds=LEASE)
    assert not await repo.release_claim("b1", by="p2")
    assert await repo.release_claim("b1", by="p1")
    row = await repo.get("b1")
    assert row is not None and row.claimed_by is None and row.claimed_at is None
    assert await repo.claim("b1", by="p2", now=NOW, lease_seconds=LEASE)
    # A batch with an unpriced line settles unpriced, with the priced lines' cost.
    counts = RequestCounts(total=3, completed=3, failed=0)
    assert await repo.settle(
        "b1", by="p2", cost_nanos=7, unpriced=True, usage=None, counts=counts, status="completed", now=NOW
    )
    await session.commit()
    row = await repo.get("b1")
    assert row is not None and row.unpriced is True and row.cost_nanos == 7 and row.claimed_by == "p2"


async def test_a_stale_batch_is_retired_unbilled(session: AsyncSession) -> None:
    repo = await _add(session, _batch("b1"), _batch("b2"))
    assert await repo.claim("b1", by="p1", now=NOW, lease_seconds=LEASE)
    assert not await repo.mark_stale("b1", now=NOW, by="p2")  # p1 holds it
    assert await repo.mark_stale("b1", now=NOW, by="p1")
    assert not await repo.mark_stale("b1", now=NOW, by="p1")  # once
    assert await repo.mark_stale("b2", now=NOW)  # unclaimed, no claimer named
    await session.commit()
    row = await repo.get("b1")
    assert row is not None and row.stale and row.settled_at == NOW and row.cost_nanos is None
    assert not await repo.claim("b1", by="p3", now=NOW + timedelta(days=1), lease_seconds=LEASE)
    assert not await repo.settle(
        "b1",
        by="p1",
        cost_nanos=1,
        unpriced=False,
        usage=None,
        counts=RequestCounts(1, 1, 0),
        status="completed",
        now=NOW,
    )
    assert (await repo.unsettled_batches(limit=10, now=NOW)).objects == ()


async def test_update_status_and_remove_file(session: AsyncSession) -> None:
    repo = await _add(session, _batch("b1"), _file("f1"))
    later = NOW + timedelta(minutes=1)
    assert await repo.update_status(
        "b1", status="finalizing", now=later, counts=RequestCounts(10, 7, 1), output_file_id="file-sgo"
    )
    assert await repo.update_status("b1", status="completed", now=later, error_file_id="file-sge")
    await session.commit()
    row = await repo.get("b1")
    assert row is not None
    assert (row.status, row.requests_total, row.requests_completed, row.requests_failed) == (
        "completed",
        10,
        7,
        1,
    )
    assert (row.output_file_id, row.error_file_id, row.updated_at) == ("file-sgo", "file-sge", later)
    assert not await repo.update_status("absent", status="x", now=later)

    assert not await repo.remove_file("b1")  # a batch's row carries its bill: never deleted
    assert await repo.remove_file("f1")
    assert not await repo.remove_file("f1")
    await session.commit()
    assert await repo.get("f1") is None and await repo.get("b1") is not None


# -- exactly once under concurrency -----------------------------------------------------------


async def test_twenty_concurrent_claimers_exactly_one_wins(database_url: str, engine: AsyncEngine) -> None:
    """20 sessions, each on its own connection, claim the same rows at the same moment: for
    every row exactly one wins, and the row names that winner."""
    from spendgate.stores.database import create_engine

    claimers = 20
    async with AsyncSession(engine) as s:
        await _add(s, *(_batch(f"b{r}") for r in range(5)))
    wide = create_engine(database_url, pool_size=claimers, max_overflow=0)
    try:
        for r in range(5):
            barrier = asyncio.Barrier(claimers)

            async def claim(n: int, object_id: str = f"b{r}", barrier: asyncio.Barrier = barrier) -> bool:
                async with AsyncSession(wide) as s:
                    await s.connection()  # this claimer's own connection, held
                    await barrier.wait()
                    won = await ManagedObjectRepository(s).claim(
                        object_id, by=f"p{n}", now=NOW, lease_seconds=LEASE
                    )
                    await s.commit()
                    return won

            results = await asyncio.gather(*(claim(n) for n in range(claimers)))
            assert sum(results) == 1
            async with AsyncSession(engine) as s:
                row = await ManagedObjectRepository(s).get(f"b{r}")
                assert row is not None and row.claimed_by == f"p{results.index(True)}"
    finally:
        await wide.dispose()
