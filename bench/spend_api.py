"""Spend API latency over 10 million ledger events, and the export's time and memory (issue #13).

What it measures, honestly:

* **The data.** A PostgreSQL ledger (database ``bench13`` by default, kept between runs:
  generation is skipped when it already holds the events) with ``--events`` spend events
  over ``--days`` days, attributed to real entities created through the management API
  (10 organizations, 200 teams, 1,000 users, 2,000 keys; the keys' traffic is skewed, a
  few keys busy and most quiet), 40 models on 5 providers with 2 deployments each, 20 %
  of events with an end customer (500), 0-2 tags, 2 % errors, 15 % on endpoints other than
  chat (embeddings, responses, messages), 2.5 % from batches. The events are generated in
  SQL (``generate_series``) into the ledger writer's staging table, then written by the
  writer's own statement (``spendgate.ledger.repository``'s ``_PG_WRITE``: the insert and
  the rollups at both grains and every scope type), chunk by chunk in time order, as the
  recorder would have written them. After generation the script checks that every scope
  type's rollups add up to the events.
* **The requests.** A ``spendgate`` admin app (``build_admin_app`` with a master key)
  served by uvicorn in a subprocess; the client times each request end to end over HTTP
  (the JSON fully received). ``/global/spend/report?group_by=team`` and
  ``/team/daily/activity`` (one team, and all teams) for the 30 days, in UTC and
  Asia/Kolkata (which reads the 15-minute grain): ``--runs`` requests each after one
  warm-up; p50, p95, min and max.
* **The export.** ``GET /global/spend/export?format=focus`` (and ``csv``) over the first
  days holding ``--export-events`` events (3 of the 30 days for 1 M of 10 M), streamed to
  the client and counted. The server's peak RSS growth is its ``VmHWM`` after the export
  minus its ``VmRSS`` before it (the high-water mark reset through
  ``/proc/<pid>/clear_refs`` first), also sampled every 20 ms.

    .venv/bin/python bench/spend_api.py                      # generate once, then measure
    .venv/bin/python bench/spend_api.py --only report,activity --runs 20
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from spendgate.stores.database import create_engine, upgrade
from spendgate.stores.database.partitions import ensure_partitions

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench13"
MASTER = "sk-bench-master-key-0123456789"
START = date(2026, 10, 1)
ORGS, TEAMS, USERS, KEYS, MODELS, CUSTOMERS = 10, 200, 1000, 2000, 40, 500

# One chunk of events ``[:lo, :hi)`` of ``:n`` spread evenly over ``:span`` seconds from
# ``:t0``, into the writer's staging table. All values are bound parameters. The key is
# drawn skewed (index = KEYS * u²: the first keys are busy, most are quiet); each key uses
# 3 of the 40 models; cost items add up to cost_nanos (cached input ⊂ input).
STAGE = text(
    """
    INSERT INTO spend_events_incoming (
        event_id, occurred_at, started_at, status, unpriced, estimated, cost_nanos,
        cost_input_nanos, cost_cache_read_nanos, cost_output_nanos, catalogue_version, price_source,
        api_key, user_id, team_id, organization_id, end_user, request_tags, requested_model, model,
        resolved_model, deployment_id, provider, endpoint, batch_id, latency_ms, input_tokens,
        cache_read_tokens, output_tokens)
    SELECT 'chatcmpl-bench-' || i, at, at - make_interval(secs => latency / 1000.0),
           CASE WHEN i % 50 = 0 THEN 'error' ELSE 'success' END, false, false,
           (input - cached) * in_rate + cached * (in_rate / 4) + output * out_rate,
           (input - cached) * in_rate, cached * (in_rate / 4), output * out_rate, 'bench', 'catalogue',
           k.key_id, k.user_id, k.team_id, k.organization_id,
           CASE WHEN i % 5 = 0 THEN 'cust-' || lpad(((i * 7) % :customers)::text, 3, '0') END,
           CASE i % 4 WHEN 0 THEN NULL
                      WHEN 1 THEN jsonb_build_array('tag-' || (k.n % 20))
                      WHEN 2 THEN jsonb_build_array('tag-' || (k.n % 20),
                                                    CASE WHEN k.n % 3 = 0 THEN 'dev' ELSE 'prod' END)
                      ELSE NULL END,
           'model-' || m, 'model-' || m, 'model-' || m, 'dep-' || m || '-' || (i % 2), 'provider-' || (m % 5),
           CASE i % 20 WHEN 0 THEN '/v1/embeddings' WHEN 1 THEN '/v1/responses' WHEN 2 THEN '/v1/messages'
                       ELSE '/v1/chat/completions' END,
           CASE WHEN i % 40 = 7 THEN 'batch_sgbench' || (i % 97) END, latency, input, cached, output
    FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint) - 1) AS i
    CROSS JOIN LATERAL (SELECT ((i * 2654435761) % 4294967296) / 4294967296.0 AS u) AS h
    JOIN bench_keys AS k ON k.n = floor(:keys * h.u * h.u)::int
    CROSS JOIN LATERAL (
        SELECT (k.n * 7 + (i % 3) * 11) % :models AS m,
               CAST(:t0 AS timestamptz) + make_interval(secs => (i * CAST(:span AS float8)) / :n) AS at,
               300 + (i * 13) % 2000 AS latency,
               200 + (i * 31) % 3000 AS input,
               50 + (i * 17) % 800 AS output
    ) AS a
    CROSS JOIN LATERAL (
        SELECT CASE WHEN i % 4 = 0 THEN a.input / 2 ELSE 0 END AS cached,
               100 + a.m * 10 AS in_rate, 400 + a.m * 40 AS out_rate
    ) AS c
    """
)


# -- the data ------------------------------------------------------------------------------


async def ensure_database(url: str) -> None:
    parsed = make_url(url)
    admin = await asyncpg.connect(
        parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    )
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", parsed.database):
            await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


async def create_entities(url: str) -> None:
    """Organizations, teams, users and keys through the management API (in process)."""
    from spendgate.admin.app import build_admin_app

    engine = create_engine(url)
    app = build_admin_app(engine, MASTER)
    headers = {"authorization": f"Bearer {MASTER}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://admin", headers=headers, timeout=60
    ) as client:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = await client.post(path, json=body)
            if r.status_code != 200:
                raise SystemExit(f"{path} {body}: {r.status_code} {r.text}")
            out: dict[str, Any] = r.json()
            return out

        for o in range(ORGS):
            await post(
                "/organization/new", {"organization_id": f"org-{o:02d}", "organization_alias": f"Org {o}"}
            )
        for t in range(TEAMS):
            await post(
                "/team/new",
                {
                    "team_id": f"team-{t:03d}",
                    "team_alias": f"Team {t}",
                    "organization_id": f"org-{t % ORGS:02d}",
                },
            )
        for u in range(USERS):
            await post(
                "/user/new",
                {"user_id": f"user-{u:04d}", "teams": [f"team-{u % TEAMS:03d}"], "auto_create_key": False},
            )
        for k in range(KEYS):
            u = k % USERS
            await post(
                "/key/generate",
                {"key_alias": f"key-{k:04d}", "user_id": f"user-{u:04d}", "team_id": f"team-{u % TEAMS:03d}"},
            )
    await engine.dispose()


async def generate(url: str, events: int, days: int, chunk: int) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    async with engine.begin() as conn:
        await conn.execute(
            text("CREATE TABLE IF NOT EXISTS bench_meta (events bigint, days int, done boolean)")
        )
        row = (await conn.execute(text("SELECT events, days, done FROM bench_meta"))).first()
    if row is not None and row.done and (row.events, row.days) == (events, days):
        print(f"data: {events:,} events over {days} days already there (bench_meta); generation skipped")
        await engine.dispose()
        return
    if row is not None:
        raise SystemExit("bench database holds other or unfinished data: drop it and run again")
    t_start = time.perf_counter()
    await create_entities(url)
    print(f"entities created through the API in {time.perf_counter() - t_start:.0f} s", flush=True)
    t0 = datetime.combine(START, datetime.min.time(), UTC)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE bench_keys AS SELECT (row_number() OVER (ORDER BY key_alias) - 1)::int AS n, "
                "key_id, v.user_id, v.team_id, t.organization_id FROM virtual_keys v "
                "JOIN teams t USING (team_id) WHERE key_alias LIKE 'key-%'"
            )
        )
        await conn.execute(text("CREATE UNIQUE INDEX ON bench_keys (n)"))
        months = set()
        d = t0
        while d < t0 + timedelta(days=days):
            months.add((d.year, d.month))
            d += timedelta(days=1)
        await ensure_partitions(conn, months)
        await conn.execute(text("INSERT INTO bench_meta VALUES (:e, :d, false)"), {"e": events, "d": days})

    from spendgate.ledger.repository import _CREATE_STAGING, _PG_SETTINGS, _PG_WRITE

    params = {
        "n": events,
        "span": days * 86400,
        "t0": t0,
        "keys": KEYS,
        "models": MODELS,
        "customers": CUSTOMERS,
    }
    t_events = time.perf_counter()
    bounds = [*range(0, events, chunk), events]
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for lo, hi in itertools.pairwise(bounds):
        queue.put_nowait((lo, hi))
    written = 0

    async def worker() -> None:
        nonlocal written
        while not queue.empty():
            lo, hi = queue.get_nowait()
            async with engine.begin() as conn:
                await conn.execute(_PG_SETTINGS)
                await conn.execute(text(_CREATE_STAGING))
                await conn.execute(STAGE, {**params, "lo": lo, "hi": hi})
                inserted = (await conn.execute(text(_PG_WRITE))).scalar_one()
                assert inserted == hi - lo, (lo, hi, inserted)
            written += hi - lo
            rate = written / (time.perf_counter() - t_events)
            print(f"  {written:,} events ({rate:,.0f}/s)", flush=True)

    # Two writers on interleaved chunks of time: like the recorder's two batches in flight.
    await asyncio.gather(worker(), worker())
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE bench_meta SET done = true"))
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE spend_rollups"))
        await conn.execute(text("ANALYZE spend_events"))
    print(f"data generated in {time.perf_counter() - t_start:.0f} s", flush=True)
    await engine.dispose()


async def check_data(url: str) -> dict[str, int]:
    """Every scope type's rollups (both grains) add up to the events: requests and cost."""
    engine = create_engine(url)
    async with engine.connect() as conn:
        ev = (await conn.execute(text("SELECT count(*), sum(cost_nanos)::bigint FROM spend_events"))).one()
        rows = (
            await conn.execute(
                text(
                    "SELECT grain, scope_type, count(*), sum(requests)::bigint, sum(cost_nanos)::bigint "
                    "FROM spend_rollups GROUP BY 1, 2 ORDER BY 1, 2"
                )
            )
        ).all()
        keys = (await conn.execute(text("SELECT count(*) FROM virtual_keys"))).scalar_one()
    await engine.dispose()
    sizes = {"events": ev[0], "keys": keys, "rollup_rows": sum(r[2] for r in rows)}
    for grain, scope_type, count, requests, cost in rows:
        sizes[f"{scope_type}@{grain}"] = count
        if scope_type != "tag":  # an event counts once under each of its tags
            assert (requests, cost) == (ev[0], ev[1]), (grain, scope_type, requests, cost, ev)
    return sizes


