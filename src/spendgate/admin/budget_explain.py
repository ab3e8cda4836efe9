"""POST /budget/explain: every budget scope and window that applies to a key (and
optionally a customer and a model), with spend, reserved, limit, period and verdict.

The numbers come from the enforcement layer (:func:`spendgate.enforcement.explain`), through
the ``explainer`` the gateway passes in :class:`~spendgate.admin.AdminSettings`: it turns
an :class:`ExplainTarget` into the same budgets the admission would check, so the answer
agrees with the decision. Without an explainer the endpoint answers 501.

Who may ask, and what they see: exactly what the endpoints the answer reflects would show
them. proxy_admin and proxy_admin_viewer see every window of any key. Anyone else may ask
about a key ``/key/info`` shows them (its owner, the admins of its team), and sees the
windows of the key, its owner (``/user/info``), its team and their membership
(``/team/info``) and its organization if they are a member (``/organization/info``), each
with its per-model windows (``key_model``, ``user_model``, ``team_model``,
``organization_model``: the same rule as their owner); the global, customer and tag windows
(spend across tenants, or a customer's: ``/customer/info`` is for proxy admins), a
customer's per-model windows (``end_user_model``) included, are withheld, named in
``withheld``. Asking about a ``customer`` takes the right to read customers (403 naming
``customer`` otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spendgate.admin._http import Context
from spendgate.admin.key_rights import may_read_key
from spendgate.admin.roles import Caller
from spendgate.admin.schemas import BudgetExplain
from spendgate.admin.views import usd
from spendgate.core.scopes import model_owner
from spendgate.enforcement.explain import ScopeWindowState
from spendgate.entities.keys import find_key
from spendgate.http.errors import GatewayError, NotFound, PermissionDenied
from spendgate.stores.database.models import VirtualKey

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


def _readable(caller: Caller, vk: VirtualKey, st: ScopeWindowState, model: str | None) -> bool:
    """Whether the endpoint showing this scope would show it to ``caller`` (who may read
    the key ``vk``); ``model``: the model asked about (the per-model windows')."""
    if caller.reads_all:
        return True
    kind = st.scope.type
    scope_id = st.scope.id
    owner = model_owner(kind)
    if owner is not None:  # a per-model window (id ``<owner id>:<model>``): as its owner's
        kind = owner.name
        scope_id = scope_id.removesuffix(f":{model}")
    if kind == "key":
        return True
    if kind == "user":  # /user/info: themselves, or an admin of a team the user is in
        return scope_id == caller.user_id or caller.teams.get(vk.team_id or "") == "admin"
    if kind in ("team", "team_member"):  # /team/info: its members
        return caller.in_team(vk.team_id)
    if kind == "organization":  # /organization/info: its members
        return scope_id in caller.organization_ids
    return False  # global, end_user, tag: another tenant's spend, or everyone's


async def explain_budget(ctx: Context, body: BudgetExplain) -> dict[str, Any]:
    vk = await find_key(ctx.entities, body.key)
    if vk is None:
        raise NotFound("key not found", param="key")
    caller = ctx.caller
    if not may_read_key(caller, vk):
        raise PermissionDenied("you may not read this key's budgets")
    if body.customer is not None and not caller.reads_all:  # as /customer/info
        raise PermissionDenied(
            "only a proxy_admin or proxy_admin_viewer may read customers", param="customer"
        )
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
    states = await explainer(ctx.request, target)
    shown = [st for st in states if _readable(caller, vk, st, body.model)]
    windows = explain_out(shown)
    verdicts = {w["verdict"] for w in windows}
    return {
        "key": vk.token,
        "key_alias": vk.key_alias,
        "customer": target.customer,
        "model": body.model,
        "verdict": "exceeded" if "exceeded" in verdicts else "ok",
        "windows": windows,
        "withheld": sorted({str(st.scope) for st in states} - {str(st.scope) for st in shown}),
    }
