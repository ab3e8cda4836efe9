"""Gateway benchmark: latency added and throughput, against the mock provider called directly.

One run starts the mock provider and one gateway worker (recording on: SQLite ledger,
journal), then drives both with the same load generator (wrk, closed loop) at each fixed
concurrency: first the mock directly, then the same request through the gateway.

    python bench/gateway.py                      # uvicorn (uvloop + httptools), 1 worker
    python bench/gateway.py --server granian     # needs granian installed
    python bench/gateway.py --pin                # gateway on CPU 0, mock and wrk on CPU 1
    python bench/gateway.py --upstream-client httpx   # httpx.AsyncClient upstream instead
    python bench/gateway.py --upstream-client aiohttp,httpx   # compare, in one run
    python bench/gateway.py --baseline /tmp/sg-base/src:fast --rounds 2   # against an older tree

With several gateways (upstream clients, and ``--baseline SRC[:CLIENT]``: the code under
``SRC``, e.g. a ``git worktree`` of an earlier commit, run with that upstream client), they
run side by side (each with its own ledger) and, at each concurrency, the mock is measured
directly once and then each gateway in turn, so they are compared under the same
conditions; with ``--rounds N`` the whole measurement is repeated N times, the gateways'
order reversed every other round (so neither always runs first on a drifting machine).

Reports, per concurrency: p50 / p99 latency direct and through the gateway, the added
latency (the difference), requests per second, the gateway's CPU time per request, and
checks that the ledger holds one row per request answered.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

MASTER_KEY = "sk-bench"
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello, how are you?"}], "max_tokens": 5}
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _spendgate(*args: str) -> list[str]:
    return [sys.executable, "-c", "from spendgate.cli import main; main()", *args]


def _pin(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu and shutil.which("taskset") else []


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(url: str, connections: int, duration: int, script: Path, cpu: str | None) -> dict[str, float]:
    cmd = [
        *_pin(cpu),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result: dict[str, float] = {}
    for pct in ("50", "90", "99"):
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if match:
            result[f"p{pct}_ms"] = float(match.group(1)) * _UNITS[match.group(2)]
    result["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result["requests"] = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    return result


def _config(path: Path, mock_url: str, db: Path, journal: Path, upstream_client: str) -> None:
    path.write_text(
        json.dumps(  # JSON is YAML
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
                    "upstream_http_client": upstream_client,
                },
            }
        )
    )


def _ledger_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM spend_events").fetchone()[0])


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian: apt-get install -y wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="spendgate-bench-"))
    mock_port = _free_port()
    script = tmp / "chat.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{json.dumps(BODY)}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {MASTER_KEY}"\n'
    )
    gw_cpu, load_cpu = ("0", "1") if args.pin else (None, None)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        mock = subprocess.Popen(
            [*_pin(load_cpu), *_spendgate("mock-provider", "--port", str(mock_port))],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(mock)
        gateways: list[dict[str, Any]] = []
        specs = [(name, name, None) for name in args.upstream_client]
        for baseline in args.baseline:
            src, _, client = baseline.partition(":")
            specs.append((f"baseline {client or 'default'}", client or "aiohttp", src))
        for i, (name, client, src) in enumerate(specs):
            gw_port, db, config = _free_port(), tmp / f"gw{i}.db", tmp / f"gw{i}.yaml"
            _config(config, f"http://127.0.0.1:{mock_port}/v1", db, tmp / f"journal-{i}", client)
            env = {**os.environ, "SPENDGATE_CONFIG": str(config)}
            if src is not None:
                env["PYTHONPATH"] = src
            if args.server == "granian":
                cmd = [
                    *_pin(gw_cpu), "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                    "--port", str(gw_port), "--workers", "1", "--loop", "uvloop", "--log-level", "warning",
                    "--no-ws", "--http", "1", "spendgate.cli.serve:create_app",
                ]  # fmt: skip
            else:
                cmd = [*_pin(gw_cpu), *_spendgate("serve", "--config", str(config), "--port", str(gw_port),
                                                  "--log-level", "warning")]  # fmt: skip
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(proc)
            gateways.append(
                {"name": name, "port": gw_port, "db": db, "proc": proc, "rows": [], "answered": 0.0}
            )
        _wait(f"http://127.0.0.1:{mock_port}/mock/stats")
        direct_url = f"http://127.0.0.1:{mock_port}/v1/chat/completions"
        _wrk(direct_url, 8, 2, script, load_cpu)  # warm up: connections, caches, lazy imports
        for gw in gateways:
            _wait(f"http://127.0.0.1:{gw['port']}/health/liveliness")
            gw["url"] = f"http://127.0.0.1:{gw['port']}/v1/chat/completions"
            gw["pid"] = _gateway_pid(gw["proc"].pid)
            warm = _wrk(gw["url"], 8, 2, script, load_cpu)
            gw["answered"] += warm["requests"] - warm["errors"]
        for round_ in range(args.rounds):
            order = gateways if round_ % 2 == 0 else gateways[::-1]
            for connections in args.connections:
                _measure(args, round_ + 1, connections, direct_url, order, script, load_cpu)
        time.sleep(1.5)  # the recorder writes behind (250 ms batches)
        return [
            {
                "server": args.server,
                "upstream_client": gw["name"],
                "pinned": args.pin,
                "results": gw["rows"],
                "ledger_rows": _ledger_rows(gw["db"]),
                "warmup_and_measured_requests_answered": gw["answered"],
            }
            for gw in gateways
        ]
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(
    args: argparse.Namespace,
    round_: int,
    connections: int,
    direct_url: str,
    gateways: list[dict[str, Any]],
    script: Path,
    load_cpu: str | None,
) -> None:
    """The mock directly once, then each gateway in turn, at one concurrency."""
    direct = _wrk(direct_url, connections, args.duration, script, load_cpu)
    for gw in gateways:
        before = _cpu_seconds(gw["pid"])
        through = _wrk(gw["url"], connections, args.duration, script, load_cpu)
        cpu = _cpu_seconds(gw["pid"]) - before
        gw["answered"] += through["requests"] - through["errors"]
        gw["rows"].append(
            {
                "round": round_,
                "connections": connections,
                "direct": direct,
                "gateway": through,
                "added_p50_ms": through["p50_ms"] - direct["p50_ms"],
                "added_p99_ms": through["p99_ms"] - direct["p99_ms"],
                "gateway_cpu_ms_per_request": cpu * 1000 / max(through["requests"], 1),
            }
        )


def _gateway_pid(pid: int) -> int:
    """The process serving requests (uvicorn with one worker serves in-process; granian forks)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        kids = children.read_text().split() if children.exists() else []
        if kids:
            return _gateway_pid(int(kids[0]))
        if Path(f"/proc/{pid}/cmdline").read_bytes().find(b"granian") == -1:
            return pid
        time.sleep(0.1)
    return pid


