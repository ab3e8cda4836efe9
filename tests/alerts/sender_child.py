"""A sender process killed between claim and send (``test_alert_retries``): python
sender_child.py <database url> <webhook url>. Claims what is due, prints CLAIMED and hangs
before sending, until the test kills it with SIGKILL."""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.ext.asyncio import async_sessionmaker

from spendgate.alerts import AlertRouting, AlertSender, SenderPolicy
from spendgate.alerts.settings import WebhookChannel
from spendgate.alerts.store import Claim
from spendgate.stores.database import create_engine


async def main(url: str, hook: str) -> None:
    engine = create_engine(url)
    channel = WebhookChannel("webhook", hook, b"child-secret-0123456789")
    route = AlertRouting(
        channels={"webhook": channel}, routes={"webhook": None}, policy=SenderPolicy(lease_seconds=60)
    )

    async def hang(claim: Claim) -> None:
        print("CLAIMED", claim.outbox_id, flush=True)
        await asyncio.Event().wait()

    await AlertSender(async_sessionmaker(engine), route, instance_id="child", before_send=hang).run_once()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
