"""The report scheduler: daily / weekly / monthly spend reports, each sent once.

Configured under ``general_settings.alerting_args.spend_reports`` (docs/alerts.md,
"Scheduled reports"). Every ``report_check_interval_seconds`` the job (under the job
runner's leader lock, like the alert sender) looks, for each report, at the completed
periods of its calendar in its zone — a period is completed ``grace_seconds`` after it
ends, so the last events of the period are in the ledger — and for each one not reported
yet builds the summary from the rollups (:func:`~spendgate.jobs.report_content.build_report`)
and hands it to the alert outbox with :func:`~spendgate.alerts.record_alert`.

Exactly once: the report is an alert of kind ``spend_report`` whose decision row is unique
on (scope, report name, period start), written with insert-or-ignore in the transaction
that writes its outbox rows. Two schedulers (a lost leader lock, the CLI beside the job)
may both build a report; one row wins, the other writes nothing.

A missed run (every instance down when a period ended) is caught up when the job next runs,
for the last ``lookback_periods`` completed periods only (default 1: the last one); an
older period is never reported. The first run of a new report sends its last completed
period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from spendgate.alerts import Alert, AlertRouting, alert_id_of, record_alert
from spendgate.config import GatewayConfig
from spendgate.core.money import to_nano
from spendgate.core.periods import Period, parse_window, period_for
from spendgate.errors import ConfigurationError
from spendgate.jobs.report_content import GlobalBudget, ReportSpec, build_report
from spendgate.jobs.runner import Job
from spendgate.stores.database.models import AlertRow

__all__ = ["ReportCycle", "ReportScheduler", "global_budget_of", "report_job", "report_specs"]

log = logging.getLogger("spendgate.reports")

_WINDOWS = {"daily": "1d", "weekly": "1w", "monthly": "1mo"}
_TICK = timedelta(microseconds=1)
_KINDS = ("slack", "webhook", "email")


def _channels(where: str, wanted: Sequence[str] | None, routing: AlertRouting) -> tuple[str, ...]:
    """The channel ids a report goes to: those of the kinds it names (default: every kind
    configured) that take ``spend_report`` alerts (``alert_types`` / ``alert_to_webhook_url``)."""
    if not routing.enabled:
        raise ConfigurationError(f"{where}: no alert channel is configured (general_settings.alerting)")
    configured = {cid.split(":", 1)[0] for cid in routing.channels}
    for kind in wanted or ():
        if kind not in configured:
            raise ConfigurationError(f"{where}.channels: {kind!r} is not in general_settings.alerting")
    kinds = set(wanted or _KINDS)
    out = tuple(cid for cid in routing.channels_for("spend_report") if cid.split(":", 1)[0] in kinds)
    if not out:
        raise ConfigurationError(
            f"{where}.channels: no configured channel takes spend reports "
            "(general_settings.alert_types leaves out spend_reports)"
        )
    return out


def report_specs(config: GatewayConfig, routing: AlertRouting) -> list[ReportSpec]:
    """The configured reports, resolved against the alert channels.

    Raises:
        ConfigurationError: a report names a channel that is not configured, or none of its
            channels takes spend reports (the message names the report's key).
    """
    out = []
    default_tz = config.litellm_settings.timezone
    args = config.general_settings.alerting_args
    for i, report in enumerate(args.spend_reports):
        where = f"general_settings.alerting_args.spend_reports[{i}]"
        out.append(
            ReportSpec(
                name=report.name,
                frequency=report.frequency,
                window=parse_window(_WINDOWS[report.frequency]),
                timezone=report.timezone or default_tz,
                team_ids=None if report.scope == "global" else tuple(report.team_ids),
                breakdowns=tuple(report.breakdowns),
                top_n=report.top_n,
                lookback=report.lookback_periods,
                grace=timedelta(seconds=report.grace_seconds),
                channels=_channels(where, report.channels, routing),
            )
        )
    return out


def global_budget_of(config: GatewayConfig) -> GlobalBudget | None:
    """``litellm_settings.max_budget`` for the global report (None when unset)."""
    settings = config.litellm_settings
    if settings.max_budget is None:
        return None
    return GlobalBudget(to_nano(settings.max_budget), settings.budget_duration, settings.timezone)


@dataclass(frozen=True, slots=True)
class ReportCycle:
    """What one cycle did: reports recorded (to the outbox), found already recorded (by
    this or another instance), and failed (logged; tried again next cycle)."""

    recorded: int = 0
    already: int = 0
    failed: int = 0


def _key(spec: ReportSpec, period: Period, team: str | None) -> Alert:
    """The decision row's identity of a report (what :func:`alert_id_of` reads)."""
    return Alert(
        kind="spend_report",
        scope_type="global" if team is None else "team",
        scope_id=team or "",
        message="",
        window=spec.name,
        period_start=period.start,
    )


class ReportScheduler:
    """Builds the due reports of one database and records each once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        specs: Sequence[ReportSpec],
        *,
        default_tz: str = "UTC",
        global_budget: GlobalBudget | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.specs = {spec.name: spec for spec in specs}
        self.default_tz = default_tz
        self.global_budget = global_budget
        self.clock = clock

    @staticmethod
    def due(spec: ReportSpec, now: datetime) -> list[Period]:
        """The completed periods of ``spec`` at ``now`` that may still be reported, oldest
        first: the last ``spec.lookback`` periods that ended ``spec.grace`` or more ago."""
        current = period_for(spec.window, now - spec.grace, spec.timezone)
        periods: list[Period] = []
        at = current.start
        for _ in range(spec.lookback):
            period = period_for(spec.window, at - _TICK, spec.timezone)
            periods.append(period)
            at = period.start
        return periods[::-1]

    async def run_once(self) -> ReportCycle:
        """One cycle: every due (report, period, scope) not recorded yet is built and recorded."""
        now = self.clock()
        wanted = [
            (spec, period, team)
            for spec in self.specs.values()
            for period in self.due(spec, now)
            for team in spec.team_ids or (None,)
        ]
        ids = [alert_id_of(_key(*item)) for item in wanted]
        async with self.sessions() as session:
            done = (
                set(await session.scalars(select(AlertRow.id).where(AlertRow.id.in_(ids)))) if ids else set()
            )
        recorded = already = failed = 0
        for item, alert_id in zip(wanted, ids, strict=True):
            if alert_id in done:
                already += 1
                continue
            try:
                created = await self._record(*item, now)
            except Exception:
                spec, period, team = item
                log.exception(
                    "spend report %s (%s, %s): not recorded this cycle", spec.name, period.key, team
                )
                failed += 1
                continue
            recorded += created
            already += not created
        cycle = ReportCycle(recorded, already, failed)
        if recorded or failed:
            log.info("report scheduler cycle: %s", cycle)
        return cycle

    async def send(self, name: str, at: datetime | None = None) -> list[tuple[str, bool]]:
        """Record report ``name`` now for the period holding ``at`` (default: its last
        completed period), whether or not it is due; ``(alert id, created)`` per scope.
        A report already recorded is not recorded again (``created`` is False).

        Raises:
            KeyError: no report of that name.
        """
        spec = self.specs[name]
        now = self.clock()
        period = self.due(spec, now)[-1] if at is None else period_for(spec.window, at, spec.timezone)
        out = []
        for team in spec.team_ids or (None,):
            created = await self._record(spec, period, team, now)
            out.append((alert_id_of(_key(spec, period, team)), created))
        return out

    async def _record(self, spec: ReportSpec, period: Period, team: str | None, now: datetime) -> bool:
        async with self.sessions.begin() as session:
            report = await build_report(
                session, spec, period, team, default_tz=self.default_tz, global_budget=self.global_budget
            )
            return await record_alert(session, report.alert(), spec.channels, now)


def report_job(scheduler: ReportScheduler, interval: float) -> Job:
    """The ``spend-reports`` job: one :meth:`ReportScheduler.run_once` every ``interval`` s."""

    async def run() -> None:
        await scheduler.run_once()

    return Job("spend-reports", interval, run)
