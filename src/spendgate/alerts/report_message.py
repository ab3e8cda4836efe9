"""How a spend report reads in Slack and in email (the webhook sends its JSON as is).

Slack gets a Block Kit message: a header (``Daily spend report: team Alpha, 2026-12-05``),
the one-line summary, the totals as fields (spend, requests, tokens, change against the
previous period), one section per breakdown (the top models, keys, teams, each with its
spend, share and requests), the budgets' use, a context line and the dashboard button.
Email gets the same from the ``report.txt.j2`` / ``report.html.j2`` templates (the HTML
autoescaped). Names come from callers (aliases), so every mrkdwn text is escaped as in
:mod:`spendgate.alerts.slack`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spendgate.alerts.delivery import Figure
from spendgate.alerts.spend_report import Breakdown, BudgetLine, SpendReport, percent_of
from spendgate.core.money import format_usd

__all__ = ["HEADINGS", "budget_text", "line_texts", "report_context", "report_figures", "report_slack_blocks"]

HEADINGS = {"model": "Top models", "key": "Top keys", "team": "Top teams"}
_SECTION_TEXT = 3000  # Slack's limit on a section's text


def report_figures(report: SpendReport) -> list[Figure]:
    """The totals, as every channel shows them."""
    failed = f" ({report.failed_requests} failed)" if report.failed_requests else ""
    return [
        Figure("Spend", format_usd(report.spend_nanos)),
        Figure("Requests", f"{report.requests}{failed}"),
        Figure("Tokens", f"{report.total_tokens} ({report.input_tokens} in, {report.output_tokens} out)"),
        Figure(f"vs previous {report.noun}", report.change_text),
        Figure("Period", f"{report.period_label} ({report.timezone})"),
    ]


def line_texts(report: SpendReport, breakdown: Breakdown) -> list[str]:
    """``1. gpt-4o: $1.25 (62.5%), 40 requests`` per line, then the rest."""
    out = []
    for rank, line in enumerate(breakdown.lines, start=1):
        share = percent_of(line.spend_nanos, report.spend_nanos)
        share_text = f" ({share:f}%)" if share is not None else ""
        out.append(
            f"{rank}. {line.name}: {format_usd(line.spend_nanos)}{share_text}, {line.requests} requests"
        )
    if breakdown.rest_count:
        out.append(f"… {breakdown.rest_count} more: {format_usd(breakdown.rest_spend_nanos)}")
    if not out:
        out.append("no spend")
    return out


def budget_text(budget: BudgetLine) -> str:
    """``team Alpha, 1mo budget: $40.00 of $100.00 (40.0%)``."""
    who = "global" if budget.scope_type == "global" else f"{budget.scope_type} {budget.name}"
    percent = budget.percent
    used = f" ({percent:f}%)" if percent is not None else ""
    limit = format_usd(budget.limit_nanos)
    return f"{who}, {budget.window} budget: {format_usd(budget.spend_nanos)} of {limit}{used}"


def report_context(report: SpendReport, alert_id: str, link: str | None) -> dict[str, Any]:
    """The templates' context (``report.txt.j2``, ``report.html.j2``)."""
    return {
        "title": report.title,
        "message": report.message,
        "figures": report_figures(report),
        "sections": [(HEADINGS[b.dimension], line_texts(report, b)) for b in report.breakdowns],
        "budgets": [budget_text(b) for b in report.budgets],
        "report": report,
        "alert_id": alert_id,
        "link": link,
    }


def report_slack_blocks(
    report: SpendReport, alert_id: str, escape: Callable[[str, int], str]
) -> list[dict[str, Any]]:
    """The Block Kit blocks of ``report``; ``escape(text, limit)`` is Slack's mrkdwn
    escaping (passed in by :mod:`spendgate.alerts.slack`, which dispatches here and adds
    the dashboard button)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": report.title[:150], "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": escape(report.message, _SECTION_TEXT)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{escape(f.label, 100)}*\n{escape(f.value, 1800)}"}
                for f in report_figures(report)
            ],
        },
    ]
    for breakdown in report.breakdowns:
        lines = "\n".join(line_texts(report, breakdown))
        text = f"*{HEADINGS[breakdown.dimension]}*\n{escape(lines, _SECTION_TEXT - 40)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if report.budgets:
        lines = "\n".join(budget_text(b) for b in report.budgets)
        text = f"*Budgets at the end of the {report.noun}*\n{escape(lines, _SECTION_TEXT - 60)}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    context = escape(f"report {report.name} · {report.frequency} · {alert_id}", 2000)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return blocks
