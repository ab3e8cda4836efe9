"""Budget alerts in words: the message, LiteLLM's payload labels, and who the scope is.

A crossing is detected on the request path knowing only the scope's type and id
(:mod:`spendgate.enforcement.crossings`); :func:`describe` runs later, off that path, and
fills in what a person reads: the key's alias, the team's alias, the user's email, the
entity's own recipients for the threshold (LiteLLM's ``metadata.max_budget_alert_emails``),
and the message with the name in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.alerts.model import Alert, threshold_text
from spendgate.core.money import format_usd
from spendgate.stores.database.models import EndCustomer, Organization, Team, User, VirtualKey

__all__ = ["alert_email_table", "budget_message", "describe", "scope_labels"]

_WINDOWS = {"1d": "daily", "1w": "weekly", "1mo": "monthly", "1h": "hourly", "year": "yearly"}
LIMITS_WINDOW = "limits:"
"""Prefix of the alert ``window`` of a key's ``budget_limits`` window (``limits:1mo``): it
counts apart from the key's main window of the same duration (only the main one counts
the key's spend adjustments), so its alerts are decided apart too."""


def scope_labels(scope_type: str, scope_id: str) -> dict[str, str]:
    """LiteLLM's ``WebhookEvent`` identity fields known from the scope alone."""
    if scope_type == "key":
        return {"token": scope_id}
    if scope_type == "user":
        return {"user_id": scope_id}
    if scope_type == "team":
        return {"team_id": scope_id}
    if scope_type == "organization":
        return {"organization_id": scope_id}
    if scope_type == "end_user":
        return {"customer_id": scope_id}
    if scope_type == "team_member":
        team, _, user = scope_id.partition(":")
        return {"team_id": team, "user_id": user}
    return {}


def _budget_name(window: str | None) -> str:
    if window is None:
        return "budget"
    if window.startswith(LIMITS_WINDOW):
        base = window.removeprefix(LIMITS_WINDOW)
        return f"{_WINDOWS.get(base, base)} budget limit"
    return f"{_WINDOWS.get(window, window)} budget"


def budget_message(alert: Alert) -> str:
    """One sentence: ``team ml-research has used 80% of its monthly budget ($80.00 of
    $100.00).``"""
    who = (
        "the gateway"
        if alert.scope_type == "global"
        else f"{alert.scope_type} {alert.scope_name or alert.scope_id}"
    )
    its = "its" if alert.scope_type != "global" else "the"
    budget = _budget_name(alert.window)
    spend = format_usd(alert.spend_nanos or 0)
    limit = None if alert.limit_nanos is None else format_usd(alert.limit_nanos)
    if alert.kind == "budget_crossed":
        pct = threshold_text(alert.threshold)
        return f"{who} has used {pct}% of {its} {budget} ({spend} of {limit})."
    if alert.kind == "soft_budget_crossed":
        soft = format_usd(alert.soft_limit_nanos or 0)
        return f"{who} has reached {its} soft {budget} ({spend}, soft limit {soft})."
    if alert.kind == "projected_exceed":
        projected = format_usd(alert.projected_spend_nanos or 0)
        when = alert.projected_exceeded_at
        at = f" around {when:%Y-%m-%d %H:%M} UTC" if when is not None else ""
        return f"At this pace {who} will exceed {its} {budget} of {limit}{at} (projected {projected})."
    if alert.kind == "budget_resolved":
        if alert.extra.get("reason") == "period_ended":
            return f"{who}: the {budget} period ended; spend starts again from {format_usd(0)}."
        return (
            f"{who} is back under {threshold_text(alert.threshold)}% of {its} {budget} ({spend} of {limit})."
        )
    return alert.message


async def describe(session: AsyncSession, alert: Alert) -> Alert:
    """``alert`` with the scope's display name, LiteLLM's labels and, for an entity with
    ``max_budget_alert_emails`` at the alert's threshold, those recipients in
    ``extra["alert_emails"]``; the message rewritten with the name."""
    labels = dict(alert.labels)
    name: str | None = alert.scope_name
    metadata: Mapping[str, Any] | None = None
    sid = alert.scope_id
    if alert.scope_type == "key":
        key = (await session.execute(select(VirtualKey).where(VirtualKey.key_id == sid))).scalar_one_or_none()
        if key is not None:
            name = key.key_alias or key.key_name or name
            metadata = key.metadata_
            labels.update(
                {
                    k: v
                    for k, v in (
                        ("key_alias", key.key_alias),
                        ("user_id", key.user_id),
                        ("team_id", key.team_id),
                        ("organization_id", key.organization_id),
                        ("customer_id", key.end_user_id),
                    )
                    if v
                }
            )
    elif alert.scope_type == "user":
        user = await session.get(User, sid)
        if user is not None:
            name = user.user_alias or user.user_email or name
            metadata = user.metadata_
            if user.user_email:
                labels["user_email"] = user.user_email
    elif alert.scope_type == "team":
        team = await session.get(Team, sid)
        if team is not None:
            name = team.team_alias or name
            metadata = team.metadata_
            if team.team_alias:
                labels["team_alias"] = team.team_alias
    elif alert.scope_type == "organization":
        org = await session.get(Organization, sid)
        if org is not None:
            name = org.organization_alias or name
            metadata = org.metadata_
    elif alert.scope_type == "end_user":
        customer = await session.get(EndCustomer, sid)
        if customer is not None:
            name = customer.alias or name
            metadata = customer.metadata_
    extra = dict(alert.extra)
    emails = _emails(metadata, alert.threshold)
    if emails:
        extra["alert_emails"] = emails
    described = replace(alert, scope_name=name, labels=labels, extra=extra)
    return replace(described, message=budget_message(described))


def alert_email_table(metadata: Mapping[str, Any] | None) -> dict[Decimal, list[str]]:
    """LiteLLM's ``metadata.max_budget_alert_emails`` (``{"50": [emails], "90": […]}``) as
    percent → addresses. Keys that are not a positive number are skipped (the management API
    refuses them on write); so are values that are not addresses."""
    table = metadata.get("max_budget_alert_emails") if isinstance(metadata, Mapping) else None
    if not isinstance(table, Mapping):
        return {}
    out: dict[Decimal, list[str]] = {}
    for name, emails in table.items():
        try:
            percent = Decimal(str(name))
        except ArithmeticError:
            continue
        if percent.is_finite() and percent > 0:
            listed = emails if isinstance(emails, list) else []
            out[percent] = [e for e in listed if isinstance(e, str) and "@" in e]
    return out


def _emails(metadata: Mapping[str, Any] | None, threshold: Decimal | None) -> list[str]:
    """The recipients ``metadata.max_budget_alert_emails`` names for ``threshold``."""
    if threshold is None:
        return []
    return alert_email_table(metadata).get(threshold, [])
