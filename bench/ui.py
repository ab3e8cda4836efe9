"""The dashboard's pages over a 10-million-event ledger: each page's time, p50 and p95 (issue #18).

What it measures, honestly:

* **The data.** The PostgreSQL database of ``bench/spend_api.py`` (``bench13``: 10 M spend
  events over 30 days from 2026-10-01, 10 organizations, 200 teams, 1,000 users, 2,000
  keys, 40 models, 500 end customers); run that script first, it builds the data once.
* **The server.** The whole gateway (``spendgate.server.build_app``: gateway, management
  API and dashboard) on that database with a master key, served by uvicorn in a
  subprocess, exactly as ``spendgate serve`` runs it. Its clock for the Overview is set to
  2026-10-30 12:00 UTC (the data's last day), so "today / this week / this month" read data;
  nothing else is changed.
* **The requests.** Signed in with the master key (the session cookie), each page is
  requested ``--runs`` times after one warm-up; the time is the whole response received
  over loopback HTTP (the page's own in-process API calls included), i.e. the server's
  time plus well under a millisecond of client. p50, p95, min, max, the HTML's size and the
  1-minute load average before and after.

* **Budgets** (``--budgeted-keys``): bench13's keys have none. With the flag, every one of
  the 2,000 keys gets three limited windows for the run (``max_budget`` per month, and
  ``budget_limits`` of a day and of 7 days, amounts varying by key), the management API's
  clock stands at the Overview's too (so the windows' current periods hold the data's
  spend), and both are taken away again at the end: the Overview then ranks every key's
  windows (``/budget/tightest``).

    .venv/bin/python bench/spend_api.py --only none     # once: builds bench13 (~8+ minutes)
    .venv/bin/python bench/ui.py                        # then: every page, 20 runs each
    .venv/bin/python bench/ui.py --only spend --runs 50
    .venv/bin/python bench/ui.py --only overview,budgets,keys --budgeted-keys
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from spend_api import DEFAULT_URL, MASTER, free_port, time_requests

NOW = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)
SPAN = {"start_date": "2026-10-01", "end_date": "2026-10-30"}
WEEK = {"start_date": "2026-10-24", "end_date": "2026-10-30"}


def _spend(
    name: str, group_by: str, span: dict[str, str] = SPAN, **extra: str
) -> tuple[str, str, str, dict[str, Any]]:
    return ("spend", f"spend {name}, by {group_by}", "/ui/spend", {**span, "group_by": group_by, **extra})


def pages(busy_key: str, cursor_20: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(group, name, path, query) of every page measured."""
    kolkata = {"timezone": "Asia/Kolkata"}
    return [
        ("overview", "overview (UTC)", "/ui/overview", {}),
        ("overview", "overview (Asia/Kolkata)", "/ui/overview", kolkata),
        ("overview", "overview: nearest their limit (after the page)", "/ui/overview/tightest", {}),
        _spend("30 days per day", "team"),
        _spend("30 days per day", "key"),
        _spend("30 days per day", "model"),
        _spend("30 days per day", "customer"),
        _spend("30 days per day", "endpoint"),
        _spend("30 days per day", "mode"),
        _spend("30 days per day, Kolkata", "mode", **kolkata),
        _spend("30 days per day, Kolkata", "key", **kolkata),
        _spend("30 days per day, Kolkata", "customer", **kolkata),
        _spend("30 days per day, Kolkata", "team", **kolkata),
        _spend("30 days per day, Kolkata", "user", **kolkata),
        _spend("30 days per day, Kolkata", "tag", **kolkata),
        _spend("30 days per day, Kolkata", "model", **kolkata),
        _spend("30 days per day, Kolkata", "provider", **kolkata),
        _spend("30 days per day, Kolkata", "endpoint", **kolkata),
        _spend("30 days per week, Kolkata", "key", granularity="week", **kolkata),
        _spend("30 days per month, Kolkata", "customer", granularity="month", **kolkata),
        _spend("30 days per day, Kathmandu", "key", timezone="Asia/Kathmandu"),
        _spend("30 days per day, Berlin", "key", timezone="Europe/Berlin"),
        _spend("30 days per day", "user"),
        _spend("30 days per day", "tag"),
        _spend("30 days per day", "provider"),
        _spend("30 days per day, Berlin", "team", timezone="Europe/Berlin"),
        _spend("7 days per hour", "provider", WEEK, granularity="hour"),
        _spend("30 days per week", "team", granularity="week"),
        _spend("30 days per month", "model", granularity="month"),
        ("keys", "keys, page 1", "/ui/keys", {}),
        ("keys", "keys, page 40", "/ui/keys", {"page": 40}),
        ("keys", "key page (the busiest key)", f"/ui/keys/{busy_key}", {}),
        ("budgets", "budgets", "/ui/budgets", {}),
        ("entities", "teams", "/ui/teams", {}),
        ("entities", "team page (team-007)", "/ui/teams/team-007", {}),
        ("entities", "users, page 1", "/ui/users", {}),
        ("entities", "user page (user-0007)", "/ui/users/user-0007", {}),
        ("entities", "customers", "/ui/customers", {}),
        ("logs", "logs, newest 50", "/ui/logs", {}),
        ("logs", "logs, page 20 (by its cursor)", "/ui/logs", {"cursor": cursor_20}),
        ("logs", "logs of the busiest key", "/ui/logs", {"api_key": busy_key}),
        ("logs", "logs, one day", "/ui/logs", {"start_date": "2026-10-15", "end_date": "2026-10-15"}),
        ("batches", "batches", "/ui/batches", {}),
        ("alerts", "alerts", "/ui/alerts", {}),
    ]


