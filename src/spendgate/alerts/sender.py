"""The sender job: drains the outbox, one claim per row, every attempt logged.

Each cycle (:meth:`AlertSender.run_once`) reads the due rows, and for each, with up to
``policy.concurrency`` at once: claim it (one conditional UPDATE with a lease, its own
transaction) → send it to its channel (bounded by ``policy.timeout_seconds``, shorter than
the lease) → in one transaction, write the attempt to ``alert_deliveries`` and mark the row
sent, due again later, or dead — only while the claim is still its own.

So a row is sent by one sender at a time even if the job's leader lock is lost (a second
leader cannot claim a row under a live lease), and a sender killed between claim and send
leaves a row that another sender claims once the lease ends. Delivery is at least once: a
sender killed after the receiver accepted but before the commit sends it again; the
``webhook-id`` (and email ``Message-ID``) is the same, so the receiver can drop it.

Retries: exponential from ``retry_base_seconds`` doubling up to ``retry_max_seconds``, each
delay drawn in [½, 1] of its value (jitter, so a receiver coming back is not hit by every
row at once), until ``retry_hours`` after the row was written; the next failure then marks
it ``dead``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from spendgate.alerts.delivery import Delivery
from spendgate.alerts.email import alert_email, send_email
from spendgate.alerts.redact import redact_urls
from spendgate.alerts.settings import AlertRouting, EmailChannel, SlackChannel, WebhookChannel
from spendgate.alerts.slack import send_slack
from spendgate.alerts.store import Claim, OutboxRepository
from spendgate.alerts.webhook import send_webhook

__all__ = ["AlertSender", "SendCycle", "retry_delay"]

log = logging.getLogger("spendgate.alerts")


@dataclass(frozen=True, slots=True)
class SendCycle:
    """What one cycle did: rows claimed, sent, to retry, dead, claims lost, and rows whose
    claim or record failed (the database)."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0
    errors: int = 0


