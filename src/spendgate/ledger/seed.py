"""A cold budget counter's spend, read from the ledger (the enforcer's seed loader).

When a counter has no value for the current period (a new instance, a flushed Redis), the
enforcer sets it from the ledger before it admits anything against it (DESIGN §1.6: set,
never add). Scopes kept in the rollups are read there
(:func:`~spendgate.ledger.rebuild.current_period_spend`); the others (a team member, a key's
or team's model group, a provider, a deployment) are summed from the spend events of the
period, which the ``occurred_at`` index bounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.periods import Period
from spendgate.core.scopes import SCOPE_TYPES
from spendgate.enforcement import BudgetLimit
from spendgate.ledger.rebuild import current_period_spend
from spendgate.stores.database.models import SpendEventRow

__all__ = ["period_spend"]


async def period_spend(
    engine: AsyncEngine,
    budget: BudgetLimit,
    period: Period,
    *,
    tz: str,
    served_by: Callable[[str], Sequence[str]],
) -> int:
    """Nano-USD spent in ``period`` by ``budget``'s scope.

    Args:
        engine: the ledger's database.
        budget: the limit whose counter is cold (its own timezone wins over ``tz``).
        period: the period to read.
        tz: the default timezone of calendar periods.
        served_by: a model group's deployment ids (``key_model`` / ``team_model`` spend is
            billed at the group that served, so a fallback's spend is its own group's).
    """
    scope = budget.scope
    rollup = SCOPE_TYPES[scope.type].rollup
    if rollup is not None:
        at = period.start if budget.window.is_calendar else period.end
        return await current_period_spend(engine, rollup, scope.id, budget.window, tz=budget.tz or tz, now=at)
    events = SpendEventRow.__table__.c
    if budget.window.unit == "lifetime":
        where = []
    elif budget.window.is_calendar:
        where = [events.occurred_at >= period.start, events.occurred_at < period.end]
    else:
        where = [events.occurred_at > period.start, events.occurred_at <= period.end]
    owner, _, rest = scope.id.partition(":")
    if scope.type == "team_member":
        where += [events.team_id == owner, events.user_id == rest]
    elif scope.type in ("key_model", "team_model"):
        column = events.api_key if scope.type == "key_model" else events.team_id
        served = list(served_by(rest))
        where += [column == owner]
        where += [events.deployment_id.in_(served)] if served else [events.requested_model == rest]
    elif scope.type == "provider":
        where += [events.provider == scope.id]
    elif scope.type == "deployment":
        where += [events.deployment_id == scope.id]
    else:
        return 0
    async with engine.connect() as conn:
        total = await conn.scalar(select(func.coalesce(func.sum(events.cost_nanos), 0)).where(*where))
    return int(total or 0)
