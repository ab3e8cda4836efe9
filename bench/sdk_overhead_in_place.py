"""Benchmark: where the instrumentation's added time goes *in place*, step by step (#14).

``bench/sdk_overhead.py --profile`` times each step of the metered transport alone, warm:
together they are ~15 µs, against the 40-65 µs the instrumentation adds to a call. This
measures the steps where they run, inside real calls: the sync metered transport's
``handle_request`` is replaced by a copy that stops after step *k* (the rest of the call is
the SDK's, as usual), and the time each version adds to a call is measured as
``sdk_overhead.py`` measures it (plain and instrumented clients alternating call by call,
CPU time of this thread, medians). The versions are rotated round by round, so drift hits
all of them alike. A step's share is the difference between the versions either side of it.

Versions (each includes the ones before it):

0. ``through``: the request passed on and the answer read, nothing metered;
1. ``open``: the call opened (request body parsed, exchange built), admitted (budget, start
   hooks), its request made (``outgoing``) and the answer's headers read;
2. ``usage``: the answer's usage read by the provider adapter (its JSON parsed);
3. ``price``: the usage priced;
4. ``settle``: the cost settled and the call ended (callbacks, ledger: none here);
5. ``whole``: the real ``handle_request`` (the cost and request id headers, the price kept
   for ``cost_of``, the parse handed on to the SDK).

Only non-stream calls (``chat``, ``messages``) and the sync transport.

    .venv/bin/python bench/sdk_overhead_in_place.py --upstream mock --case chat
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import sdk_overhead as base
from spendgate.sdk import transport
from spendgate.sdk.metering import MeteredCall, endpoint_of

VERSIONS = ("through", "open", "usage", "price", "settle", "whole")


def _stopping_after(step: int) -> Callable[[Any, Any], Any]:
    """A ``handle_request`` doing the metered transport's steps up to ``step`` (1-4); the
    answer is handed to the SDK as it came (its body read)."""

    def handle_request(self: Any, request: Any) -> Any:
        endpoint = endpoint_of(request)
        request.read()
        call = None
        if step >= 1:
            call = MeteredCall.open(request, self.options, async_call=False, endpoint=endpoint)
            assert call is not None
            call.admit()
            request = call.outgoing(request)
        upstream = self.inner.handle_request(request)
        read = transport._read_headers(upstream.headers) if step >= 1 else None
        try:
            body = upstream.read()
        finally:
            upstream.close()
        if call is None or read is None or step < 2:
            return upstream
        exchange = call.exchange
        usage, _, _ = exchange.read_response(body, read[0])
        assert usage is not None
        if step < 3:
            return upstream
        breakdown = call.model.price(
            usage, at=call.started_at, served_tier=exchange.service_tier, requested_tier=call.tier
        )
        if step < 4:
            return upstream
        call._end(usage, breakdown, "success", estimated=False, response=None)
        return upstream

    return handle_request


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", choices=("mock", "replay"), default="mock")
    parser.add_argument("--case", choices=("chat", "messages"), default="chat")
    parser.add_argument("--calls", type=int, default=1000, help="calls per arm per version per round")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    whole = transport._SyncMetering.handle_request
    versions: dict[str, Callable[[Any, Any], Any]] = {
        name: _stopping_after(step) for step, name in enumerate(VERSIONS[:-1])
    }
    versions["whole"] = whole
    added: dict[str, list[float]] = {name: [] for name in VERSIONS}
    print(f"machine: {base._machine()}")
    print(f"start {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average {base._load()}")
    with base.mock_provider() as url:
        clients = base.build_clients(url, args.upstream)
        base.check(args.case, clients)
        try:
            for r in range(args.rounds):
                order = VERSIONS[r % len(VERSIONS) :] + VERSIONS[: r % len(VERSIONS)]
                for name in order:
                    transport._SyncMetering.handle_request = versions[name]  # type: ignore[method-assign,assignment]
                    s = base.measure(args.case, clients, args.calls, args.calls // 10, 1)
                    added[name].append((statistics.median(s.cpu_b) - statistics.median(s.cpu_a)) / 1e3)
        finally:
            transport._SyncMetering.handle_request = whole  # type: ignore[method-assign]
            clients.close()
    print(f"end {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average {base._load()}")
    print(f"\n{args.case}, {args.upstream} upstream: CPU µs added per call (median of the rounds' medians)")
    print("| version | added | step | rounds |")
    print("|---|---:|---:|---:|")
    before = 0.0
    for name in VERSIONS:
        value = statistics.median(added[name])
        print(
            f"| {name} | {value:.1f} | {value - before:+.1f} | "
            f"{min(added[name]):.1f} – {max(added[name]):.1f} |"
        )
        before = value


if __name__ == "__main__":
    main()
