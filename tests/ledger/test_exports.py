"""Exports (spendgate.ledger.exports, .focus): CSV and FOCUS 1.2 rows equal the ledger to
the nano-USD, in UTC, Europe/Berlin and Asia/Kolkata, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from export_helpers import DAYS, ZONES, fill, in_range, known_events, read_csv
from spendgate.core.money import from_nano, usd_text
from spendgate.core.periods import get_timezone
from spendgate.core.usage.model import Usage
from spendgate.ledger.exports import CSV_COLUMNS, GROUPED_METRICS, day_range, export_chunks
from spendgate.ledger.focus import FOCUS_COLUMNS, REQUIRED, meter_quantities
from spendgate.stores.database.models import SpendEventRow

UTC_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


async def collect(engine: AsyncEngine, **kw: Any) -> bytes:
    return b"".join([chunk async for chunk in export_chunks(engine, **kw)])


async def ledger_total(engine: AsyncEngine, start: datetime, end: datetime) -> int:
    """The raw ledger's total for the range, by SQL over spend_events."""
    async with engine.connect() as conn:
        total = await conn.scalar(
            select(func.coalesce(func.sum(SpendEventRow.cost_nanos), 0)).where(
                SpendEventRow.occurred_at >= start, SpendEventRow.occurred_at < end
            )
        )
    return int(total or 0)


def check_focus_row(row: dict[str, str]) -> None:
    """Every column present and of its type; required ones set; Consumed* both or neither."""
    assert list(row) == list(FOCUS_COLUMNS)
    for name, kind in FOCUS_COLUMNS.items():
        value = row[name]
        if name in REQUIRED:
            assert value != "", name
        if value == "":
            continue
        if kind == "decimal":
            assert DECIMAL.match(value), (name, value)
        elif kind == "integer":
            int(value)
        elif kind == "datetime":
            assert UTC_Z.match(value), (name, value)
        elif kind == "boolean":
            assert value in ("true", "false"), (name, value)
        elif kind == "json":
            assert isinstance(orjson.loads(value), dict), (name, value)
    assert (row["ConsumedQuantity"] == "") == (row["ConsumedUnit"] == "")
    assert row["ChargeCategory"] == "Usage"
    assert row["ServiceCategory"] == "AI and Machine Learning"
    assert row["BillingCurrency"] == "USD"
    assert row["PricingCategory"] in ("Standard", "Dynamic", "Committed", "Other")
    assert row["ChargePeriodStart"] < row["ChargePeriodEnd"]
    assert row["BilledCost"] == row["EffectiveCost"]
    assert Decimal(row["BilledCost"]) == from_nano(int(row["x_BilledCostNanos"]))


@pytest.mark.parametrize("tz", ZONES)
async def test_csv_per_event_equals_the_ledger(engine: AsyncEngine, tz: str) -> None:
    known = known_events()
    await fill(engine, known)
    start, end = day_range(*DAYS, tz)
    header, rows = read_csv(await collect(engine, fmt="csv", start=start, end=end, tz=tz))
    assert tuple(header) == CSV_COLUMNS
    expected = in_range(known, start, end)
    assert 0 < len(expected) < len(known)
    assert [r["request_id"] for r in rows] == [k.event.event_id for k in expected]  # time order
    for row, k in zip(rows, expected, strict=True):
        assert int(row["cost_nanos"]) == k.event.cost_nanos
        assert row["spend"] == usd_text(k.event.cost_nanos)
        assert int(row["prompt_tokens"]) == k.event.usage.input_tokens
        assert int(row["completion_tokens"]) == k.event.usage.output_tokens
        assert sum(Decimal(row[f"cost_{i}"]) for i in k.event.cost_items) == from_nano(k.event.cost_nanos)
        end_time = datetime.fromisoformat(row["endTime"])
        assert end_time == k.event.occurred_at
        assert end_time.utcoffset() == k.event.occurred_at.astimezone(get_timezone(tz)).utcoffset()
        assert orjson.loads(row["request_tags"]) == list(k.event.tags)
        assert row["unpriced"] == ("true" if k.event.unpriced else "false")
    total = sum(int(r["cost_nanos"]) for r in rows)
    assert total == await ledger_total(engine, start, end) == sum(k.event.cost_nanos for k in expected)
    assert sum(Decimal(r["spend"]) for r in rows) == from_nano(total)


