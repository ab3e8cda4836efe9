"""What a scheduled spend report says, read from the rollups (DESIGN §5.15).

:func:`build_report` turns one (report, period, scope) into a
:class:`~spendgate.alerts.spend_report.SpendReport`: the period's totals and the previous
period's, the top models / keys / teams, and the use of the scope's budgets. Every figure
is a :func:`~spendgate.ledger.reports.spend_report` over whole periods (calendar periods
in any IANA zone start on a 15-minute bucket), so it equals what ``/global/spend/report``
shows for the same days, to the nano-USD, whatever the history's size.

A team's top keys are the keys that belong to the team now (``virtual_keys.team_id``): the
rollups keep one scope type per row, so spend per (team, key) is not rolled up; a key that
moved between teams during the period shows its whole spend.

Budgets: the team's ``max_budget`` (with its ``budget_duration``, else lifetime) and each
``budget_limits`` window, decoded as enforcement decodes them (a budget profile fills what
the team leaves unset), in the budget's own zone; the global report shows
``litellm_settings.max_budget`` and the budgets of its top teams. A budget's spend is what
its period holding the report period's last instant had spent by the report's end.
Windows shorter than an hour and rolling windows are left out (no calendar period to
report on); so are per-model budgets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.alerts.spend_report import Breakdown, BudgetLine, ReportLine, SpendReport
from spendgate.core.periods import LIFETIME_END, LIFETIME_START, Period, Window, parse_window, period_for
from spendgate.core.scopes import scope_type
from spendgate.entities.codec import decode_limits
from spendgate.entities.repository import EntityRepository
from spendgate.ledger.reports import Totals, spend_report
from spendgate.stores.database.models import Budget, Team, VirtualKey

__all__ = ["GlobalBudget", "ReportSpec", "build_report"]

_TICK = timedelta(microseconds=1)
_TEAM_WINDOWS = scope_type("team").name
_NONE = {"model": "(no model)", "key": "(no key)", "team": "(no team)"}


@dataclass(frozen=True, slots=True)
class ReportSpec:
    """One configured report, resolved: its calendar, scope, content and channels."""

    name: str
    frequency: str
    window: Window
    timezone: str
    team_ids: tuple[str, ...] | None
    """None: the global report; else one report per team."""
    breakdowns: tuple[str, ...]
    top_n: int
    lookback: int
    """How many completed periods back a missed report is still sent (1: the last only)."""
    grace: timedelta
    """How long after a period ends its report waits (for the last events to be written)."""
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GlobalBudget:
    """``litellm_settings.max_budget`` / ``budget_duration`` in nano-USD, and its zone."""

    max_nanos: int
    duration: str | None
    timezone: str


async def _totals(session: AsyncSession, start: datetime, end: datetime, team: str | None) -> Totals:
    if team is None:
        return (await spend_report(session, start=start, end=end)).totals
    report = await spend_report(session, start=start, end=end, group_by=("team",), scope_ids=[team])
    return report.totals


async def _grouped(
    session: AsyncSession, period: Period, dimension: str, team: str | None
) -> dict[str, Totals] | None:
    """Spend per value of ``dimension`` in ``period`` (None: not available for this scope)."""
    group: tuple[str, ...] = (dimension,)
    ids: list[str] | None = None
    if team is not None and dimension == "team":
        return None
    if team is not None and dimension == "model":
        group, ids = ("team", "model"), [team]
    elif team is not None and dimension == "key":
        ids = list(await session.scalars(select(VirtualKey.key_id).where(VirtualKey.team_id == team)))
        if not ids:
            return {}
    report = await spend_report(session, start=period.start, end=period.end, group_by=group, scope_ids=ids)
    out: dict[str, Totals] = defaultdict(Totals)
    for row in report.rows:
        out[row.group[dimension] or ""].add(row.totals)
    return dict(out)


async def _names(session: AsyncSession, dimension: str, ids: Sequence[str]) -> dict[str, str]:
    wanted = [i for i in ids if i]
    found: dict[str, str] = {}
    if dimension == "team" and wanted:
        rows = await session.execute(select(Team.team_id, Team.team_alias).where(Team.team_id.in_(wanted)))
        found = {tid: alias for tid, alias in rows.all() if alias}
    elif dimension == "key" and wanted:
        keys = await session.execute(
            select(VirtualKey.key_id, VirtualKey.key_alias, VirtualKey.key_name).where(
                VirtualKey.key_id.in_(wanted)
            )
        )
        found = {kid: alias or name or kid for kid, alias, name in keys.all()}
    return {i: found.get(i) or i or _NONE[dimension] for i in ids}


async def _breakdown(
    session: AsyncSession, period: Period, dimension: str, team: str | None, top_n: int
) -> Breakdown | None:
    grouped = await _grouped(session, period, dimension, team)
    if grouped is None:
        return None
    ranked = sorted(grouped.items(), key=lambda kv: (-kv[1].cost_nanos, -kv[1].requests, kv[0]))
    top, rest = ranked[:top_n], ranked[top_n:]
    names = await _names(session, dimension, [value for value, _ in top])
    lines = tuple(
        ReportLine(value, names[value], t.cost_nanos, t.requests, t.total_tokens) for value, t in top
    )
    return Breakdown(dimension, lines, len(rest), sum(t.cost_nanos for _, t in rest))


async def _budget_line(
    session: AsyncSession,
    who: tuple[str, str, str],
    duration: str | None,
    limit: int | None,
    tz: str,
    end: datetime,
) -> BudgetLine | None:
    """One budget's use by ``end`` (None: no limit, or a window without a calendar period)."""
    if limit is None:
        return None
    window = parse_window(duration or "lifetime")
    if not window.is_calendar or window.unit in ("second", "minute"):
        return None
    period = period_for(window, end - _TICK, tz)
    start = max(period.start, LIFETIME_START)
    team = None if who[0] == "global" else who[1]
    spent = await _totals(session, start, min(period.end, end), team)
    period_end = None if period.end >= LIFETIME_END else period.end
    return BudgetLine(
        who[0], who[1], who[2], duration or "lifetime", start, period_end, spent.cost_nanos, limit
    )


