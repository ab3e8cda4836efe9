"""SIGKILL under load: no acknowledged call is lost from the ledger, none is counted twice.

For each database (SQLite, PostgreSQL): start the mock provider and a gateway, make a
budgeted virtual key, run closed-loop load, and ``kill -9`` the gateway ``--kills`` times at
random moments, restarting it each time on the same database and journal (the restart
replays the journal). After the load stops and the gateway stops gracefully, every request
id acknowledged with a 200 (``x-spendgate-request-id``) must be in ``spend_events``
exactly once, and no event id may appear twice.

    python reliability/sigkill.py [--database sqlite,postgres] [--kills 3] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    Stack,
    arguments,
    check_ledger,
    create_key,
    finish,
    ledger_counts,
    postgres_database,
    run_load,
)

__all__ = ["main"]


@contextlib.contextmanager
def _database(kind: str, stack: Stack) -> Iterator[str]:
    if kind == "postgres":
        with postgres_database("spendgate_sigkill") as url:
            yield url
    else:
        yield stack.database_url()


async def _one(
    kind: str, args: argparse.Namespace, rng: random.Random
) -> tuple[dict[str, object], list[str]]:
    with Stack(f"sigkill-{kind}") as stack, _database(kind, stack) as url:
        stack.mock()
        gateway = stack.gateway(url)
        key = await create_key(gateway.url, max_budget=1_000_000, key_alias=f"sigkill-{kind}")
        stop = asyncio.Event()
        load = asyncio.create_task(run_load(gateway.url, key, concurrency=args.concurrency, stop=stop))
        kills = 0
        for _ in range(args.kills):
            await asyncio.sleep(rng.uniform(args.min_gap, args.max_gap))
            await asyncio.to_thread(gateway.kill)
            kills += 1
            await asyncio.sleep(0.5)
            await asyncio.to_thread(gateway.start)
        await asyncio.sleep(args.max_gap)
        stop.set()
        result = await load
        code = await asyncio.to_thread(gateway.stop)
        counts = await ledger_counts(url)
    ledger = check_ledger(result.acknowledged(), counts)
    failures = []
    if ledger["missing"]:
        failures.append(f"{kind}: {ledger['missing']} acknowledged requests missing from the ledger")
    if ledger["doubled"]:
        failures.append(f"{kind}: {ledger['doubled']} event ids recorded more than once")
    if not ledger["acknowledged"]:
        failures.append(f"{kind}: no request was acknowledged")
    unexpected = {s: n for s, n in result.statuses.items() if s not in (0, 200)}
    if unexpected:
        failures.append(f"{kind}: unexpected statuses {unexpected}")
    return {"kills": kills, "graceful_stop_exit": code, **result.summary(), **ledger}, failures


async def sigkill(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    summary: dict[str, object] = {"concurrency": args.concurrency, "seed": args.seed}
    failures: list[str] = []
    for kind in args.database.split(","):
        summary[kind], failed = await _one(kind.strip(), args, rng)
        failures += failed
    return finish("sigkill", summary, failures)


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--database", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--min-gap", type=float, default=2.0, help="seconds of load before a kill (least)")
    parser.add_argument("--max-gap", type=float, default=5.0, help="seconds of load before a kill (most)")
    parser.add_argument("--seed", type=int, default=10)
    return asyncio.run(sigkill(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
