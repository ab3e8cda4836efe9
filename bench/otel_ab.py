"""OpenTelemetry on vs off (issue #15): the gateway's throughput and CPU per request with every
call exported as a span and metrics, against the same gateway with OpenTelemetry off (the
default), plus the cost of one :meth:`OtelTelemetry.observe` call.

Both gateways (one uvicorn worker each, SQLite ledger, journal, Prometheus metrics on as by
default) run side by side in front of one mock provider; the "on" one exports over OTLP/HTTP
to a local receiver in this process, which decodes each request and counts the spans (so a
dropped span would show). At each concurrency both are driven in turn by the same wrk load,
the order swapped every other round. Reports requests per second and the gateway process's
CPU time per request, and their ratios on/off; then the medians over rounds.

    python bench/otel_ab.py                          # 6 rounds, 8 and 32 connections, 10 s each
    python bench/otel_ab.py --rounds 10 --connections 32
    python bench/otel_ab.py --micro-only             # only the per-event cost
    python bench/otel_ab.py --sampler-ratio 0.1      # "on" keeps 1 trace in 10 (OTEL_TRACES_SAMPLER)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway import BODY, MASTER_KEY, _cpu_seconds, _free_port, _gateway_pid, _spendgate, _wait, _wrk
from spendgate.config import OtelSettings
from spendgate.core.usage.model import Usage
from spendgate.ledger.events import SpendEvent
from spendgate.telemetry.otel import OtelTelemetry


class Collector:
    """A local OTLP/HTTP receiver: answers 200 and counts the spans of every traces request."""

    def __init__(self) -> None:
        self.spans = self.requests = 0
        counts = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                counts.requests += 1
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    counts.spans += sum(
                        len(scope.spans) for spans in request.resource_spans for scope in spans.scope_spans
                    )
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def micro(collector: Collector, events: int = 20_000) -> float:
    """Microseconds per ``observe`` of a typical chat event (span + 3 histogram records). The
    events go in chunks that the span queue (2,048) can hold, so none is dropped unmeasured."""
    telemetry = OtelTelemetry(OtelSettings(endpoint=collector.url, metric_export_interval_seconds=60))
    now = datetime.now(UTC)
    event = SpendEvent(
        event_id="req-0123456789abcdef",
        operation_id="req-0123456789abcdef",
        occurred_at=now,
        started_at=now - timedelta(milliseconds=420),
        cost_nanos=62_500,
        usage=Usage(input_tokens=120, output_tokens=40, cache_read_tokens=64),
        requested_model="gpt-4o",
        model="gpt-4o",
        provider="openai",
        endpoint="/v1/chat/completions",
        api_key="8f14e45fceea167a5a36dedd4bea2543",
        team_id="team-a",
        deployment_id="gpt-4o-primary",
        catalogue_version="2026-11-01",
        price_source="bundled",
    )
    spent = 0.0
    for _ in range(events // 500):
        started = time.perf_counter()
        for _ in range(500):
            telemetry.observe(event)
        spent += time.perf_counter() - started
        time.sleep(0.05)  # let the exporter thread drain the queue
    telemetry.shutdown()
    return spent / events * 1e6


def _config(path: Path, mock_url: str, base: Path, otel_url: str | None) -> None:
    general: dict[str, Any] = {
        "master_key": MASTER_KEY,
        "database_url": f"sqlite+aiosqlite:///{base}.db",
        "journal_dir": f"{base}-journal",
    }
    if otel_url:
        general["otel"] = {"endpoint": otel_url, "metric_export_interval_seconds": 10}
    deployment = {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_base": mock_url}}
    path.write_text(json.dumps({"model_list": [deployment], "general_settings": general}))


def ab(args: argparse.Namespace, collector: Collector) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="spendgate-otel-ab-"))
    script = tmp / "chat.lua"
    script.write_text(
        f"wrk.method = 'POST'\nwrk.body = '{json.dumps(BODY)}'\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
        f"wrk.headers['Authorization'] = 'Bearer {MASTER_KEY}'\n"
    )
    mock_port = _free_port()
    procs = [
        subprocess.Popen(_spendgate("mock-provider", "--port", str(mock_port)), stdout=subprocess.DEVNULL)
    ]
    rows: list[dict[str, Any]] = []
    answered = 0
    try:
        gateways: dict[str, dict[str, Any]] = {}
        for name in ("on", "off"):
            port, config = _free_port(), tmp / f"{name}.yaml"
            _config(
                config,
                f"http://127.0.0.1:{mock_port}/v1",
                tmp / name,
                collector.url if name == "on" else None,
            )
            cmd = _spendgate("serve", "--config", str(config), "--port", str(port), "--log-level", "warning")
            env = dict(os.environ)
            if name == "on" and args.sampler_ratio is not None:  # the SDK's standard variables
                env["OTEL_TRACES_SAMPLER"] = "traceidratio"
                env["OTEL_TRACES_SAMPLER_ARG"] = str(args.sampler_ratio)
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env))
            gateways[name] = {
                "port": port,
                "proc": procs[-1],
                "url": f"http://127.0.0.1:{port}/v1/chat/completions",
            }
        _wait(f"http://127.0.0.1:{mock_port}/mock/stats")
        for gw in gateways.values():
            _wait(f"http://127.0.0.1:{gw['port']}/health/liveliness")
            gw["pid"] = _gateway_pid(gw["proc"].pid)
            warm = _wrk(gw["url"], 8, 3, script, None)
            answered += int(warm["requests"]) if gw is gateways["on"] else 0
        for round_ in range(1, args.rounds + 1):
            order = ["on", "off"] if round_ % 2 else ["off", "on"]
            for connections in args.connections:
                row: dict[str, Any] = {"round": round_, "connections": connections}
                for name in order:
                    before = _cpu_seconds(gateways[name]["pid"])
                    result = _wrk(gateways[name]["url"], connections, args.duration, script, None)
                    cpu = _cpu_seconds(gateways[name]["pid"]) - before
                    row[name] = {**result, "cpu_ms": cpu * 1000 / max(result["requests"], 1)}
                answered += int(row["on"]["requests"])
                row["rps_ratio"] = row["on"]["rps"] / row["off"]["rps"]
                row["cpu_ratio"] = row["on"]["cpu_ms"] / row["off"]["cpu_ms"]
                rows.append(row)
                print(
                    f"round {round_} c={connections:<3} on {row['on']['rps']:6.0f} rps "
                    f"{row['on']['cpu_ms']:.3f} ms cpu/req | off {row['off']['rps']:6.0f} rps "
                    f"{row['off']['cpu_ms']:.3f} ms cpu/req | on/off rps {row['rps_ratio']:.3f} "
                    f"cpu {row['cpu_ratio']:.3f} | errors {row['on']['errors']:.0f}/"
                    f"{row['off']['errors']:.0f}",
                    flush=True,
                )
    finally:
        for proc in reversed(procs):
            proc.terminate()  # a graceful stop: the "on" gateway exports what is queued
        for proc in procs:
            proc.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        c: {
            "rps_ratio_median": statistics.median(r["rps_ratio"] for r in rows if r["connections"] == c),
            "cpu_ratio_median": statistics.median(r["cpu_ratio"] for r in rows if r["connections"] == c),
            "cpu_ms_on_median": statistics.median(r["on"]["cpu_ms"] for r in rows if r["connections"] == c),
            "cpu_ms_off_median": statistics.median(r["off"]["cpu_ms"] for r in rows if r["connections"] == c),
        }
        for c in args.connections
    }
    return {"rows": rows, "summary": summary, "answered_on": answered}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")], default=[8, 32])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--micro-only", action="store_true")
    parser.add_argument("--sampler-ratio", type=float, help="trace sampling ratio of the 'on' gateway")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    load_before = os.getloadavg()
    collector = Collector()
    report: dict[str, Any] = {"observe_us": micro(collector)}
    print(f"OtelTelemetry.observe: {report['observe_us']:.1f} us per event", flush=True)
    if not args.micro_only:
        if not shutil.which("wrk"):
            sys.exit("wrk is not installed (Debian: apt-get install -y wrk)")
        spans_before = collector.spans
        report.update(ab(args, collector))
        time.sleep(1)
        report["spans_received"] = collector.spans - spans_before
        print("\nconnections  rps on/off  cpu/req on/off  (medians; cpu ms on vs off)")
        for c, s in report["summary"].items():
            print(
                f"{c:>11}  {s['rps_ratio_median']:.3f}       {s['cpu_ratio_median']:.3f}"
                f"           ({s['cpu_ms_on_median']:.3f} vs {s['cpu_ms_off_median']:.3f})"
            )
        print(f"spans received {report['spans_received']} for {report['answered_on']} requests answered (on)")
    collector.close()
    report["load"] = [load_before, os.getloadavg()]
    print(f"load average before {load_before}, after {os.getloadavg()} (2 shared cores)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
