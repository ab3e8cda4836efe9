"""Settling one batch, exactly once: its output priced line by line, its reservation
replaced by the exact bill, one spend event written, its row marked settled.

The batch-cost poller (and nothing else) calls :func:`settle_batch` for a batch whose row
it has already CLAIMED (:meth:`~spendgate.batches.store.ManagedObjectRepository.claim`) and
whose provider object is terminal with its files there to read (:func:`is_ready`). The
steps run in this order, each one idempotent, so a crash anywhere is repaired by simply
running the whole thing again (the next claim, after the claim lease, re-prices the same
files):

1. **price**: the output file and the error file (OpenAI) or the results (Anthropic) are
   streamed through :func:`~spendgate.batches.output.price_output` at the deployment's own
   prices at the ``batch`` tier, as of the batch's billing time (:func:`billed_at`: when
   the provider finished it, so that pricing again gives the same bill);
2. **counters**: ``enforcer.settle(reservation, cost_nanos, tokens)``: the exact cost
   replaces the whole worst-case reservation, the rest is released (idempotent by the
   reservation's request id within its lease, 24 h). A batch in which no line succeeded
   (all failed, or cancelled with nothing done) releases it instead;
3. **ledger**: ``recorder.record_durable(event)`` with ``event_id = "batch:<row id>"`` and
   ``occurred_at = billed_at``: the ledger ignores an event whose (id, time) it already
   has, so a second run writes nothing;
4. **row**: :meth:`~spendgate.batches.store.ManagedObjectRepository.settle` (only the
   current claimer of an unsettled row can) and commit.

Before step 1 the row is read again: a claimer that no longer holds the claim (overtaken
after its claim lease) or finds it settled does nothing at all and returns
``settled=False``; the conditional settle in step 4 still guards the race in between.

The counters come before the ledger so a crash between them leaves the budgets charged
(safe: the ledger is completed by the re-run) rather than spend in the ledger the budgets
never saw; the row comes last because a settled row is never looked at again, so every
earlier step must be done by then.

Unpriced lines (usage the deployment has no price for) are never billed as $0: the priced
lines' cost and usage go on ``batch:<id>``, and the unpriced lines' usage on a second event
``batch:<id>:unpriced`` with ``unpriced=True`` and no cost. Each is written only when it
has lines. A batch with no succeeded line writes no event and settles its row at 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.batches.output import PricesServed, batch_price_line, price_output
from spendgate.batches.output_lines import OutputApi
from spendgate.batches.output_pricer import PriceLine
from spendgate.batches.output_totals import BatchTotals
from spendgate.batches.store import ManagedObjectRepository, RequestCounts
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.model import Usage
from spendgate.enforcement import Enforcer, Reservation
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.providers.batch_api import BatchUpstream, ContentStream
from spendgate.stores.database.models import ManagedObject

__all__ = [
    "OPENAI_TERMINAL",
    "BatchSettlement",
    "DurableRecorder",
    "SessionFactory",
    "SettledDeployment",
    "billed_at",
    "is_ready",
    "is_terminal",
    "provider_counts",
    "settle_batch",
]

log = logging.getLogger("spendgate.batches")

OPENAI_TERMINAL: Final = frozenset({"completed", "failed", "expired", "cancelled"})
"""OpenAI batch statuses after which nothing changes (Anthropic's one is ``ended``)."""

_OPENAI_TIMES: Final = {
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelled": "cancelled_at",
}


class SettledDeployment(PricesServed, Protocol):
    """What settling needs of a deployment (``gateway.deployments.Deployment`` is one): its
    prices (at the ``batch`` tier) and the provider name its events carry."""

    @property
    def provider(self) -> str: ...


class DurableRecorder(Protocol):
    """Anything that records a spend event durably (``ledger.recorder.Recorder`` is one)."""

    async def record_durable(self, event: SpendEvent) -> None: ...


SessionFactory = Callable[[], AbstractAsyncContextManager[AsyncSession]]
"""Opens a database session (an ``async_sessionmaker`` is one)."""


@dataclass(frozen=True, slots=True)
class BatchSettlement:
    """What :func:`settle_batch` did.

    ``settled``: this call marked the row settled (False: the claim was lost to another
    instance, or the row was already settled; then nothing was done when that was seen
    before pricing, and everything done otherwise is idempotent, so nothing counts twice).
    ``event_ids``: the spend events it recorded (none for a batch with no succeeded line).
    """

    object_id: str
    settled: bool
    cost_nanos: int
    totals: BatchTotals
    status: str
    event_ids: tuple[str, ...]


def is_terminal(api: str, batch: Mapping[str, Any]) -> bool:
    """True when the provider's batch object will not change again."""
    if api == "anthropic":
        return batch.get("processing_status") == "ended"
    return batch.get("status") in OPENAI_TERMINAL


def is_ready(api: str, batch: Mapping[str, Any]) -> bool:
    """True when the batch is terminal and what it produced can be read: OpenAI can report
    ``completed`` before the output file id appears (reference §9.2 step 4), so a batch whose
    counts say lines completed (or failed) but has no output (or error) file is not ready
    yet; an Anthropic batch needs ended. Billing a batch before then would bill $0 and
    release its reservation for good."""
    if not is_terminal(api, batch):
        return False
    if api == "anthropic":
        return True
    counts = provider_counts(api, batch)
    if counts is None:
        return True
    if counts.completed > 0 and not _str(batch.get("output_file_id")):
        return False
    return not (counts.failed > 0 and not _str(batch.get("error_file_id")))


def billed_at(row: ManagedObject, batch: Mapping[str, Any]) -> datetime:
    """When a batch is billed: when the provider finished it (OpenAI ``completed_at`` …,
    Anthropic ``ended_at``), else the row's creation. The same on every run, so the prices
    and the ledger event's time (part of its identity) do not move."""
    raw: Any = None
    if row.api == "anthropic":
        raw = batch.get("ended_at")
    else:
        raw = batch.get(_OPENAI_TIMES.get(str(batch.get("status")), ""))
        for name in _OPENAI_TIMES.values():
            raw = raw or batch.get(name)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return datetime.fromtimestamp(raw, UTC)
    if isinstance(raw, str) and raw:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return row.created_at


def provider_counts(api: str, batch: Mapping[str, Any]) -> RequestCounts | None:
    """The request counts the provider reports, as OpenAI names them (Anthropic's
    ``succeeded`` are completed; ``errored``, ``canceled`` and ``expired`` failed)."""
    counts = batch.get("request_counts")
    if not isinstance(counts, Mapping):
        return None
    n = {k: v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}
    if api == "anthropic":
        failed = n.get("errored", 0) + n.get("canceled", 0) + n.get("expired", 0)
        done = n.get("succeeded", 0)
        return RequestCounts(total=done + failed + n.get("processing", 0), completed=done, failed=failed)
    return RequestCounts(total=n.get("total", 0), completed=n.get("completed", 0), failed=n.get("failed", 0))


async def settle_batch(
    row: ManagedObject,
    batch: Mapping[str, Any],
    *,
    by: str,
    deployment: SettledDeployment,
    upstream: BatchUpstream,
    enforcer: Enforcer,
    recorder: DurableRecorder,
    sessions: SessionFactory,
    now: datetime,
) -> BatchSettlement:
    """Bill a terminal batch whose row ``by`` has claimed, exactly once (module docstring).

    Args:
        row: the batch's row, as read by the claimer (its attribution and reservation).
        batch: the provider's batch object, terminal and ready (:func:`is_ready`).
        by: the claimer (the poller instance's id).
        deployment: prices the lines (``Deployment.price(..., served_tier="batch")``).
        upstream: the deployment's :class:`~spendgate.providers.batch_api.BatchUpstream`.
        enforcer: on the storage the reservation was taken on.
        recorder: the ledger (``record_durable``).
        sessions: opens a database session (``async_sessionmaker``); the row is settled
            and committed in one of its own.
        now: the settle time written on the row.

    Raises:
        ValueError: the batch is not terminal, or its files are not there yet.
        Whatever streaming the files, the counters, the recorder or the database raise:
        nothing is settled then, and running again (after the claim lease) is safe.
    """
    api = row.api
    if not is_ready(api, batch):
        raise ValueError(f"batch {row.id} is not terminal at the provider, or its files are not there yet")
    if not await _still_claimed(sessions, row.id, by):  # overtaken: touch nothing
        log.info("batch %s: no longer claimed by %s; left to its claimer", row.id, by)
        return BatchSettlement(row.id, False, 0, BatchTotals(), str(row.status), ())
    at = billed_at(row, batch)
    price_line = batch_price_line(deployment, at)
    totals = await _price(api, upstream, row, batch, price_line, memoize=True)
    priced_usage, unpriced_usage = totals.usage, Usage()
    if totals.unpriced:  # rare: price again line by line to split the usage (no memo to hide repeats)
        splitter = _UsageSplitter(price_line)
        totals = await _price(api, upstream, row, batch, splitter, memoize=False)
        priced_usage, unpriced_usage = splitter.priced, splitter.unpriced
        log.warning(
            "batch %s: %d lines unpriced (%s): recorded as unpriced usage",
            row.id,
            totals.unpriced_lines,
            totals.unpriced_reason,
        )
    if totals.lines_invalid:
        log.warning(
            "batch %s: %d output lines could not be read: %s", row.id, totals.lines_invalid, totals.problems
        )

    reservation = Reservation.from_json(row.reservation) if row.reservation is not None else None
    events: list[SpendEvent] = []
    if totals.lines_ok == 0:
        if reservation is not None:
            await enforcer.release(reservation)
    else:
        if reservation is not None:
            await enforcer.settle(reservation, totals.cost_nanos, totals.usage.total_tokens)
        events = _events(row, deployment, totals, priced_usage, unpriced_usage, at)
        for event in events:
            await recorder.record_durable(event)

    counts = provider_counts(api, batch) or RequestCounts(
        total=totals.lines, completed=totals.lines_ok, failed=totals.lines_failed + totals.lines_invalid
    )
    status = str(batch.get("processing_status") if api == "anthropic" else batch.get("status"))
    async with sessions() as session:
        settled = await ManagedObjectRepository(session).settle(
            row.id,
            by=by,
            cost_nanos=totals.cost_nanos,
            unpriced=totals.unpriced,
            usage=_usage_json(totals.usage),
            counts=counts,
            status=status,
            now=now,
            output_file_id=_str(batch.get("output_file_id")),
            error_file_id=_str(batch.get("error_file_id")),
        )
        await session.commit()
    if not settled:
        log.info("batch %s: settled by another poller (claim lost by %s)", row.id, by)
    return BatchSettlement(
        object_id=row.id,
        settled=settled,
        cost_nanos=totals.cost_nanos,
        totals=totals,
        status=status,
        event_ids=tuple(e.event_id for e in events),
    )


async def _still_claimed(sessions: SessionFactory, object_id: str, by: str) -> bool:
    """True while ``by`` holds the row's claim and it is not settled: a claimer overtaken
    after its claim lease stops here, so it does not even repeat the idempotent steps."""
    async with sessions() as session:
        current = await ManagedObjectRepository(session).get(object_id)
        return (
            current is not None
            and current.claimed_by == by
            and current.settled_at is None
            and not current.stale
        )


async def _price(
    api: str,
    upstream: BatchUpstream,
    row: ManagedObject,
    batch: Mapping[str, Any],
    price_line: PriceLine,
    *,
    memoize: bool,
) -> BatchTotals:
    """The totals of every file the batch produced (none: empty totals)."""
    kind: OutputApi = "anthropic" if api == "anthropic" else "openai"
    streams: list[tuple[str, ContentStream]] = []
    if kind == "anthropic":
        results_url = _str(batch.get("results_url"))
        streams.append(
            ("results", upstream.message_batch_results(row.provider_id or str(batch["id"]), results_url))
        )
    else:
        for source, key in (("output", "output_file_id"), ("error", "error_file_id")):
            file_id = _str(batch.get(key))
            if file_id:
                streams.append((source, upstream.file_content(file_id)))
    totals = BatchTotals()
    for source, stream in streams:
        async with stream as chunks:
            totals += await price_output(
                chunks, price_line, api=kind, default_model=row.model_group, source=source, memoize=memoize
            )
    return totals


class _UsageSplitter:
    """A ``price_line`` that also adds up the usage of priced and of unpriced lines (used
    with ``memoize=False``, so it sees every line)."""

    def __init__(self, price_line: PriceLine) -> None:
        self._price_line = price_line
        self.priced = Usage()
        self.unpriced = Usage()

    def __call__(self, model: str, usage: Usage) -> CostBreakdown:
        breakdown = self._price_line(model, usage)
        if breakdown.priced:
            self.priced += usage
        else:
            self.unpriced += usage
        return breakdown


def _events(
    row: ManagedObject,
    deployment: SettledDeployment,
    totals: BatchTotals,
    priced_usage: Usage,
    unpriced_usage: Usage,
    at: datetime,
) -> list[SpendEvent]:
    status = EventStatus.SUCCESS if totals.lines_ok == totals.lines else EventStatus.PARTIAL
    common: dict[str, Any] = {
        "occurred_at": at,
        "status": status,
        "estimated": False,
        "service_tier": "batch",
        "started_at": row.created_at,
        "api_key": row.api_key,
        "user_id": row.user_id,
        "team_id": row.team_id,
        "organization_id": row.organization_id,
        "end_user": row.end_user,
        "tags": tuple(row.tags or ()),
        "requested_model": row.model_group,
        "model": totals.models[0] if len(totals.models) == 1 else row.model_group,
        "deployment_id": row.deployment_id,
        "provider": deployment.provider,
        "endpoint": row.endpoint,
        "operation_id": row.id,
        "batch_id": row.id,
    }
    events: list[SpendEvent] = []
    if totals.lines_ok > totals.unpriced_lines:
        events.append(
            SpendEvent(
                event_id=f"batch:{row.id}",
                cost_nanos=totals.cost_nanos,
                cost_items=dict(totals.cost_items),
                usage=priced_usage,
                resolved_model=_one(totals.resolved_models),
                catalogue_version=_one(totals.catalogue_versions),
                price_source=_one(totals.price_sources),
                **common,
            )
        )
    if totals.unpriced_lines:
        events.append(
            SpendEvent(
                event_id=f"batch:{row.id}:unpriced",
                cost_nanos=0,
                usage=unpriced_usage,
                unpriced=True,
                unpriced_reason=totals.unpriced_reason,
                **common,
            )
        )
    return events


def _usage_json(usage: Usage) -> dict[str, Any]:
    """The summed usage as the row stores it: the non-zero fields (seconds as a string)."""
    out: dict[str, Any] = {}
    for f in fields(usage):
        value = getattr(usage, f.name)
        if isinstance(value, Decimal):
            if value:
                out[f.name] = str(value)
        elif value:
            out[f.name] = value
    return out


def _one(values: tuple[str, ...]) -> str | None:
    return values[0] if len(values) == 1 else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
