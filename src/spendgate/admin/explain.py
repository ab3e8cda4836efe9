"""POST /budget/explain: every budget scope and window that applies to a key (and
optionally a customer and a model), with spend, reserved, limit, period and verdict.

The numbers come from the enforcement layer (:func:`spendgate.enforcement.explain`), through
the ``explainer`` the gateway passes in :class:`~spendgate.admin.AdminSettings`: it turns
an :class:`ExplainTarget` into the same budgets the admission would check, so the answer
agrees with the decision. Without an explainer the endpoint answers 501.

Who may ask: proxy_admin and proxy_admin_viewer for any key; a key's owner and the admins
of its team for that key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spendgate.admin._http import Context
from spendgate.admin.convert import usd
from spendgate.admin.keys import find_key
from spendgate.admin.schemas import BudgetExplain
from spendgate.enforcement.explain import ScopeWindowState
from spendgate.gateway.errors import GatewayError, NotFound, PermissionDenied

__all__ = ["ExplainTarget", "NotAvailable", "explain_budget", "explain_out"]


class NotAvailable(GatewayError):
    status = 501
    type = "not_implemented"
    code = "explain_unavailable"


@dataclass(frozen=True, slots=True)
class ExplainTarget:
    """The scopes of one key, as stored, plus the customer and model asked about.

    ``customer`` is the customer the key is bound to when it is bound (a bound key's
    requests are always billed to it), else the one asked about.
    """

    key_id: str
    """The key's stable id (what its budgets and counters are named by)."""
    key_alias: str | None
    user_id: str | None
    team_id: str | None
    organization_id: str | None
    customer: str | None
    tags: tuple[str, ...]
    model: str | None


def explain_out(states: Sequence[ScopeWindowState]) -> list[dict[str, Any]]:
    out = []
    for st in states:
        remaining = None if st.limit_nanos is None else st.limit_nanos - st.spend_nanos - st.reserved_nanos
        out.append(
            {
                "scope": str(st.scope),
                "scope_type": st.scope.type,
                "scope_id": st.scope.id,
                "window": st.window,
                "spend": usd(st.spend_nanos),
                "reserved": usd(st.reserved_nanos),
                "limit": usd(st.limit_nanos),
                "soft_budget": usd(st.soft_nanos),
                "remaining": usd(remaining) if remaining is None or remaining >= 0 else usd(0),
                "period_start": st.period_start,
                "period_end": st.period_end,
                "verdict": st.verdict,
            }
        )
    return out


async def explain_budget(ctx: Context, body: BudgetExplain) -> dict[str, Any]:
    vk = await find_key(ctx.session, body.key)
    if vk is None:
        raise NotFound("key not found", param="key")
    caller = ctx.caller
    mine = caller.user_id is not None and vk.user_id == caller.user_id
    if not (caller.reads_all or mine or (vk.team_id is not None and caller.teams.get(vk.team_id) == "admin")):
        raise PermissionDenied("you may not read this key's budgets")
    explainer = ctx.settings.explainer
    if explainer is None:
        raise NotAvailable("budget explain is not available: the gateway did not configure enforcement")
    target = ExplainTarget(
        key_id=vk.key_id,
        key_alias=vk.key_alias,
        user_id=vk.user_id,
        team_id=vk.team_id,
        organization_id=vk.organization_id,
        customer=vk.end_user_id or body.customer,
        tags=tuple(vk.tags or ()),
        model=body.model,
    )
    windows = explain_out(await explainer(ctx.request, target))
    verdicts = {w["verdict"] for w in windows}
    return {
        "key": vk.token,
        "key_alias": vk.key_alias,
        "customer": target.customer,
        "model": body.model,
        "verdict": "exceeded" if "exceeded" in verdicts else "ok",
        "windows": windows,
    }
