"""A PostgreSQL cut and a PostgreSQL blackhole under load with virtual keys.

Starts the mock provider and a gateway whose PostgreSQL is reached through a fault-injecting
TCP proxy (``tests/netfaults.py``), makes ``--keys`` budgeted virtual keys and runs
closed-loop load on all of them (``--concurrency`` clients in all). Then, while the load
runs: the proxy **cuts** the database for ``--cut`` seconds (connections reset, new ones
refused), passes again for ``--recover`` seconds, **blackholes** it for ``--blackhole``
seconds (connections accepted, nothing answered), and passes again. Throughout each outage
a probe sends a key the gateway has never seen, once a second.

Criteria (docs/gateway.md, "Database and Redis outages"):

* no 5xx other than the documented 503s (and the virtual keys' calls all succeed: their
  cached look-ups are honoured past the TTL, ``key_cache_ttl_seconds`` is 2 s here);
* no request waits longer than the configured wait (``database_lookup_timeout_seconds``)
  plus ``--slack`` seconds; none goes unanswered;
* the never-seen key gets 503 ``database_unavailable`` in the OpenAI error shape;
* after recovery and a graceful stop, every acknowledged request id is in the ledger
  exactly once (the recorder journals while the database is away and replays).

    python reliability/db_outage.py [--cut 30] [--blackhole 30] [--concurrency 32] [--keys 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent / "tests"))

from _harness import (
    CHAT,
    LoadResult,
    Outcome,
    Stack,
    check_ledger,
    create_key,
    finish,
    ledger_counts,
    postgres_database,
    run_load,
)

from netfaults import FaultProxy

__all__ = ["main"]

DOCUMENTED_503 = {"database_unavailable", "limits_unavailable"}


async def _probe(url: str, stop: asyncio.Event, seen: list[dict[str, Any]]) -> None:
    """Once a second, a key never seen: what status, error code and wait it gets."""
    n = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            n += 1
            t0 = time.monotonic()
            entry: dict[str, Any] = {"status": 0, "code": None, "shape": False}
            try:
                async with session.post(
                    f"{url}/v1/chat/completions",
                    json=CHAT,
                    headers={"authorization": f"Bearer sk-never-seen-{n}"},
                    timeout=aiohttp.ClientTimeout(total=60),
                ) as resp:
                    body = await resp.json(content_type=None)
                    error = body.get("error") if isinstance(body, dict) else None
                    entry["status"] = resp.status
                    if isinstance(error, dict):
                        entry["code"] = error.get("code")
                        entry["shape"] = set(error) == {"message", "type", "param", "code"}
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                entry["code"] = type(exc).__name__
            entry["ended"] = time.monotonic()
            entry["latency_s"] = entry["ended"] - t0
            seen.append(entry)
            await asyncio.sleep(max(0.0, 1.0 - entry["latency_s"]))


async def _outage(
    proxy: FaultProxy, mode: str, seconds: float, url: str
) -> tuple[float, float, list[dict[str, Any]]]:
    stop = asyncio.Event()
    seen: list[dict[str, Any]] = []
    await asyncio.to_thread(proxy.set_mode, mode)  # type: ignore[arg-type]
    began = time.monotonic()
    probe = asyncio.create_task(_probe(url, stop, seen))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.to_thread(proxy.restore)
    ended = time.monotonic()
    await probe
    # A probe answered after the database came back is not an outage answer (it gets 401).
    return began, ended, [e for e in seen if e["ended"] < ended]


def _phase(outcomes: list[Outcome], start: float, end: float) -> dict[str, Any]:
    inside = [o for o in outcomes if start <= o.started < end]
    return {
        "requests": len(inside),
        "statuses": dict(Counter(o.status for o in inside)),
        "max_latency_ms": round(max((o.latency_ms for o in inside), default=0.0)),
    }


def _probes(seen: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "requests": len(seen),
        "codes": dict(Counter(f"{e['status']} {e['code']}" for e in seen)),
        "max_latency_ms": round(1000 * max((e["latency_s"] for e in seen), default=0.0)),
    }


async def db_outage(args: argparse.Namespace, direct: str) -> int:
    wait = args.wait
    with Stack("db-outage") as stack:
        target = make_url(direct)
        with FaultProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
            stack.mock()
            gateway = stack.gateway(
                target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
                settings={
                    "key_cache_ttl_seconds": 2,
                    "database_lookup_timeout_seconds": wait,
                    "upstream_http_client": "aiohttp",
                },
            )
            keys = [
                await create_key(gateway.url, max_budget=1_000_000, key_alias=f"db-outage-{i}")
                for i in range(args.keys)
            ]
            stop = asyncio.Event()
            per_key = max(1, args.concurrency // len(keys))
            loads = [
                asyncio.create_task(
                    run_load(gateway.url, k, concurrency=per_key, stop=stop, request_timeout=60)
                )
                for k in keys
            ]
            t0 = time.monotonic()
            await asyncio.sleep(args.before)
            cut = await _outage(proxy, "cut", args.cut, gateway.url)
            await asyncio.sleep(args.recover)
            hole = await _outage(proxy, "blackhole", args.blackhole, gateway.url)
            await asyncio.sleep(args.recover)
            stop.set()
            results: list[LoadResult] = list(await asyncio.gather(*loads))
            code = await asyncio.to_thread(gateway.stop)
            counts = await ledger_counts(direct)

    outcomes = [o for r in results for o in r.outcomes]
    acknowledged = [rid for r in results for rid in r.acknowledged()]
    ledger = check_ledger(acknowledged, counts)
    statuses = Counter(o.status for o in outcomes)
    bound_ms = (wait + args.slack) * 1000
    hangs = [o for o in outcomes if o.status == 0 or o.latency_ms > bound_ms]
    probes = cut[2] + hole[2]
    bad_probes = [
        e
        for e in probes
        if e["status"] != 503
        or e["code"] not in DOCUMENTED_503
        or not e["shape"]
        or e["latency_s"] * 1000 > bound_ms
    ]
    server_errors = sum(n for s, n in statuses.items() if s >= 500 and s != 503)
    key_503 = statuses.get(503, 0)

    failures = []
    if server_errors:
        failures.append(f"{server_errors} 5xx other than 503 (statuses {dict(statuses)})")
    if key_503 or set(statuses) - {200, 503}:
        failures.append(f"virtual-key calls not all 200: {dict(statuses)}")
    if hangs:
        failures.append(f"{len(hangs)} requests unanswered or slower than {wait + args.slack} s")
    if bad_probes:
        failures.append(
            f"{len(bad_probes)} never-seen-key probes not a timely documented 503: {bad_probes[:3]}"
        )
    if ledger["missing"] or ledger["doubled"] or ledger["ledger_rows"] != ledger["acknowledged"]:
        failures.append(f"ledger: {ledger}")
    summary = {
        "keys": args.keys,
        "concurrency": per_key * len(keys),
        "database_lookup_timeout_seconds": wait,
        "hang_bound_s": wait + args.slack,
        "sent": sum(r.sent for r in results),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "max_latency_ms": round(max((o.latency_ms for o in outcomes), default=0.0)),
        "before": _phase(outcomes, t0, cut[0]),
        "cut": {"seconds": round(cut[1] - cut[0], 1), **_phase(outcomes, cut[0], cut[1])},
        "cut_probe_never_seen_key": _probes(cut[2]),
        "blackhole": {"seconds": round(hole[1] - hole[0], 1), **_phase(outcomes, hole[0], hole[1])},
        "blackhole_probe_never_seen_key": _probes(hole[2]),
        "after": _phase(outcomes, hole[1], float("inf")),
        "five_xx_other_than_503": server_errors,
        "hangs": len(hangs),
        "graceful_stop_exit": code,
        **ledger,
    }
    return finish("db_outage", summary, failures)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cut", type=float, default=30.0, help="seconds the database is cut")
    parser.add_argument("--blackhole", type=float, default=30.0, help="seconds the database is blackholed")
    parser.add_argument("--before", type=float, default=5.0, help="seconds of load before the cut")
    parser.add_argument("--recover", type=float, default=10.0, help="seconds of load after each outage")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--wait", type=float, default=5.0, help="database_lookup_timeout_seconds")
    parser.add_argument("--slack", type=float, default=2.0, help="seconds past the wait that still count")
    args = parser.parse_args()
    with postgres_database("spendgate_dboutage") as direct:  # a fresh database, dropped after
        return asyncio.run(db_outage(args, direct))


if __name__ == "__main__":
    sys.exit(main())
