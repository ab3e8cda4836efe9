"""Known spend events for the export tests (ledger, admin API, CLI), and CSV readers.

Events are priced by the real catalogue (standard and batch tiers, a 5 % discount, an
unpriced model, a call that used nothing), spread over 2026-11-17 18:00 … 2026-11-19 06:00
UTC so local days in Europe/Berlin and Asia/Kolkata cut through them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.pricing.calculator import Adjustment
from spendgate.core.usage.model import Usage
from spendgate.costs import price
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.repository import LedgerRepository

ZONES = ("UTC", "Europe/Berlin", "Asia/Kolkata")
T0 = datetime(2026, 11, 17, 18, 0, tzinfo=UTC)
DAYS = (date(2026, 11, 18), date(2026, 11, 18))
"""The export range of most tests: the local day 2026-11-18 (cut differently per zone)."""


@dataclass(frozen=True)
class Known:
    event: SpendEvent
    list_subtotal: Decimal
    """The standard-tier catalogue price of the usage, before discount (0 if unpriced)."""


def known_events(
    n: int = 60,
    keys: tuple[str, ...] = ("kid-a", "kid-b"),
    users: tuple[str, ...] = ("user-a", "user-b"),
    teams: tuple[str | None, ...] = ("team-a", "team-b", None),
) -> list[Known]:
    out: list[Known] = []
    for i in range(n):
        model = ("gpt-4o-mini", "claude-sonnet-4-5", "my-custom-model")[i % 3] if i % 7 else "gpt-4o-mini"
        tier = "batch" if i % 4 == 1 and model != "my-custom-model" else None
        usage = Usage(
            input_tokens=1000 + 37 * i,
            cache_read_tokens=(100 + i) if i % 2 else 0,
            cache_write_tokens=50 if model == "claude-sonnet-4-5" and i % 5 == 0 else 0,
            output_tokens=300 + 11 * i,
            reasoning_tokens=20 if i % 6 == 0 else 0,
        )
        if i % 13 == 12:
            usage = Usage()  # an error that used nothing
        adjustment = Adjustment(discount=Decimal("0.05")) if i % 5 == 3 else None
        at = T0 + timedelta(minutes=37 * i + 1)
        b = price(model, usage, service_tier=tier, at=at, adjustment=adjustment)
        standard = price(model, usage, at=at)
        key = keys[i % len(keys)]
        event = SpendEvent.from_breakdown(
            b,
            event_id=f"exp-{i:03d}",
            occurred_at=at,
            status="error" if usage.is_empty else "success",
            started_at=at - timedelta(milliseconds=900),
            api_key=key,
            user_id=users[i % len(users)],
            team_id=teams[i % len(teams)],
            organization_id="org-1",
            end_user=f"cust-{i % 3}",
            tags=("prod", f"t{i % 2}") if i % 3 else (),
            requested_model=model,
            deployment_id=f"dep-{model}",
            endpoint="/v1/chat/completions",
            latency_ms=900,
        )
        out.append(Known(event, standard.subtotal if standard.priced else Decimal(0)))
    return out


async def fill(engine: AsyncEngine, known: Iterable[Known]) -> None:
    result = await LedgerRepository(engine).write_batch([k.event for k in known])
    assert result.duplicates == 0


def read_csv(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(data.decode()))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def in_range(known: Iterable[Known], start: datetime, end: datetime) -> list[Known]:
    return [k for k in known if start <= k.event.occurred_at < end]
