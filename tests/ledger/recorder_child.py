"""Run a recorder, acknowledge N events, print ``ACK N``, then wait to be killed.

Usage: python recorder_child.py DATABASE_URL JOURNAL_DIR N PREFIX FLUSH_INTERVAL
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.ledger.recorder import Recorder
from spendgate.stores.database import create_engine


async def main(url: str, journal: str, n: int, prefix: str, flush_interval: float) -> None:
    engine = create_engine(url)
    recorder = Recorder(engine, journal, flush_interval=flush_interval, batch_size=100)
    await recorder.start()
    t0 = datetime(2026, 11, 18, 12, tzinfo=UTC)
    for i in range(n):
        recorder.record(
            SpendEvent(
                event_id=f"{prefix}-{i}",
                occurred_at=t0 + timedelta(milliseconds=i),
                cost_nanos=1_000,
                usage=Usage(input_tokens=10, output_tokens=1),
                team_id="team-a",
                model="m",
                provider="p",
            )
        )
        if i % 97 == 0:
            await asyncio.sleep(0.002)  # let the writer flush some batches mid-stream
    print(f"ACK {n}", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])))
