"""The batch-cost poll cycle: every unsettled batch asked about at its provider, the finished
ones billed once (:func:`~spendgate.batches.settlement.settle_batch`), the lost or stuck ones
retired and their reservations released.

:class:`BatchPoller` is what the ``spendgate.jobs`` batch-cost job calls, one instance at a
time under the jobs leader lock (nothing here takes that lock: the claims make two pollers
safe anyway, just wasteful). One :meth:`BatchPoller.run_once` is one cycle:

1. up to ``batch_size`` unsettled batches, not under another poller's claim, from the two
   fair lanes of :meth:`~spendgate.batches.store.ManagedObjectRepository.unsettled_batches`
   (the lane cursors are kept between cycles);
2. each is retrieved from its deployment and what the provider says (status, counts, file
   ids) is written on its row;
3. a terminal batch whose files are there (:func:`~spendgate.batches.settlement.is_ready`)
   is claimed (one conditional UPDATE) and settled; if settling fails the claim is given
   back so the next cycle retries at once;
4. a batch the provider answers 404 for (while its deployment still exists), or one older
   than ``max_age`` that is still not billed, is retired: its reservation released, then
   its row marked stale (in that order: both are idempotent, and a crash between them
   leaves a row the next cycle retires again, never a reservation held for nothing).

One bad batch (its deployment gone from the config, the provider down, a bad file) is
logged and counted in ``errors``; the cycle goes on and never raises for it.

With ``alerts``, a batch this cycle settled as failed (the provider's ``failed`` or
``expired``, or every line failed) alerts ``batch_failed``, and one it retired alerts
``batch_stale``: once per batch (the settle and the retire are each done once, by their
claimer), and an alert that cannot be recorded is logged, never fails the cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from spendgate.alerts.model import AlertKind
from spendgate.alerts.operational import OperationalAlerts, batch_alert
from spendgate.batches.settlement import (
    BatchSettlement,
    DurableRecorder,
    SessionFactory,
    SettledDeployment,
    is_ready,
    provider_counts,
    settle_batch,
)
from spendgate.batches.store import BatchCursor, ManagedObjectRepository
from spendgate.enforcement import Enforcer, Reservation
from spendgate.errors import UpstreamStatusError
from spendgate.providers.batch_api import BatchUpstream
from spendgate.stores.database.models import ManagedObject

__all__ = ["BatchPoller", "PollCycle", "PolledDeployment"]

log = logging.getLogger("spendgate.batches")


@dataclass(frozen=True, slots=True)
class PolledDeployment:
    """A deployment as the poller uses it: its prices and its batch API."""

    deployment: SettledDeployment
    upstream: BatchUpstream


@dataclass(frozen=True, slots=True)
class PollCycle:
    """What one cycle did: batches ``seen``, ``settled`` (billed by this cycle), retired as
    ``stale`` (404 at the provider, or too old), and ``errors`` (left for a later cycle)."""

    seen: int = 0
    settled: int = 0
    stale: int = 0
    errors: int = 0


class BatchPoller:
    """Polls and settles unsettled batches (see the module docstring).

    Args:
        sessions: opens a database session (``async_sessionmaker``).
        enforcer: on the counter storage the batches' reservations were taken on.
        recorder: the ledger (``record_durable``).
        deployments: the deployment of a row's ``deployment_id``, or None when it no
            longer exists (the batch is then left alone until it is too old).
        instance_id: this poller's name in the rows' claims.
        batch_size: batches per cycle.
        claim_lease_seconds: how long a claim keeps other pollers off a batch; a poller
            that crashed mid-settle is overtaken after it.
        max_age: a batch not billed this long after its creation is retired.
        recent_hours: the boundary of the recent lane.
        alerts: records ``batch_failed`` and ``batch_stale`` (None: no alerts).
    """

    def __init__(
        self,
        *,
        sessions: SessionFactory,
        enforcer: Enforcer,
        recorder: DurableRecorder,
        deployments: Callable[[str], PolledDeployment | None],
        instance_id: str,
        batch_size: int = 100,
        claim_lease_seconds: float = 600.0,
        max_age: timedelta = timedelta(days=3),
        recent_hours: float = 48,
        alerts: OperationalAlerts | None = None,
    ) -> None:
        if batch_size < 1 or claim_lease_seconds <= 0:
            raise ValueError("batch_size and claim_lease_seconds must be positive")
        self.sessions = sessions
        self.enforcer = enforcer
        self.recorder = recorder
        self.deployments = deployments
        self.instance_id = instance_id
        self.batch_size = batch_size
        self.claim_lease_seconds = claim_lease_seconds
        self.max_age = max_age
        self.recent_hours = recent_hours
        self.alerts = alerts
        self._recent_after: BatchCursor | None = None
        self._older_after: BatchCursor | None = None

    async def run_once(self, now: datetime) -> PollCycle:
        """One cycle at ``now`` (timezone-aware). Raises only when the database cannot even
        list the batches; a failure on one batch is counted, not raised."""
        async with self.sessions() as session:
            page = await ManagedObjectRepository(session).unsettled_batches(
                limit=self.batch_size,
                now=now,
                recent_hours=self.recent_hours,
                recent_after=self._recent_after,
                older_after=self._older_after,
                lease_seconds=self.claim_lease_seconds,
            )
        self._recent_after, self._older_after = page.recent_after, page.older_after
        settled = stale = errors = 0
        for row in page.objects:
            try:
                outcome = await self._poll(row, now)
            except Exception:
                log.exception("batch %s: poll failed; retried next cycle", row.id)
                outcome = "error"
            settled += outcome == "settled"
            stale += outcome == "stale"
            errors += outcome == "error"
        return PollCycle(seen=len(page.objects), settled=settled, stale=stale, errors=errors)

    async def _poll(self, row: ManagedObject, now: datetime) -> str:
        """One batch: ``settled``, ``stale``, ``pending``, ``lost`` (another poller has
        it) or ``error``."""
        too_old = now - row.created_at > self.max_age
        target = self.deployments(row.deployment_id) if row.deployment_id else None
        if target is None:
            if too_old:
                return await self._retire(row, now, "its deployment is gone and it is too old")
            log.warning(
                "batch %s: deployment %r is not configured; left unsettled", row.id, row.deployment_id
            )
            return "error"
        try:
            batch = await self._retrieve(target.upstream, row)
        except UpstreamStatusError as exc:
            if exc.status_code == 404:
                return await self._retire(row, now, "the provider does not know it (404)")
            if too_old:
                return await self._retire(row, now, f"too old, and the provider answers {exc.status_code}")
            raise
        except Exception:
            if too_old:
                return await self._retire(row, now, "too old, and the provider cannot be reached")
            raise
        terminal = is_ready(row.api, batch)
        async with self.sessions() as session:
            await ManagedObjectRepository(session).update_status(
                row.id,
                status=_status(row.api, batch),
                now=now,
                counts=provider_counts(row.api, batch),
                output_file_id=_str(batch.get("output_file_id")),
                error_file_id=_str(batch.get("error_file_id")),
            )
            await session.commit()
        if not terminal:
            if too_old:
                return await self._retire(row, now, f"too old and still {_status(row.api, batch)!r}")
            return "pending"
        if not await self._claim(row, now):
            return "lost"
        try:
            done = await settle_batch(
                row,
                batch,
                by=self.instance_id,
                deployment=target.deployment,
                upstream=target.upstream,
                enforcer=self.enforcer,
                recorder=self.recorder,
                sessions=self.sessions,
                now=now,
            )
        except Exception:
            await self._give_back(row)
            raise
        if not done.settled:
            return "lost"
        failure = _failure(done, cancelled=_cancelled(row.api, batch))
        if failure is not None:
            await self._alert(row, "batch_failed", failure, now, done.status)
        return "settled"

    @staticmethod
    async def _retrieve(upstream: BatchUpstream, row: ManagedObject) -> dict[str, Any]:
        provider_id = row.provider_id or ""
        if row.api == "anthropic":
            return await upstream.retrieve_message_batch(provider_id)
        return await upstream.retrieve_batch(provider_id)

    async def _claim(self, row: ManagedObject, now: datetime) -> bool:
        async with self.sessions() as session:
            claimed = await ManagedObjectRepository(session).claim(
                row.id, by=self.instance_id, now=now, lease_seconds=self.claim_lease_seconds
            )
            await session.commit()
        return claimed

    async def _give_back(self, row: ManagedObject) -> None:
        try:
            async with self.sessions() as session:
                await ManagedObjectRepository(session).release_claim(row.id, by=self.instance_id)
                await session.commit()
        except Exception:  # the claim lease frees it anyway
            log.warning("batch %s: could not give back the claim", row.id, exc_info=True)

    async def _retire(self, row: ManagedObject, now: datetime, why: str) -> str:
        """Release the reservation, then mark the row stale (only for this poller's claim)."""
        if not await self._claim(row, now):
            return "lost"
        if row.reservation is not None:
            await self.enforcer.release(Reservation.from_json(row.reservation))
        async with self.sessions() as session:
            retired = await ManagedObjectRepository(session).mark_stale(row.id, now=now, by=self.instance_id)
            await session.commit()
        if not retired:
            return "lost"
        log.warning("batch %s retired as stale, nothing billed: %s", row.id, why)
        await self._alert(row, "batch_stale", why, now)
        return "stale"

    async def _alert(
        self, row: ManagedObject, kind: AlertKind, why: str, now: datetime, status: str | None = None
    ) -> None:
        if self.alerts is None:
            return
        try:
            await self.alerts.record(batch_alert(row, kind, why, now, status))
        except Exception:  # the batch is settled or retired either way
            log.exception("batch %s: the %s alert could not be recorded", row.id, kind)


_FAILED_STATUSES = frozenset({"failed", "expired"})


def _failure(done: BatchSettlement, *, cancelled: bool) -> str | None:
    """Why a settled batch counts as failed (None: it did not): the provider failed or
    expired it, or none of its lines succeeded. A cancelled batch is the caller's choice."""
    if done.status in _FAILED_STATUSES:
        return f"the provider reports it {done.status}"
    if cancelled:
        return None
    totals = done.totals
    failed = totals.lines_failed + totals.lines_invalid
    if totals.lines_ok == 0 and failed:
        return f"none of its lines succeeded ({failed} failed)"
    return None


def _cancelled(api: str, batch: dict[str, Any]) -> bool:
    """The batch was cancelled by its caller: OpenAI says so in its status; an Anthropic
    batch just ``ended``, with ``cancel_initiated_at`` set (its lines come back ``canceled``)."""
    if api == "anthropic":
        return bool(batch.get("cancel_initiated_at"))
    return batch.get("status") in ("cancelled", "cancelling")


def _status(api: str, batch: dict[str, Any]) -> str:
    return str(batch.get("processing_status") if api == "anthropic" else batch.get("status"))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