# -- the server ----------------------------------------------------------------------------


def serve(url: str, port: int, *, api_clock: bool = False) -> None:
    """The gateway as ``spendgate serve`` runs it, its Overview clock at :data:`NOW` (and
    the management API's with ``api_clock``)."""
    import uvicorn

    from spendgate.admin import _http
    from spendgate.config import parse_config
    from spendgate.server import build_app
    from spendgate.ui.pages import overview

    class _Clock(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return NOW.astimezone(tz)  # a plain datetime: answers serialise it as any other

    overview.datetime = _Clock  # type: ignore[misc]
    if api_clock:  # AdminSettings' default clock reads the module's datetime when called
        _http.datetime = _Clock  # type: ignore[misc]
    journal = tempfile.mkdtemp(prefix="bench-ui-journal-")
    config = parse_config(
        {
            "model_list": [
                {
                    "model_name": "gpt-4o",
                    "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://127.0.0.1:9"},
                }
            ],
            "general_settings": {
                "master_key": MASTER,
                "database_url": url,
                "run_migrations": True,
                "journal_dir": journal,
            },
        },
        environ={},
    )
    app = build_app(config)
    gc.collect()
    gc.freeze()  # as `spendgate serve` does after start-up
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start_server(url: str, *, api_clock: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", "--database-url", url, "--port", str(port)]
    proc = subprocess.Popen(command + (["--api-clock"] if api_clock else []))
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/ui/login", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("the gateway did not start")


def signed_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=600)
    form = client.get("/ui/login").text  # the form's CSRF token, and its cookie
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    answer = client.post("/ui/login", data={"key": MASTER, "csrf_token": token.group(1) if token else ""})
    if answer.status_code != 303 or "spendgate_session" not in client.cookies:
        raise SystemExit(f"sign-in failed: {answer.status_code} {answer.text[:300]}")
    return client


def busiest_key(base: str) -> str:
    """The hash of ``key-0000`` (the data's busiest key)."""
    r = httpx.get(
        f"{base}/key/list",
        params={"key_alias": "key-0000", "return_full_object": "true"},
        headers={"Authorization": f"Bearer {MASTER}"},
        timeout=60,
    )
    r.raise_for_status()
    return str(r.json()["keys"][0]["token"])


def page_20_cursor(base: str) -> str:
    """The cursor of the Logs page's 20th page (after the newest 950 events): the
    ``x-spendgate-next-cursor`` of a 950-row ``/spend/logs`` page."""
    r = httpx.get(
        f"{base}/spend/logs",
        params={"summarize": "false", "page_size": 19 * 50},
        headers={"Authorization": f"Bearer {MASTER}"},
        timeout=600,
    )
    r.raise_for_status()
    return r.headers["x-spendgate-next-cursor"]


_BUDGETED = """
UPDATE virtual_keys SET max_budget_nanos = (40 + (hashtext(key_id) & 255)) * 1000000000::bigint,
       budget_duration = '1mo', budget_start = created_at
 WHERE key_alias LIKE 'key-%';
INSERT INTO budget_windows (scope_type, scope_id, budget_duration, max_budget_nanos, created_at, updated_at)
SELECT 'key', key_id, d.duration,
       (d.base + (hashtext(key_id || d.duration) & 63)) * 1000000000::bigint, now(), now()
  FROM virtual_keys, (VALUES ('1d', 2), ('7d', 12)) AS d(duration, base)
 WHERE key_alias LIKE 'key-%'
ON CONFLICT DO NOTHING;
"""
_UNBUDGETED = """
UPDATE virtual_keys SET max_budget_nanos = NULL, budget_duration = NULL, budget_start = NULL
 WHERE key_alias LIKE 'key-%';
DELETE FROM budget_windows WHERE scope_type = 'key'
   AND scope_id IN (SELECT key_id FROM virtual_keys WHERE key_alias LIKE 'key-%');
"""


def _sql(url: str, statements: str) -> None:
    """Run ``statements`` on the bench database, in one transaction."""
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            async with conn.transaction():
                await conn.execute(statements)
        finally:
            await conn.close()

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("SPENDGATE_BENCH_POSTGRES_URL", DEFAULT_URL))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--slow-runs", type=int, default=5, help="runs of a page whose warm-up took > 2 s")
    parser.add_argument("--only", default="", help="comma-separated groups (overview,spend,keys,…)")
    parser.add_argument(
        "--budgeted-keys", action="store_true", help="give every key three windows for the run"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--api-clock", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.database_url, args.port, api_clock=args.api_clock)
        return
    only = {g for g in args.only.split(",") if g}
    if args.budgeted_keys:
        _sql(args.database_url, _UNBUDGETED + _BUDGETED)
    proc, base = start_server(args.database_url, api_clock=args.budgeted_keys)
    try:
        client = signed_in(base)
        cursor = page_20_cursor(base) if not only or "logs" in only else ""
        cases = [c for c in pages(busiest_key(base), cursor) if not only or c[0] in only]
        print(f"dashboard pages, {args.runs} requests each after 1 warm-up, ms (load average before–after)")
        for _, name, path, params in cases:
            res = time_requests(client, path, params, args.runs, args.slow_runs)
            print(
                f"{name:<44} p50 {res['p50']:6.0f}  p95 {res['p95']:6.0f}  min {res['min']:6.0f}  "
                f"max {res['max']:6.0f}  n {res['runs']:2}  {res['bytes']:>9,} B  [{res['load']}]",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait()
        if args.budgeted_keys:
            _sql(args.database_url, _UNBUDGETED)


if __name__ == "__main__":
    main()