def retry_delay(attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds before attempt ``attempt + 1``: ``base · 2^(attempt-1)`` capped at ``cap``,
    drawn in [½, 1] of that."""
    # The exponent is capped: 2**63 times any base the settings allow is past every cap, and a
    # float base times 2**1024 would overflow (a row retried ~1,024 times).
    full = min(cap, base * (2 ** min(63, max(0, attempt - 1))))
    return float(full * (0.5 + 0.5 * rng()))


class AlertSender:
    """Delivers the outbox of one database to the configured channels."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        routing: AlertRouting,
        *,
        instance_id: str,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        before_send: Callable[[Claim], Awaitable[None]] | None = None,
        on_attempt: Callable[[str, str], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.routing = routing
        self.policy = routing.policy
        self.instance_id = instance_id
        self.clock = clock
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(self.policy.timeout_seconds), follow_redirects=False, trust_env=True
        )
        redact_urls(c.url for c in routing.channels.values() if isinstance(c, SlackChannel | WebhookChannel))
        self._before_send = before_send
        """A test hook: awaited between the claim and the send (a sender killed there)."""
        self._on_attempt = on_attempt
        """Told (channel id, outcome) of every attempt recorded: the delivery metrics."""

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def run_once(self) -> SendCycle:
        """One cycle over the rows due now (at most ``policy.batch_size``)."""
        async with self.sessions() as session:
            due = await OutboxRepository(session).due(self.clock(), self.policy.batch_size)
        if not due:
            return SendCycle()
        gate = asyncio.Semaphore(self.policy.concurrency)

        async def one(outbox_id: int) -> str:
            async with gate:
                try:
                    return await self._deliver(outbox_id)
                except Exception:
                    # The database failed around a send (claim or record): the row's lease
                    # ends and it is sent again (the same webhook-id); the others go on.
                    log.warning("alert outbox row %d: not delivered this cycle", outbox_id, exc_info=True)
                    return "error"

        outcomes = await asyncio.gather(*(one(i) for i in due))
        cycle = SendCycle(
            claimed=sum(o not in ("unclaimed", "error") for o in outcomes),
            sent=outcomes.count("sent"),
            retried=outcomes.count("retry"),
            dead=outcomes.count("dead"),
            lost=outcomes.count("lost"),
            errors=outcomes.count("error"),
        )
        log.info("alert sender cycle: %s", cycle)
        return cycle

    async def _deliver(self, outbox_id: int) -> str:
        async with self.sessions.begin() as session:
            claim = await OutboxRepository(session).claim(outbox_id, self.clock(), self.policy.lease_seconds)
        if claim is None:
            return "unclaimed"
        if self._before_send is not None:
            await self._before_send(claim)
        started = self.clock()
        t0 = time.perf_counter()
        try:
            delivery = await asyncio.wait_for(self._send(claim, started), self.policy.timeout_seconds)
        except TimeoutError:
            delivery = Delivery(False, None, f"timed out after {self.policy.timeout_seconds:g} s")
        except Exception as exc:  # a bug in a channel must not stop the others
            log.exception("alert %s to %s: the channel failed", claim.alert_id, claim.channel)
            delivery = Delivery(False, None, f"{type(exc).__name__} in the channel")
        duration_ms = int((time.perf_counter() - t0) * 1000)
        now = self.clock()
        outcome: str
        next_at = None
        if delivery.ok:
            outcome = "sent"
        elif now - claim.created_at >= timedelta(hours=self.policy.retry_hours):
            outcome = "dead"
        else:
            outcome = "retry"
            next_at = now + timedelta(
                seconds=retry_delay(
                    claim.attempt, self.policy.retry_base_seconds, self.policy.retry_max_seconds
                )
            )
        try:
            kept = await self._finish(claim, outcome, started, duration_ms, delivery, next_at)
        except Exception:
            if delivery.error is None:
                raise
            # The error text itself may be what the database refuses: record the attempt
            # without it rather than leave the row to be retried forever unrecorded.
            log.warning(
                "alert %s to %s: recording the error failed", claim.alert_id, claim.channel, exc_info=True
            )
            unrecordable = Delivery(delivery.ok, delivery.status_code, "the error text could not be recorded")
            kept = await self._finish(claim, outcome, started, duration_ms, unrecordable, next_at)
        if not kept:
            log.warning(
                "alert %s to %s: the claim was lost before the attempt was recorded",
                claim.alert_id,
                claim.channel,
            )
            return "lost"
        if self._on_attempt is not None:
            self._on_attempt(claim.channel, outcome)
        if outcome != "sent":
            log.warning(
                "alert %s to %s: attempt %d failed (%s)%s",
                claim.alert_id,
                claim.channel,
                claim.attempt,
                delivery.error,
                "; dead" if outcome == "dead" else f"; next at {next_at:%H:%M:%S}",
            )
        return outcome

    async def _finish(
        self,
        claim: Claim,
        outcome: str,
        started: datetime,
        duration_ms: int,
        delivery: Delivery,
        next_at: datetime | None,
    ) -> bool:
        async with self.sessions.begin() as session:
            return await OutboxRepository(session).finish(
                claim,
                outcome=outcome,  # type: ignore[arg-type]
                attempted_at=started,
                duration_ms=duration_ms,
                status_code=delivery.status_code,
                error=delivery.error,
                next_attempt_at=next_at,
                sender=self.instance_id,
            )

    async def _send(self, claim: Claim, now: datetime) -> Delivery:
        channel = self.routing.channels.get(claim.channel)
        link = self.routing.dashboard_url
        if channel is None:
            return Delivery(False, None, f"channel {claim.channel!r} is not configured (any more)")
        if isinstance(channel, SlackChannel):
            return await send_slack(self.client, channel, claim.alert, claim.alert_id, link)
        if isinstance(channel, WebhookChannel):
            return await send_webhook(
                self.client,
                channel,
                claim.alert,
                claim.alert_id,
                claim.alert_created_at,
                claim.delivery_id,
                now,
            )
        assert isinstance(channel, EmailChannel)
        message = alert_email(channel, claim.alert, claim.alert_id, claim.delivery_id, now, link)
        return await send_email(channel, message, self.policy.timeout_seconds)