async def _team_budgets(
    session: AsyncSession, teams: dict[str, str], default_tz: str, end: datetime
) -> list[BudgetLine]:
    """The budgets of ``teams`` (team id → name) at ``end``, in that order."""
    repo = EntityRepository(session)
    windows = await repo.windows(_TEAM_WINDOWS, list(teams))
    out: list[BudgetLine] = []
    for team_id, name in teams.items():
        row = await session.get(Team, team_id)
        if row is None:
            continue
        profile = await session.get(Budget, row.budget_id) if row.budget_id else None
        spec = decode_limits(row, profile, windows[team_id])
        limit = spec.max_budget_nanos
        if (
            limit is not None
            and spec.temp_increase_nanos
            and (spec.temp_expiry is None or end <= spec.temp_expiry)
        ):
            limit += spec.temp_increase_nanos
        budgets = [(spec.budget_duration, limit, default_tz)]
        budgets += [(d, nanos, tz or default_tz) for d, nanos, tz in spec.windows]
        for duration, nanos, tz in budgets:
            line = await _budget_line(session, ("team", team_id, name), duration, nanos, tz, end)
            if line is not None:
                out.append(line)
    return out


async def build_report(
    session: AsyncSession,
    spec: ReportSpec,
    period: Period,
    team: str | None,
    *,
    default_tz: str,
    global_budget: GlobalBudget | None = None,
) -> SpendReport:
    """The report ``spec`` of ``period`` for ``team`` (None: the global one).

    Args:
        session: a session on the ledger's database (reads only).
        spec: the report.
        period: the completed period of ``spec.window`` in ``spec.timezone``.
        team: the team reported on, or None for the global report.
        default_tz: the zone of budgets that name none (``litellm_settings.timezone``).
        global_budget: the global budget, shown on the global report.
    """
    totals = await _totals(session, period.start, period.end, team)
    previous = period_for(spec.window, period.start - _TICK, spec.timezone)
    before = await _totals(session, previous.start, previous.end, team)
    breakdowns = []
    for dimension in spec.breakdowns:
        breakdown = await _breakdown(session, period, dimension, team, spec.top_n)
        if breakdown is not None:
            breakdowns.append(breakdown)
    budgets: list[BudgetLine] = []
    name: str | None = None
    labels: dict[str, str] = {}
    if team is not None:
        name = (await _names(session, "team", [team]))[team]
        labels = {"team_id": team, "team_alias": name}
        budgets = await _team_budgets(session, {team: name}, default_tz, period.end)
    else:
        if global_budget is not None:
            line = await _budget_line(
                session,
                ("global", "", "global"),
                global_budget.duration,
                global_budget.max_nanos,
                global_budget.timezone,
                period.end,
            )
            budgets += [line] if line is not None else []
        top_teams = next((b for b in breakdowns if b.dimension == "team"), None)
        if top_teams is not None:
            named = {line.id: line.name for line in top_teams.lines if line.id}
            budgets += await _team_budgets(session, named, default_tz, period.end)
    return SpendReport(
        name=spec.name,
        frequency=spec.frequency,
        timezone=spec.timezone,
        scope_type="global" if team is None else "team",
        scope_id=team or "",
        scope_name=name,
        period_start=period.start,
        period_end=period.end,
        spend_nanos=totals.cost_nanos,
        requests=totals.requests,
        failed_requests=totals.failed_requests,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        previous_spend_nanos=before.cost_nanos,
        previous_requests=before.requests,
        breakdowns=tuple(breakdowns),
        budgets=tuple(budgets),
        labels=labels,
    )
