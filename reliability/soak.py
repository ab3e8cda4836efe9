"""Bounded RSS soak: one gateway's memory must not grow with the number of requests it served.

Starts the mock provider and one gateway (SQLite ledger, in-process counters), makes a
virtual key with a budget (so every request is admitted, reserved and settled), warms up,
then sends ``--requests`` (default 200,000) chat completions with bounded concurrency at a
paced ``--rate`` (default 700 req/s), sampling the gateway's RSS (``VmRSS``) and its spend
recorder's queue after warm-up and after every tenth of the run.

Why paced: a leak is memory that grows with the requests served; a backlog is memory that
grows with how far the ledger writer is behind. Closed-loop load with 32 clients saturates
this 2-core machine (gateway, mock and load generator share it) at about 1,400 req/s, and
the recorder, starved of CPU, falls behind: its queue (journaled, so nothing is lost)
grew by about 2,500 events per 10,000 requests and RSS with it (+24.5 %), then drained in
about a second once the load stopped. ``--rate 0`` runs unpaced, to see that; the queue
depth is printed with every sample either way, so the two can be told apart.

Criterion: RSS at the end is less than ``--max-growth`` (default 10 %) above the RSS after
warm-up, every request is answered 200, and the ledger holds one row per 200.

    python reliability/soak.py [--requests 200000] [--warmup 20000] [--concurrency 32] [--rate 700]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Stack, arguments, create_key, finish, ledger_counts, run_load

__all__ = ["main"]


async def recorder_queue(url: str) -> int:
    """Events the gateway's spend recorder holds for the database (``/health/readiness``)."""
    async with httpx.AsyncClient() as client:
        answer = await client.get(url + "/health/readiness", timeout=10)
    return int(answer.json().get("recorder_queue", 0))


async def soak(args: argparse.Namespace) -> int:
    with Stack("soak") as stack:
        stack.mock()
        gateway = stack.gateway()
        key = await create_key(gateway.url, max_budget=1_000_000, key_alias="soak")
        rate = args.rate or None
        warm = await run_load(
            gateway.url, key, total=args.warmup, concurrency=args.concurrency, record=False, rate=rate
        )
        await asyncio.sleep(2)  # the recorder writes behind: let its queue drain before sampling
        baseline = gateway.rss_kb()
        samples = [(0, baseline)]
        queues = [await recorder_queue(gateway.url)]
        print(f"  warm-up done      RSS {baseline / 1024:7.1f} MiB  queue {queues[-1]}", file=sys.stderr)
        answered, statuses = warm.statuses[200], warm.statuses.copy()
        step = max(1, args.requests // 10)
        started = time.monotonic()
        done = 0
        while done < args.requests:
            n = min(step, args.requests - done)
            part = await run_load(
                gateway.url, key, total=n, concurrency=args.concurrency, record=False, rate=rate
            )
            done += n
            answered += part.statuses[200]
            statuses.update(part.statuses)
            samples.append((done, gateway.rss_kb()))
            queues.append(await recorder_queue(gateway.url))
            rss = samples[-1][1] / 1024
            print(f"  {done:>8} requests  RSS {rss:7.1f} MiB  queue {queues[-1]}", file=sys.stderr)
        elapsed = time.monotonic() - started
        await asyncio.sleep(2)
        end = gateway.rss_kb()
        samples.append((done, end))
        gateway.stop()
        rows = sum((await ledger_counts(stack.database_url())).values())
    growth = end / baseline - 1
    failures = []
    if growth >= args.max_growth:
        failures.append(f"RSS grew {growth:.1%} (limit {args.max_growth:.0%})")
    if answered != args.warmup + args.requests:
        failures.append(f"{args.warmup + args.requests - answered} requests not answered 200")
    if rows != answered:
        failures.append(f"ledger holds {rows} rows for {answered} answered requests")
    summary = {
        "requests_measured": args.requests,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "rate": args.rate or "unpaced",
        "recorder_queue_max_sampled": max(queues),
        "rps": round(args.requests / elapsed),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "ledger_rows": rows,
        "rss_after_warmup_mib": round(baseline / 1024, 1),
        "rss_end_mib": round(end / 1024, 1),
        "rss_growth_pct": round(growth * 100, 1),
        "rss_samples_mib": " ".join(f"{n}:{kb / 1024:.1f}" for n, kb in samples),
    }
    return finish("soak", summary, failures)


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--warmup", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=700.0, help="requests/s; 0: unpaced (saturating)")
    parser.add_argument("--max-growth", type=float, default=0.10, help="fraction, default 0.10")
    return asyncio.run(soak(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
