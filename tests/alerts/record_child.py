"""A separate process that records the same alert (``test_alert_store``): python
record_child.py <database url> <scope id> <tasks> <go file>. Waits for the go file, so
every process starts its inserts together; prints how many of its tasks created it."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from spendgate.alerts import Alert, record_alert
from spendgate.stores.database import create_engine


def crossing(scope_id: str) -> Alert:
    return Alert(
        kind="budget_crossed",
        scope_type="key",
        scope_id=scope_id,
        message="80% of the daily budget",
        window="1d",
        period_start=datetime(2026, 12, 5, tzinfo=UTC),
        period_end=datetime(2026, 12, 6, tzinfo=UTC),
        threshold=Decimal(80),
        spend_nanos=8_000_000_000,
        limit_nanos=10_000_000_000,
    )


async def main(url: str, scope_id: str, tasks: int, go: Path) -> None:
    engine = create_engine(url)
    while not go.exists():
        time.sleep(0.005)

    async def one() -> bool:
        async with AsyncSession(engine) as session, session.begin():
            return await record_alert(session, crossing(scope_id), ["slack", "webhook"], datetime.now(UTC))

    created = await asyncio.gather(*(one() for _ in range(tasks)))
    print(sum(created), flush=True)
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