@pytest.mark.parametrize("tz", ZONES)
async def test_focus_rows_are_valid_and_billed_cost_is_the_ledger_total(engine: AsyncEngine, tz: str) -> None:
    known = known_events()
    await fill(engine, known)
    start, end = day_range(*DAYS, tz)
    header, rows = read_csv(await collect(engine, fmt="focus", start=start, end=end, tz=tz))
    assert tuple(header) == tuple(FOCUS_COLUMNS)
    for row in rows:
        check_focus_row(row)
        assert row["BillingPeriodStart"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert row["BillingPeriodEnd"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    expected = in_range(known, start, end)
    billed = sum(Decimal(r["BilledCost"]) for r in rows)
    assert billed == from_nano(await ledger_total(engine, start, end))
    assert billed == from_nano(sum(k.event.cost_nanos for k in expected))

    by_event: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_event[row["x_RequestId"]].append(row)
    zone = get_timezone(tz)
    for k in expected:
        e = k.event
        mine = by_event.get(e.event_id, [])
        if e.usage.is_empty and not e.cost_nanos:
            assert mine == []  # nothing used, nothing billed: no FOCUS row
            continue
        assert sum(int(r["x_BilledCostNanos"]) for r in mine) == e.cost_nanos
        # ListCost: the standard-tier catalogue price of the usage, before discount.
        assert sum(Decimal(r["ListCost"]) for r in mine) == k.list_subtotal
        for r in mine:
            assert r["x_Unpriced"] == ("true" if e.unpriced else "false")
            assert r["SkuId"].endswith("/" + r["SkuId"].rsplit("/", 1)[1])
            assert r["SubAccountId"] == (e.team_id or "")
            assert r["ServiceProviderName"] == (e.provider or "unknown")
            assert r["ResourceId"] == e.deployment_id
            assert orjson.loads(r["Tags"]) == dict.fromkeys(e.tags, "")
            local_hour = e.occurred_at.astimezone(zone).replace(minute=0, second=0, microsecond=0)
            assert r["ChargePeriodStart"] == local_hour.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if e.service_tier == "batch":
            assert sum(Decimal(r["ListCost"]) for r in mine) > from_nano(e.cost_nanos)
            assert {r["x_ServiceTier"] for r in mine} == {"batch"}
        meters = {r["SkuMeter"]: r for r in mine}
        if not e.unpriced:
            assert int(meters["Output Tokens"]["ConsumedQuantity"]) == e.usage.output_tokens - (
                e.usage.reasoning_tokens
            )
            if e.usage.cache_read_tokens:
                cached = meters["Cached Input Tokens"]
                assert int(cached["ConsumedQuantity"]) == e.usage.cache_read_tokens
                assert cached["ConsumedUnit"] == "Tokens"
        else:
            assert all(r["BilledCost"] == "0" and r["ListCost"] == "0" for r in mine)
            assert int(meters["Input Tokens"]["ConsumedQuantity"]) == e.usage.input_tokens - (
                e.usage.cache_read_tokens
            )


async def test_focus_list_cost_of_a_standard_event_is_its_own_item_cost(engine: AsyncEngine) -> None:
    """No discount, standard tier: ListCost == BilledCost meter by meter (the catalogue priced it)."""
    known = [
        k
        for k in known_events()
        if k.event.cost_items
        and set(k.event.cost_items) <= {"input", "cache_read", "cache_write", "output", "reasoning"}
        and not k.event.service_tier
    ]
    await fill(engine, known)
    _, rows = read_csv(
        await collect(
            engine,
            fmt="focus",
            start=known[0].event.occurred_at,
            end=known[-1].event.occurred_at + timedelta(seconds=1),
        )
    )
    assert rows
    for row in rows:
        assert Decimal(row["ListCost"]) == Decimal(row["BilledCost"]), row
        if row["ConsumedQuantity"]:
            assert Decimal(row["ListUnitPrice"]) * Decimal(row["ConsumedQuantity"]) == Decimal(
                row["ListCost"]
            )


@pytest.mark.parametrize("tz", ZONES)
async def test_grouped_csv_equals_the_ledger_per_local_day_and_team(engine: AsyncEngine, tz: str) -> None:
    known = known_events()
    await fill(engine, known)
    start, end = day_range(date(2026, 11, 17), date(2026, 11, 19), tz)
    header, rows = read_csv(
        await collect(engine, fmt="csv", start=start, end=end, tz=tz, group_by=("team",), granularity="day")
    )
    assert header == ["period_start", "period_end", "team", *GROUPED_METRICS]
    zone = get_timezone(tz)
    expected: dict[tuple[str, str], int] = defaultdict(int)
    requests: dict[tuple[str, str], int] = defaultdict(int)
    for k in in_range(known, start, end):
        day = k.event.occurred_at.astimezone(zone).date().isoformat()
        expected[(day, k.event.team_id or "")] += k.event.cost_nanos
        requests[(day, k.event.team_id or "")] += 1
    got = {(r["period_start"][:10], r["team"]): int(r["cost_nanos"]) for r in rows}
    assert got == dict(expected)
    assert {(r["period_start"][:10], r["team"]): int(r["requests"]) for r in rows} == dict(requests)
    for r in rows:
        assert r["spend"] == usd_text(int(r["cost_nanos"]))
        assert datetime.fromisoformat(r["period_start"]).utcoffset() is not None
    assert sum(got.values()) == await ledger_total(engine, start, end)


async def test_export_is_streamed_in_chunks(engine: AsyncEngine) -> None:
    known = known_events(1300)
    await fill(engine, known)
    start, end = known[0].event.occurred_at, known[-1].event.occurred_at + timedelta(seconds=1)
    chunks = [c async for c in export_chunks(engine, fmt="csv", start=start, end=end)]
    assert len(chunks) >= 3  # the header, then a chunk per 500 rows
    assert sum(c.count(b"\n") for c in chunks) == 1301


async def test_bad_arguments_are_refused_before_any_read(engine: AsyncEngine) -> None:
    at = datetime(2026, 11, 18, tzinfo=UTC)
    for kw, message in (
        ({"fmt": "xml"}, "unknown format"),
        ({"fmt": "focus", "group_by": ("team",)}, "group_by applies to CSV"),
        ({"fmt": "csv", "group_by": ("team", "user")}, "cannot group by both"),
        ({"fmt": "csv", "group_by": ("colour",)}, "unknown dimension"),
        ({"fmt": "csv", "tz": "Mars/Olympus"}, "unknown IANA timezone"),
    ):
        with pytest.raises(ValueError, match=message):
            export_chunks(engine, start=at, end=at + timedelta(days=1), **kw)
    with pytest.raises(ValueError, match="before"):
        day_range(date(2026, 11, 2), date(2026, 11, 1), "UTC")


def test_day_range_is_local_days() -> None:
    start, end = day_range(date(2026, 3, 29), date(2026, 3, 29), "Europe/Berlin")  # DST starts
    assert (start, end - start) == (datetime(2026, 3, 28, 23, tzinfo=UTC), timedelta(hours=23))
    start, end = day_range(date(2026, 11, 18), date(2026, 11, 19), "Asia/Kolkata")
    assert (start, end) == (
        datetime(2026, 11, 17, 18, 30, tzinfo=UTC),
        datetime(2026, 11, 19, 18, 30, tzinfo=UTC),
    )


def test_meter_quantities_carve_tokens_like_the_calculator() -> None:
    usage = Usage(
        input_tokens=1000,
        cache_read_tokens=300,
        cache_write_tokens=100,
        input_audio_tokens=50,
        output_tokens=500,
        reasoning_tokens=120,
        output_audio_tokens=30,
        web_search_requests=2,
    )
    assert meter_quantities(usage) == {
        "input": (550, "Tokens"),
        "cache_read": (300, "Tokens"),
        "cache_write": (100, "Tokens"),
        "input_audio": (50, "Tokens"),
        "output": (350, "Tokens"),
        "reasoning": (120, "Tokens"),
        "output_audio": (30, "Tokens"),
        "tools": (2, "Requests"),
    }
    assert meter_quantities(Usage(images=3)) == {"output_image": (3, "Images")}
    assert meter_quantities(Usage(input_characters=40, queries=0)) == {"input": (40, "Characters")}
    assert meter_quantities(Usage()) == {}


async def test_text_that_starts_like_a_formula_is_exported_as_text(engine: AsyncEngine) -> None:
    """An end customer's id or a team that reads like a spreadsheet formula gets a leading
    quote in CSV and FOCUS (a spreadsheet shows it, never runs it); numbers stay numbers."""
    hostile = ['=HYPERLINK("http://evil.example","x")', "+1+2", "@SUM(A1)", "\tcmd", "-2+3", "-1.5"]
    known = [
        replace(k, event=replace(k.event, end_user=end_user))
        for k, end_user in zip(known_events(n=6, teams=("-team", None)), hostile, strict=True)
    ]
    await fill(engine, known)
    start, end = day_range(date(2026, 11, 1), date(2026, 11, 30), "UTC")
    _, rows = read_csv(await collect(engine, fmt="csv", start=start, end=end, tz="UTC"))
    by_id = {r["request_id"]: r for r in rows}
    for k, end_user in zip(known, hostile, strict=True):
        row = by_id[k.event.event_id]
        assert row["end_user"] == (end_user if end_user == "-1.5" else "'" + end_user)
        assert row["team_id"] in ("'-team", "")
        assert row["spend"] == usd_text(k.event.cost_nanos)
    _, focus = read_csv(await collect(engine, fmt="focus", start=start, end=end, tz="UTC"))
    cells = [v for r in focus for v in r.values()]
    assert "'-team" in cells
    assert not [v for v in cells if v[:1] in ("=", "+", "@", "\t")]
    assert all(re.fullmatch(r"-[0-9]+(\.[0-9]+)?", v) for v in cells if v.startswith("-"))