CLIENTS = ("aiohttp", "httpx")


def _clients(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in CLIENTS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct names among {', '.join(CLIENTS)}")
    return names


def _comparison(reports: list[dict[str, Any]]) -> str:
    """Upstream clients side by side, per concurrency (CPU/req relative to the first client)."""
    head = (
        "client",
        "conns",
        "gateway p50 / p99 (ms)",
        "added p50 (ms)",
        "gateway req/s",
        "gateway CPU/req (ms)",
    )
    lines = ["| round | " + " | ".join(head) + " |", "|---:|---|" + "---:|" * (len(head) - 1)]
    ratios: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for i, row in enumerate(reports[0]["results"]):
        base, base_rps = row["gateway_cpu_ms_per_request"], row["gateway"]["rps"]
        for report in reports:
            r = report["results"][i]
            g, cpu = r["gateway"], r["gateway_cpu_ms_per_request"]
            lines.append(
                f"| {r['round']} | {report['upstream_client']} | {r['connections']} "
                f"| {g['p50_ms']:.2f} / {g['p99_ms']:.2f} "
                f"| {r['added_p50_ms']:.2f} | {g['rps']:.0f} | {cpu:.3f} ({cpu / base - 1:+.0%}) |"
            )
            ratios.setdefault((report["upstream_client"], r["connections"]), []).append(
                (g["rps"] / base_rps, cpu / base)
            )
    first = reports[0]["upstream_client"]
    lines.append(f"\nmedian over rounds, relative to {first} (req/s ratio, CPU/req ratio):")
    for (name, connections), pairs in ratios.items():
        if name != first:
            rps = statistics.median(p[0] for p in pairs)
            cpu = statistics.median(p[1] for p in pairs)
            lines.append(f"  {name}, {connections} connections: req/s x{rps:.3f}, CPU/req x{cpu:.3f}")
    return "\n".join(lines)


def _table(report: dict[str, Any]) -> str:
    head = (
        "conns",
        "direct p50 / p99 (ms)",
        "gateway p50 / p99 (ms)",
        "added p50 / p99 (ms)",
        "direct req/s",
        "gateway req/s",
        "gateway CPU/req (ms)",
    )
    lines = ["| round | " + " | ".join(head) + " |", "|---:|" + "---:|" * len(head)]
    for r in report["results"]:
        d, g = r["direct"], r["gateway"]
        lines.append(
            f"| {r['round']} | {r['connections']} | {d['p50_ms']:.2f} / {d['p99_ms']:.2f} "
            f"| {g['p50_ms']:.2f} / {g['p99_ms']:.2f} "
            f"| {r['added_p50_ms']:.2f} / {r['added_p99_ms']:.2f} | {d['rps']:.0f} | {g['rps']:.0f} "
            f"| {r['gateway_cpu_ms_per_request']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32])
    parser.add_argument("--pin", action="store_true", help="gateway on CPU 0; mock and wrk on CPU 1")
    parser.add_argument(
        "--upstream-client",
        type=_clients,
        default=["aiohttp"],
        help=f"one or several (comma-separated, compared in one run) of {', '.join(CLIENTS)}",
    )
    parser.add_argument(
        "--baseline",
        metavar="SRC[:CLIENT]",
        action="append",
        default=[],
        help="also run the gateway from another source tree (PYTHONPATH=SRC) with that upstream client "
        "(repeatable)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat, alternating the gateways' order")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    reports = run(args)
    for report in reports:
        print(
            f"server: {report['server']}, upstream client: {report['upstream_client']}, "
            f"pinned: {report['pinned']}, one worker, recording on"
        )
        print(_table(report))
        answered = report["warmup_and_measured_requests_answered"]
        print(f"ledger rows: {report['ledger_rows']} for {answered:.0f} answered requests\n")
    if len(reports) > 1:
        print(_comparison(reports))
    if args.json:
        args.json.write_text(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))


if __name__ == "__main__":
    main()
