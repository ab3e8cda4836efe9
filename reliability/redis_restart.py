"""Redis stopped and restarted under load: the declared failure policy, then recovery at once.

Starts a private ``redis-server`` on a free port (never the shared one), the mock provider
and a gateway with ``redis_url`` pointing at it, makes a budgeted virtual key and runs
closed-loop load. Redis is stopped for ``--outage`` seconds, then started again (empty: its
counters are re-seeded from the ledger). Every request is classified by when it was sent.

Criteria (the documented policy: budgets fail closed while the counters are unreachable):

* before the stop: every request 200;
* while Redis is down: only 503 (budgeted requests are refused), none admitted unchecked
  (a 200 answered before Redis was started again), none 500, none hanging (every answer
  within ``--max-latency`` seconds); a request that waited for Redis to return may be 200;
* after Redis answers PING again: every request 200; the time to the first 200 is reported;
* then, with the load paused, a quick stop and start of Redis (every pooled connection
  is now stale, none was used to notice): every request of a further ``--after`` seconds
  of load is 200 (stale connections are reconnected, not failed for a while);
* the ledger holds every acknowledged request id exactly once.

    python reliability/redis_restart.py [--outage 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    Outcome,
    Stack,
    arguments,
    check_ledger,
    create_key,
    finish,
    free_port,
    ledger_counts,
    run_load,
)

__all__ = ["main"]


class PrivateRedis:
    """A ``redis-server`` of our own on ``port``: no persistence, so a restart starts empty."""

    def __init__(self, stack: Stack, port: int) -> None:
        self.stack, self.port = stack, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> tuple[float, float]:
        """Start it and wait for PING; returns when it was launched and when it answered."""
        launched = time.monotonic()
        binary = shutil.which("redis-server") or "redis-server"
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = self.stack.process(f"redis-{self.port}", args)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    if client.ping():
                        return launched, time.monotonic()
                except redis.RedisError:
                    time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING")

    def stop(self) -> float:
        """Stop it (SIGTERM, then wait); returns when it was gone (monotonic seconds)."""
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return time.monotonic()


def _phase(outcomes: list[Outcome], start: float, end: float) -> list[Outcome]:
    return [o for o in outcomes if start <= o.started < end]


async def redis_restart(args: argparse.Namespace) -> int:
    with Stack("redis-restart") as stack:
        server = PrivateRedis(stack, free_port())
        await asyncio.to_thread(server.start)
        stack.mock()
        gateway = stack.gateway(settings={"redis_url": f"redis://127.0.0.1:{server.port}/0"})
        key = await create_key(gateway.url, max_budget=1_000_000, key_alias="redis-restart")
        options = {"concurrency": args.concurrency, "request_timeout": args.max_latency * 2}
        stop = asyncio.Event()
        load = asyncio.create_task(run_load(gateway.url, key, stop=stop, **options))
        t_begin = time.monotonic()
        await asyncio.sleep(args.before)
        t_stop_sent = time.monotonic()
        t_down = await asyncio.to_thread(server.stop)
        await asyncio.sleep(args.outage)
        t_launched, t_ready = await asyncio.to_thread(server.start)
        await asyncio.sleep(args.after)
        stop.set()
        result = await load
        # A quick restart while the gateway is idle: every pooled connection is now stale,
        # and the first requests after it must not pay for that.
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        idle = await run_load(gateway.url, key, duration=args.after, **options)
        gateway.stop()
        counts = await ledger_counts(stack.database_url())

    outcomes = result.outcomes
    before = _phase(outcomes, t_begin, t_stop_sent)
    outage = _phase(outcomes, t_down, t_launched)  # sent while no redis-server ran
    after = _phase(outcomes, t_ready, float("inf"))
    failed_after = [o for o in after if o.status != 200]
    first_ok = min((o.started + o.latency_ms / 1000 for o in after if o.status == 200), default=None)
    # A 200 sent during the outage is fine if it waited for Redis to come back (a bounded
    # retry); answered before redis-server was even launched, it was admitted unchecked.
    unchecked = [o for o in outage if o.status == 200 and o.started + o.latency_ms / 1000 < t_launched]
    outage_statuses: dict[int, int] = {}
    for o in outage:
        outage_statuses[o.status] = outage_statuses.get(o.status, 0) + 1
    ledger = check_ledger(result.acknowledged() + idle.acknowledged(), counts)
    slow = [o for o in outcomes + idle.outcomes if o.latency_ms > args.max_latency * 1000 or o.status == 0]

    failures = []
    if any(o.status != 200 for o in before):
        failures.append(f"{sum(o.status != 200 for o in before)} failures before Redis stopped")
    if set(outage_statuses) - {200, 503}:
        failures.append(f"while Redis was down: statuses {outage_statuses} (only 503 is documented)")
    if unchecked:
        failures.append(f"{len(unchecked)} budgeted requests admitted while Redis was down (fail-open)")
    if failed_after:
        failures.append(
            f"{len(failed_after)} requests failed after Redis answered again "
            f"(statuses {sorted({o.status for o in failed_after})}, the last sent "
            f"{max(o.started for o in failed_after) - t_ready:.1f} s after it was back)"
        )
    idle_failed = [o for o in idle.outcomes if o.status != 200]
    if idle_failed:
        failures.append(
            f"{len(idle_failed)} requests failed after a quick restart while idle "
            f"(statuses {sorted({o.status for o in idle_failed})}: stale pooled connections)"
        )
    if slow:
        failures.append(f"{len(slow)} requests unanswered or slower than {args.max_latency} s")
    if ledger["missing"] or ledger["doubled"]:
        failures.append(f"ledger: {ledger['missing']} acknowledged missing, {ledger['doubled']} doubled")
    summary = {
        "concurrency": args.concurrency,
        "outage_s": round(t_launched - t_down, 1),
        "restart_to_ping_s": round(t_ready - t_launched, 3),
        **result.summary(),
        "before_stop": {"requests": len(before), "non_200": sum(o.status != 200 for o in before)},
        "while_down": {
            "requests": len(outage),
            "statuses": outage_statuses,
            "answered_200_before_restart": len(unchecked),
        },
        "after_restart": {
            "requests": len(after),
            "non_200": len(failed_after),
            "first_200_after_s": None if first_ok is None else round(first_ok - t_ready, 3),
        },
        "quick_restart_while_idle": {"requests": idle.sent, "non_200": len(idle_failed)},
        **ledger,
    }
    return finish("redis_restart", summary, failures)


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--before", type=float, default=4.0, help="seconds of load before the stop")
    parser.add_argument("--outage", type=float, default=5.0, help="seconds Redis stays down")
    parser.add_argument("--after", type=float, default=5.0, help="seconds of load after the restart")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-latency", type=float, default=15.0, help="seconds: slower counts as a hang")
    return asyncio.run(redis_restart(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
