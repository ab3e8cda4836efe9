"""Metrics on vs off (issue #15): the gateway's throughput with Prometheus metrics counted
and scraped, against the same gateway with ``general_settings.metrics_enabled: false``.

Both gateways (one uvicorn worker each, SQLite ledger, journal) run side by side in front of
the same mock provider; at each concurrency they are driven in turn by the same wrk load,
the order swapped every other round, so a drifting machine favours neither. While the
"on" gateway is measured, /metrics is scraped every ``--scrape-interval`` seconds (15 s:
Prometheus' default is 60 s, so this is more often than most). Reports, per round and
concurrency, requests per second and CPU per request of each, and the ratios on/off; then
the median ratio over rounds.

    python bench/metrics_ab.py                       # 6 rounds, 8 and 32 connections, 10 s each
    python bench/metrics_ab.py --rounds 10 --connections 32 --duration 15
    python bench/metrics_ab.py --alerts              # metrics AND budget alert detection

``--alerts``: "on" also detects budget crossings at settlement
(``alerting_args.budget_alerts``), "off" detects none; both are driven through a virtual
key with a daily budget sized from the warm-up so that the run ends near 70 % of it: it
crosses 50 % early, so most settles take the detector's slow path (a window past a
threshold), and real alerts are decided and written during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway import (  # bench/gateway.py: the same load generator and helpers
    BODY,
    MASTER_KEY,
    _cpu_seconds,
    _free_port,
    _gateway_pid,
    _spendgate,
    _wait,
    _wrk,
)


def _config(path: Path, mock_url: str, db: Path, journal: Path, metrics: bool, alerts: bool = False) -> None:
    path.write_text(
        json.dumps(
            {
                "model_list": [
                    {
                        "model_name": "gpt-4o",
                        "litellm_params": {"model": "openai/gpt-4o", "api_base": mock_url},
                    }
                ],
                "general_settings": {
                    "master_key": MASTER_KEY,
                    "database_url": f"sqlite+aiosqlite:///{db}",
                    "journal_dir": str(journal),
                    "metrics_enabled": metrics,
                    "alerting_args": {"budget_alerts": alerts},
                },
            }
        )
    )


class _Scraper:
    """GETs /metrics every ``interval`` seconds while running (like a Prometheus server)."""

    def __init__(self, url: str, interval: float) -> None:
        self.url, self.interval = url, interval
        self.scrapes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Scraper:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            with urllib.request.urlopen(self.url, timeout=10) as answer:
                answer.read()
            self.scrapes += 1
            self._stop.wait(self.interval)


def _script(path: Path, key: str) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps(BODY)}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    return path


def _post(url: str, body: dict[str, Any], key: str) -> tuple[dict[str, Any], Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read()), answer.headers


def _budgeted_key(port: int, budget_usd: str) -> str:
    """A virtual key with a daily budget on the gateway at ``port``."""
    made, _ = _post(
        f"http://127.0.0.1:{port}/key/generate",
        {"max_budget": budget_usd, "budget_duration": "1d"},
        MASTER_KEY,
    )
    return str(made["key"])


def _budget_for(args: argparse.Namespace, port: int, warm_rps: float) -> str:
    """A budget the whole run ends near 70 % of (at the warm-up's pace, every measurement)."""
    _, headers = _post(f"http://127.0.0.1:{port}/v1/chat/completions", BODY, MASTER_KEY)
    cost = Decimal(headers["x-spendgate-response-cost"])
    requests = Decimal(warm_rps) * args.rounds * len(args.connections) * args.duration
    return str((cost * requests / Decimal("0.7")).quantize(Decimal("0.000001")))


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install -y wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="spendgate-metrics-ab-"))
    master = _script(tmp / "chat.lua", MASTER_KEY)
    mock_port = _free_port()
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[dict[str, Any]] = []
    try:
        procs.append(
            subprocess.Popen(
                _spendgate("mock-provider", "--port", str(mock_port)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        gateways: dict[str, dict[str, Any]] = {}
        for name, enabled in (("on", True), ("off", False)):
            port, config = _free_port(), tmp / f"{name}.yaml"
            _config(
                config,
                f"http://127.0.0.1:{mock_port}/v1",
                tmp / f"{name}.db",
                tmp / f"journal-{name}",
                enabled,
                enabled and args.alerts,
            )
            cmd = _spendgate("serve", "--config", str(config), "--port", str(port), "--log-level", "warning")
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            gateways[name] = {
                "port": port,
                "proc": proc,
                "url": f"http://127.0.0.1:{port}/v1/chat/completions",
            }
        _wait(f"http://127.0.0.1:{mock_port}/mock/stats")
        for gw in gateways.values():
            _wait(f"http://127.0.0.1:{gw['port']}/health/liveliness")
            gw["pid"] = _gateway_pid(gw["proc"].pid)
            gw["warm_rps"] = _wrk(gw["url"], 8, 3, master, None)["rps"]  # warm up
            gw["script"] = master
        if args.alerts:
            budget = _budget_for(args, gateways["off"]["port"], max(g["warm_rps"] for g in gateways.values()))
            for name, gw in gateways.items():
                gw["script"] = _script(tmp / f"{name}.lua", _budgeted_key(gw["port"], budget))
            print(f"each gateway's key: a daily budget of ${budget}", flush=True)
        scrape_url = f"http://127.0.0.1:{gateways['on']['port']}/metrics"
        for round_ in range(1, args.rounds + 1):
            order = ["on", "off"] if round_ % 2 else ["off", "on"]
            for connections in args.connections:
                row: dict[str, Any] = {"round": round_, "connections": connections, "order": order}
                for name in order:
                    gw = gateways[name]
                    before = _cpu_seconds(gw["pid"])
                    if name == "on":
                        with _Scraper(scrape_url, args.scrape_interval) as scraper:
                            result = _wrk(gw["url"], connections, args.duration, gw["script"], None)
                        row["scrapes"] = scraper.scrapes
                    else:
                        result = _wrk(gw["url"], connections, args.duration, gw["script"], None)
                    cpu = _cpu_seconds(gw["pid"]) - before
                    row[name] = {**result, "cpu_ms_per_request": cpu * 1000 / max(result["requests"], 1)}
                row["rps_ratio"] = row["on"]["rps"] / row["off"]["rps"]
                row["cpu_ratio"] = row["on"]["cpu_ms_per_request"] / row["off"]["cpu_ms_per_request"]
                rows.append(row)
                print(
                    f"round {round_} c={connections:<3} order={'/'.join(order):7} "
                    f"on {row['on']['rps']:7.0f} rps {row['on']['cpu_ms_per_request']:.3f} ms cpu/req | "
                    f"off {row['off']['rps']:7.0f} rps {row['off']['cpu_ms_per_request']:.3f} ms cpu/req | "
                    f"rps on/off {row['rps_ratio']:.3f}  cpu on/off {row['cpu_ratio']:.3f}  "
                    f"errors {row['on']['errors']:.0f}/{row['off']['errors']:.0f}",
                    flush=True,
                )
        metrics_text = urllib.request.urlopen(scrape_url, timeout=10).read().decode()
        if args.alerts:
            time.sleep(2)  # the recorder writes behind
            on_db = tmp / "on.db"
            with sqlite3.connect(on_db) as db:
                decided = db.execute("SELECT kind, threshold FROM alerts ORDER BY created_at").fetchall()
            print(f"alerts the 'on' gateway decided during the run: {decided}")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {}
    for connections in args.connections:
        mine = [r for r in rows if r["connections"] == connections]
        summary[connections] = {
            "rps_ratio_median": statistics.median(r["rps_ratio"] for r in mine),
            "rps_ratio_min": min(r["rps_ratio"] for r in mine),
            "rps_ratio_max": max(r["rps_ratio"] for r in mine),
            "cpu_ratio_median": statistics.median(r["cpu_ratio"] for r in mine),
        }
    print("\nconnections  rps on/off median [min, max]   cpu per request on/off median")
    for connections, s in summary.items():
        print(
            f"{connections:>11}  {s['rps_ratio_median']:.3f} "
            f"[{s['rps_ratio_min']:.3f}, {s['rps_ratio_max']:.3f}]          {s['cpu_ratio_median']:.3f}"
        )
    requests_line = [
        line for line in metrics_text.splitlines() if line.startswith("litellm_requests_metric_total")
    ]
    print(f"\nthe 'on' gateway counted: {requests_line}")
    return {"rows": rows, "summary": summary, "load": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")], default=[8, 32])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--alerts", action="store_true", help="also budget alert detection (see above)")
    args = parser.parse_args()
    started = os.getloadavg()
    report = run(args)
    report["load_before"] = started
    print(f"load average before {started}, after {report['load']} (2 shared cores)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
