"""Spend over time, read from the grouped CSV export (the rollups, exact nano-USD).

The export endpoint already aggregates the rollups per period and group in any IANA zone
and applies the role rule, so the dashboard's chart, its table and the overview read it
rather than asking for anything of their own.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from spendgate.ui.api import ApiClient

__all__ = ["GROUPS", "OTHER", "SpendRows", "read_spend"]

OTHER = "\x00other"
"""The group of the export's ``other_groups`` rows (no real group id holds a NUL)."""

GROUPS = {
    "team": "Team",
    "key": "Key",
    "user": "User",
    "customer": "Customer",
    "tag": "Tag",
    "model": "Model",
    "provider": "Provider",
    "endpoint": "Endpoint",
    "mode": "Batch or real-time",
}
"""The group-by choices, as the export names its dimensions."""
_MODE_NAMES = {"batch": "Batch", "realtime": "Real-time"}
"""How the ``mode`` dimension's values are shown."""


@dataclass(slots=True)
class SpendRows:
    """The export's rows: nano-USD per (period start, group), and totals per group."""

    periods: list[str] = field(default_factory=list)
    nanos: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    """group → period start → nano-USD."""
    totals: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    """group → {cost_nanos, requests, unpriced_requests, input_tokens, output_tokens,
    cache_hits, saved_nanos}."""
    saved: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """period start → nano-USD the response cache saved (its hits cost nothing)."""
    other_groups: int = 0
    """With ``top``: how many groups the :data:`OTHER` group sums."""
    names: dict[str, str] = field(default_factory=dict)
    """group → display name: a key's alias (the export's ``key_alias`` column)."""

    def total(self, metric: str = "cost_nanos") -> int:
        return sum(t[metric] for t in self.totals.values())

    def by_period(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for series in self.nanos.values():
            for period, nanos in series.items():
                out[period] += nanos
        return out


_METRICS = (
    "cost_nanos",
    "requests",
    "unpriced_requests",
    "input_tokens",
    "output_tokens",
    "cache_hits",
    "saved_nanos",
)


async def read_spend(
    api: ApiClient,
    *,
    group_by: str,
    granularity: str,
    start: date,
    end: date,
    timezone: str,
    top: int | None = None,
) -> SpendRows:
    """The grouped export for ``[start, end]`` (local days), parsed; with ``top``, its top
    groups by cost and the rest summed per period as :data:`OTHER` (in SQL: a month of
    2,000 keys is 31 × (top + 1) rows, not 60,000)."""
    text = await api.text(
        "/global/spend/export",
        {
            "format": "csv",
            "group_by": group_by,
            "granularity": granularity,
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "timezone": timezone,
            "top": top,
        },
    )
    rows = SpendRows()
    seen: dict[str, None] = {}
    for line in csv.DictReader(io.StringIO(text)):
        period = line["period_start"]
        folded = int(line.get("other_groups") or 0)
        group = OTHER if folded else _group_name(line.get(group_by))
        rows.other_groups = max(rows.other_groups, folded)
        if line.get("key_alias"):
            rows.names[group] = _group_name(line["key_alias"])
        elif group_by == "mode" and group in _MODE_NAMES:
            rows.names[group] = _MODE_NAMES[group]
        seen[period] = None
        cost = int(line["cost_nanos"])
        rows.nanos[group][period] = rows.nanos[group].get(period, 0) + cost
        rows.saved[period] += int(line["saved_nanos"] or 0)
        for metric in _METRICS:
            rows.totals[group][metric] += int(line[metric] or 0)
    rows.periods = sorted(seen)
    return rows


def _group_name(value: Any) -> str:
    text = str(value or "")
    if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@", "\t", "\r"):
        return text[1:]  # the export's guard against spreadsheet formulas
    return text or "(none)"