# -- the server ----------------------------------------------------------------------------


def serve(url: str, port: int) -> None:
    import uvicorn

    from spendgate.admin.app import build_admin_app

    engine = create_engine(url)
    app = build_admin_app(engine, MASTER)
    # As `spendgate serve` does after start-up (cli/serve.py): what start-up loaded is
    # moved out of the collector's reach, so a full collection does not walk it.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(url: str, src: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """The admin app in a subprocess; ``src``: serve the ``spendgate`` of another source tree
    (e.g. a proposed change), put first on its ``PYTHONPATH``."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": src} if src else None
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--database-url", url, "--port", str(port)], env=env
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{base}/health/liveliness", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the admin server did not start")


# -- measurements --------------------------------------------------------------------------


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def time_requests(
    client: httpx.Client, path: str, params: dict[str, Any], runs: int, slow_runs: int
) -> dict[str, Any]:
    """``runs`` requests after a warm-up; ``slow_runs`` when the warm-up took over 2 s."""
    t = time.perf_counter()
    r = client.get(path, params=params)  # warm-up
    if time.perf_counter() - t > 2:
        runs = slow_runs
    if r.status_code != 200:
        raise SystemExit(f"{path} {params}: {r.status_code} {r.text[:500]}")
    loads = [load()]
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(path, params=params)
        samples.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text[:500]
    loads.append(load())
    samples.sort()
    return {
        "p50": statistics.median(samples),
        "p95": samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))],
        "min": samples[0],
        "max": samples[-1],
        "bytes": len(r.content),
        "load": "–".join(loads),
        "runs": runs,
    }


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def measure_export(client: httpx.Client, pid: int, params: dict[str, Any]) -> dict[str, Any]:
    before = status_kb(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    peak_sampled = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_sampled
        while not done.is_set():
            peak_sampled = max(peak_sampled, status_kb(pid, "VmRSS"))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t = time.perf_counter()
    size = lines = 0
    with client.stream("GET", "/global/spend/export", params=params) as r:
        assert r.status_code == 200, r.read()[:500]
        for chunk in r.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
    elapsed = time.perf_counter() - t
    done.set()
    sampler.join()
    hwm = status_kb(pid, "VmHWM")
    return {
        "seconds": elapsed,
        "mb": size / 1e6,
        "rows": lines - 1,
        "rss_before_mb": before / 1024,
        "growth_mb": (hwm - before) / 1024,
        "sampled_growth_mb": (peak_sampled - before) / 1024,
        "load": load(),
    }


def export_line(res: dict[str, Any]) -> str:
    return (
        f"{res['seconds']:6.1f} s  {res['rows']:>10,} rows  {res['mb']:8.1f} MB  "
        f"server RSS {res['rss_before_mb']:.0f} MB before, peak growth {res['growth_mb']:.1f} MB "
        f"(sampled {res['sampled_growth_mb']:.1f})  [{res['load']}]"
    )


async def export_days(url: str, wanted: int, days: int) -> tuple[int, int]:
    """The number of whole UTC days from the start holding at least ``wanted`` events, and
    the events in them."""
    engine = create_engine(url)
    t0 = datetime.combine(START, datetime.min.time(), UTC)
    async with engine.connect() as conn:
        for n in range(1, days + 1):
            count = (
                await conn.execute(
                    text("SELECT count(*) FROM spend_events WHERE occurred_at >= :a AND occurred_at < :b"),
                    {"a": t0, "b": t0 + timedelta(days=n)},
                )
            ).scalar_one()
            if count >= wanted:
                break
    await engine.dispose()
    return n, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("SPENDGATE_BENCH_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--chunk", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--slow-runs", type=int, default=3, help="runs of a request whose warm-up took > 2 s")
    parser.add_argument("--export-events", type=int, default=1_000_000)
    parser.add_argument("--only", default="report,activity,export")
    parser.add_argument(
        "--src",
        action="append",
        default=[],
        help="serve the spendgate of this src dir (repeat: one after the other; default: the installed one)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.database_url, args.port)
        return
    only = set(args.only.split(","))
    asyncio.run(ensure_database(args.database_url))
    asyncio.run(generate(args.database_url, args.events, args.days, args.chunk))
    sizes = asyncio.run(check_data(args.database_url))
    print("data:", ", ".join(f"{k} {v:,}" for k, v in sizes.items()), flush=True)

    first, last = START, START + timedelta(days=args.days - 1)
    span = {"start_date": first.isoformat(), "end_date": last.isoformat()}
    cases: list[tuple[str, str, dict[str, Any]]] = []
    for tz in ("UTC", "Asia/Kolkata"):
        if "report" in only:
            cases.append((f"/global/spend/report?group_by=team {tz}", "/global/spend/report",
                          {**span, "group_by": "team", "timezone": tz}))  # fmt: skip
        if "activity" in only:
            cases.append((f"/team/daily/activity team_ids=team-007 {tz}", "/team/daily/activity",
                          {**span, "team_ids": "team-007", "timezone": tz, "page_size": 31}))  # fmt: skip
            cases.append((f"/team/daily/activity all teams {tz}", "/team/daily/activity",
                          {**span, "timezone": tz, "page_size": 31}))  # fmt: skip
    for i, src in enumerate(args.src or [None]):
        proc, base = start_server(args.database_url, src)
        try:
            client = httpx.Client(base_url=base, headers={"authorization": f"Bearer {MASTER}"}, timeout=600)
            print(
                f"\nserver: {src or 'installed spendgate'}; n requests each after 1 warm-up, ms "
                "(load average before–after)"
            )
            for name, path, params in cases:
                res = time_requests(client, path, params, args.runs, args.slow_runs)
                print(
                    f"{name:<52} p50 {res['p50']:6.0f}  p95 {res['p95']:6.0f}  "
                    f"min {res['min']:6.0f}  max {res['max']:6.0f}  n {res['runs']:2}  "
                    f"{res['bytes']:>10,} B  [{res['load']}]",
                    flush=True,
                )
            if "export" in only and i == 0:
                n, count = asyncio.run(export_days(args.database_url, args.export_events, args.days))
                last_day = (first + timedelta(days=n - 1)).isoformat()
                ex_span = {"start_date": first.isoformat(), "end_date": last_day}
                print(f"\nexport of {count:,} events ({n} UTC days)")
                for fmt in ("focus", "csv"):
                    res = measure_export(client, proc.pid, {**ex_span, "format": fmt, "timezone": "UTC"})
                    print(f"format={fmt:<6} {export_line(res)}", flush=True)
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
