"""Benchmark: the time ``spendgate.instrument`` adds to one call of the official SDKs (#14).

Two clients make the same calls against the same upstream: **A**, the official ``openai`` /
``anthropic`` client as the user builds it, and **B**, ``spendgate.instrument(A)`` (the same
HTTP client settings: the instrumented copy keeps A's timeout, redirects, headers and the
SDK's connection limits). Calls alternate A, B, B, A … one by one in the same run, so drift
and noise on this shared machine hit both arms alike. Per call the wall time and this
thread's CPU time are recorded; reported per arm are the medians, and the added time
(B − A) with a 95 % bootstrap interval of the difference of medians, its range over rounds,
and the median of the paired differences.

Cases (sync calls; default budget and callbacks unless named):

* ``chat``: ``chat.completions.create(model="gpt-4o", max_tokens=5)``;
* ``chat-stream``: the same with ``stream=True``, read to the end (B asks the upstream for
  usage, as the gateway does, and withholds the usage chunk: one more chunk than A reads);
* ``messages``: anthropic ``messages.create(model="claude-sonnet-4-5", max_tokens=5)``;
* ``chat-budget-callback``: ``chat`` with ``spendgate.max_budget`` set (every call reserves
  its worst case and settles) and one success callback (its kwargs are built).

Upstreams (``--upstream``):

* ``mock`` (default): the project's mock provider in its own process (``spendgate
  mock-provider``), over loopback with keep-alive connections. Its own process, so the
  server's work never holds this process's GIL;
* ``replay``: no sockets. Both SDK clients get an ``httpx2.Client`` whose transport is an
  ``httpx2.MockTransport`` answering each distinct request with the mock provider's answer
  to it (fetched once, on first sight, then replayed). What is left is the client's own
  time, so the difference B − A is the instrumentation alone, without loopback and server
  noise (the metered transport wraps the caller's transport, as for any user-built client).

``--profile N`` runs N instrumented calls of each case under cProfile (replay upstream) and
prints where the metered transport's time goes: each direct callee of its
``handle_request`` with its cumulative time per call (cProfile inflates every figure; read
them as shares). ``--arm plain|instrumented`` makes ``--calls`` calls of one case with one
arm and prints nothing (for timing whole processes from outside).

    .venv/bin/python bench/sdk_overhead.py                      # 2,000 calls per arm per case
    .venv/bin/python bench/sdk_overhead.py --upstream replay --profile 2000
    .venv/bin/python bench/sdk_overhead.py --calls 5000 --arm instrumented --case chat
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import platform
import pstats
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx2
import openai
import orjson

import spendgate
from spendgate.http.headers import cost_text
from spendgate.sdk import transport as sdk_transport
from spendgate.sdk.metering import InstrumentOptions, MeteredCall, endpoint_of
from spendgate.sdk.transport import _answered, _read_headers

__all__ = ["main"]

TARGET_US = 50.0
API_KEY = "sk-bench"
MESSAGES = [{"role": "user", "content": "hello, how are you?"}]
CASES = ("chat", "chat-stream", "messages", "chat-budget-callback")
_DROPPED = frozenset({"content-length", "content-encoding", "transfer-encoding", "connection"})


# -- the upstream -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mock_provider() -> Iterator[str]:
    """The mock provider in its own process; yields its base URL (without ``/v1``)."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-c",
        "from spendgate.cli import main; main()",
        "mock-provider",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # a loaded machine may take 10 s or more to start it
        while True:
            try:
                with urllib.request.urlopen(f"{base}/mock/stats", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the mock provider did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=15)


class Replay:
    """An ``httpx2.MockTransport`` handler: the mock provider's answer to each distinct
    request (path and body), fetched on first sight and replayed afterwards."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.live = httpx2.Client(base_url=base, timeout=30)
        self.answers: dict[tuple[str, bytes], tuple[int, list[tuple[str, str]], bytes]] = {}
        self.last: tuple[httpx2.Request, httpx2.Response] | None = None

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = request.read()
        key = (request.url.path, body)
        answer = self.answers.get(key)
        if answer is None:
            headers = [
                (k, v)
                for k, v in request.headers.multi_items()
                if k.lower() not in ("host", "content-length")
            ]
            live = self.live.request(request.method, request.url.path, content=body, headers=headers)
            kept = [(k, v) for k, v in live.headers.multi_items() if k.lower() not in _DROPPED]
            answer = self.answers[key] = (live.status_code, kept, live.content)
        status, headers, content = answer
        response = httpx2.Response(status, headers=headers, content=content)
        self.last = (request, response)
        return response

    def close(self) -> None:
        self.live.close()


@dataclass
class Clients:
    """A (plain) and B (instrumented) for each SDK."""

    openai_a: openai.OpenAI
    openai_b: openai.OpenAI
    anthropic_a: anthropic.Anthropic
    anthropic_b: anthropic.Anthropic
    closers: list[Callable[[], None]] = field(default_factory=list)
    replay: Replay | None = None

    def close(self) -> None:
        for close in (
            self.openai_a.close,
            self.openai_b.close,
            self.anthropic_a.close,
            self.anthropic_b.close,
        ):
            close()
        for close in self.closers:
            close()


def build_clients(base: str, upstream: str) -> Clients:
    """The plain clients (SDK defaults, or an ``httpx2`` client over the replay) and their
    instrumented copies."""
    closers: list[Callable[[], None]] = []
    if upstream == "replay":
        replay = Replay(base)
        closers.append(replay.close)
        oa_http = httpx2.Client(transport=httpx2.MockTransport(replay), timeout=30)
        an_http = httpx2.Client(transport=httpx2.MockTransport(replay), timeout=30)
        closers += [oa_http.close, an_http.close]
        oa = openai.OpenAI(base_url=f"{base}/v1", api_key=API_KEY, max_retries=0, http_client=oa_http)
        an = anthropic.Anthropic(base_url=base, api_key=API_KEY, max_retries=0, http_client=an_http)
    else:
        oa = openai.OpenAI(base_url=f"{base}/v1", api_key=API_KEY, max_retries=0)
        an = anthropic.Anthropic(base_url=base, api_key=API_KEY, max_retries=0)
    clients = Clients(oa, spendgate.instrument(oa), an, spendgate.instrument(an), closers)
    clients.replay = replay if upstream == "replay" else None
    assert isinstance(clients.openai_b._client._transport, sdk_transport.METERED_TRANSPORTS)
    assert not isinstance(clients.openai_a._client._transport, sdk_transport.METERED_TRANSPORTS)
    return clients


# -- the calls ----------------------------------------------------------------------------------


def _chat(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5)  # type: ignore[arg-type]


def _chat_stream(client: openai.OpenAI) -> Any:
    last = None
    for chunk in client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5, stream=True):  # type: ignore[arg-type]
        last = chunk
    return last


def _messages(client: anthropic.Anthropic) -> Any:
    return client.messages.create(model="claude-sonnet-4-5", messages=MESSAGES, max_tokens=5)  # type: ignore[arg-type]


def _noop_callback(kwargs: Any, response: Any, start: Any, end: Any) -> None:
    return None


@contextlib.contextmanager
def case_settings(case: str) -> Iterator[None]:
    """The process-wide SDK settings a case runs with (they touch the instrumented arm only)."""
    if case != "chat-budget-callback":
        yield
        return
    spendgate.max_budget = 1_000_000.0
    spendgate.success_callback = [_noop_callback]
    try:
        yield
    finally:
        spendgate.max_budget = None
        spendgate.success_callback = []


def arms(case: str, clients: Clients) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(A, B): the same call with the plain and the instrumented client."""
    if case == "messages":
        return (lambda: _messages(clients.anthropic_a)), (lambda: _messages(clients.anthropic_b))
    call = _chat_stream if case == "chat-stream" else _chat
    return (lambda: call(clients.openai_a)), (lambda: call(clients.openai_b))


def check(case: str, clients: Clients) -> None:
    """The instrumented arm really prices (a cost is readable), the plain arm does not."""
    a, b = arms(case, clients)
    with case_settings(case):
        a()
        if case == "chat-stream":
            assert b() is not None
            return
        result = b()
        cost = spendgate.cost_of(result)
        assert cost is not None and cost > 0, f"{case}: the instrumented call was not priced ({cost!r})"


# -- measuring ----------------------------------------------------------------------------------


@dataclass
class Samples:
    wall_a: list[int] = field(default_factory=list)
    wall_b: list[int] = field(default_factory=list)
    cpu_a: list[int] = field(default_factory=list)
    cpu_b: list[int] = field(default_factory=list)
    rounds: list[tuple[float, float]] = field(default_factory=list)
    """Per round: (median wall A, median wall B) in µs."""


def _timed(fn: Callable[[], Any]) -> tuple[int, int]:
    c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
    fn()
    w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
    return w1 - w0, c1 - c0


def measure(case: str, clients: Clients, calls: int, warmup: int, rounds: int) -> Samples:
    """``calls`` calls per arm after ``warmup``, A and B alternating (A B, then B A …)."""
    a, b = arms(case, clients)
    samples = Samples()
    with case_settings(case):
        for i in range(warmup):
            (a if i % 2 else b)()
            (b if i % 2 else a)()
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            start = len(samples.wall_a)
            for i in range(per_round):
                order = ((a, samples.wall_a, samples.cpu_a), (b, samples.wall_b, samples.cpu_b))
                for fn, walls, cpus in order if i % 2 == 0 else order[::-1]:
                    wall, cpu = _timed(fn)
                    walls.append(wall)
                    cpus.append(cpu)
            samples.rounds.append(
                (
                    statistics.median(samples.wall_a[start:]) / 1e3,
                    statistics.median(samples.wall_b[start:]) / 1e3,
                )
            )
    return samples


def bootstrap_added(a: list[int], b: list[int], resamples: int = 1000, seed: int = 14) -> tuple[float, float]:
    """95 % bootstrap interval of median(B) − median(A), in µs."""
    rng = random.Random(seed)
    n, m = len(a), len(b)
    diffs = sorted(
        statistics.median(rng.choices(b, k=m)) - statistics.median(rng.choices(a, k=n))
        for _ in range(resamples)
    )
    return diffs[int(0.025 * resamples)] / 1e3, diffs[int(0.975 * resamples) - 1] / 1e3


def summary(case: str, s: Samples) -> dict[str, Any]:
    med = statistics.median
    wall_a, wall_b = med(s.wall_a) / 1e3, med(s.wall_b) / 1e3
    low, high = bootstrap_added(s.wall_a, s.wall_b)
    per_round = [b - a for a, b in s.rounds]
    paired = med([b - a for a, b in zip(s.wall_a, s.wall_b, strict=True)]) / 1e3
    cpu_a, cpu_b = med(s.cpu_a) / 1e3, med(s.cpu_b) / 1e3
    return {
        "case": case,
        "calls_per_arm": len(s.wall_a),
        "wall_a_us": wall_a,
        "wall_b_us": wall_b,
        "added_us": wall_b - wall_a,
        "added_ci_us": (low, high),
        "added_rounds_us": (min(per_round), max(per_round)),
        "added_paired_us": paired,
        "ratio": wall_b / wall_a,
        "cpu_a_us": cpu_a,
        "cpu_b_us": cpu_b,
        "cpu_added_us": cpu_b - cpu_a,
    }


def print_table(upstream: str, rows: list[dict[str, Any]]) -> None:
    print(f"\nupstream: {upstream}; µs per call (medians); added = B − A")
    print(
        "| case | A plain | B instrumented | B/A | added | 95% CI | over rounds | paired | "
        "CPU A | CPU B | CPU added | ≤ 50 µs |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        ok = "yes" if r["added_us"] <= TARGET_US else "**no**"
        lo, hi = r["added_ci_us"]
        rlo, rhi = r["added_rounds_us"]
        print(
            f"| {r['case']} | {r['wall_a_us']:.1f} | {r['wall_b_us']:.1f} | {r['ratio']:.3f} | "
            f"**{r['added_us']:.1f}** | {lo:.1f} – {hi:.1f} | {rlo:.1f} – {rhi:.1f} | "
            f"{r['added_paired_us']:.1f} | "
            f"{r['cpu_a_us']:.1f} | {r['cpu_b_us']:.1f} | {r['cpu_added_us']:.1f} | {ok} |"
        )


# -- where the time goes ------------------------------------------------------------------------


def profile(case: str, clients: Clients, calls: int) -> None:
    """cProfile of ``calls`` instrumented calls: the metered transport's direct callees."""
    _, b = arms(case, clients)
    with case_settings(case):
        for _ in range(50):
            b()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            b()
        profiler.disable()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    root = next(
        (k for k in raw if k[2] == "handle_request" and k[0].endswith("spendgate/sdk/transport.py")),
        None,
    )
    if root is None:
        print(f"{case}: the metered transport was not seen")
        return
    total = raw[root][3] / calls * 1e6
    own = raw[root][2] / calls * 1e6
    print(
        f"\n{case}: metered handle_request {total:.1f} µs per call under cProfile "
        f"(its own lines {own:.1f} µs)"
    )
    _callees(raw, root, calls, total, depth=1)
    for func, (_, _, _, ct, _) in raw.items():  # a stream's metering runs as the SDK reads it
        if (func[0].endswith("spendgate/sdk/transport.py") and func[2] == "__iter__") or func[2] in (
            "finish_stream",
            "feed",
        ):
            print(
                f"  outside handle_request: {ct / calls * 1e6:8.1f} µs  {_short(func[0])}:{func[1]} {func[2]}"
            )


def _callees(raw: dict[Any, Any], parent: Any, calls: int, total: float, depth: int) -> None:
    """The callees of ``parent`` (time spent under it, per call), three levels deep, ≥ 2 %."""
    found = []
    for func, (_, _, _, _, callers) in raw.items():
        if parent in callers:
            found.append((callers[parent][3] / calls * 1e6, func))
    for ct, func in sorted(found, key=lambda x: x[0], reverse=True):
        if ct < 0.02 * total:
            continue
        print(f"  {'  ' * (depth - 1)}{ct:8.1f} µs {ct / total:6.1%}  {_short(func[0])}:{func[1]} {func[2]}")
        if depth < 3:
            _callees(raw, func, calls, total, depth + 1)


def _short(path: str) -> str:
    marker = "site-packages/"
    if marker in path:
        return path.split(marker, 1)[1]
    return path.split("/src/", 1)[1] if "/src/" in path else path


def _per_call_us(fn: Callable[[], Any], n: int) -> float:
    """Median over 5 batches of ``n // 5`` calls of ``fn``: this thread's CPU µs per call (on
    a shared machine, less disturbed than wall time by waiting for a core)."""
    batch = max(1, n // 5)
    times = []
    for _ in range(5):
        t0 = time.thread_time_ns()
        for _ in range(batch):
            fn()
        times.append((time.thread_time_ns() - t0) / batch / 1e3)
    return statistics.median(times)


def stages(case: str, clients: Clients, n: int) -> None:
    """Each step of the metered transport timed alone (no profiler), on the request the SDK
    sent and the answer the upstream gave in the last instrumented call (replay upstream)."""
    if case not in ("chat", "messages") or clients.replay is None:
        return
    _, b = arms(case, clients)
    b()
    assert clients.replay.last is not None
    request: Any = clients.replay.last[0]
    upstream: Any = clients.replay.last[1]
    body = upstream.read()
    content_type = upstream.headers.get("content-type", "")
    options = InstrumentOptions()
    call = MeteredCall.open(request, options, async_call=False)
    assert call is not None
    breakdown, _ = call.finish(body, content_type)
    usage = call.exchange.read_response(body, content_type)[0]
    assert usage is not None
    path = request.url.path.rstrip("/")
    http = clients.anthropic_b._client if case == "messages" else clients.openai_b._client
    metered: Any = http._transport
    exchange_type, client_call, target = type(call.exchange), call.client, call.target
    read = _read_headers(upstream.headers)  # (the cost header is then appended at each run)
    rows = [
        ("the metered transport's handle_request, whole", lambda: metered.handle_request(request)),
        (
            "the inner transport's handle_request (the same in A)",
            lambda: metered.inner.handle_request(request),
        ),
        ("endpoint_of(request) (kept per URL)", lambda: endpoint_of(request)),
        ("request.read() (already read)", request.read),
        (
            "MeteredCall.open (parse body, exchange, record)",
            lambda: MeteredCall.open(request, options, async_call=False),
        ),
        ("  of which orjson.loads(request body)", lambda: orjson.loads(request.content)),
        (
            "  not per call: request.url.copy_with(path, query=None) (kept per URL)",
            lambda: request.url.copy_with(path=path, query=None),
        ),
        ("  of which uuid.uuid4()", uuid.uuid4),
        ("  of which datetime.now(UTC)", lambda: datetime.now(UTC)),
        ("  of which the provider exchange", lambda: exchange_type(client_call, target)),
        ("admit (no budget: notify_start)", call.admit),
        ("outgoing (scan for x-spendgate-* headers)", lambda: call.outgoing(request)),
        ("finish (meter, price, settle, call back)", lambda: call.finish(body, content_type)),
        ("  of which exchange.read_response", lambda: call.exchange.read_response(body, content_type)),
        ("  of which price", lambda: call.model.price(usage)),
        ("  of which orjson.loads(answer) for the callbacks", lambda: orjson.loads(body)),
        (
            "_answered (cost and request id headers, elapsed, remember)",
            lambda: _answered(call, upstream, breakdown, None, time.perf_counter(), read),
        ),
        ("  of which cost_text", lambda: cost_text(breakdown.total_nanos)),
    ]
    print(
        f"\n{case}: the metered transport's steps, each timed alone, CPU µs per call (median of 5 × {n // 5})"
    )
    for name, fn in rows:
        print(f"  {_per_call_us(fn, n):8.2f}  {name}")


# -- main ---------------------------------------------------------------------------------------


def _machine() -> str:
    cpu = ""
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), ""
        )
    return (
        f"{os.cpu_count()} cores {cpu}; Python {platform.python_version()}; "
        f"openai {openai.__version__}, anthropic {anthropic.__version__}, httpx2 {httpx2.__version__}"
    )


def _load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per arm per case")
    parser.add_argument("--warmup", type=int, default=200, help="calls per arm before measuring")
    parser.add_argument("--rounds", type=int, default=5, help="rounds the calls are split into")
    parser.add_argument("--upstream", choices=("mock", "replay", "both"), default="mock")
    parser.add_argument("--case", action="append", choices=CASES, help="repeatable; default: all")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile N instrumented calls")
    parser.add_argument("--arm", choices=("plain", "instrumented"), help="only make calls with one arm")
    args = parser.parse_args()
    cases = args.case or list(CASES)
    upstreams = ["mock", "replay"] if args.upstream == "both" else [args.upstream]

    with mock_provider() as base:
        if args.arm:
            clients = build_clients(base, upstreams[0])
            for case in cases:
                a, b = arms(case, clients)
                fn = a if args.arm == "plain" else b
                with case_settings(case):
                    for _ in range(args.calls):
                        fn()
            clients.close()
            return
        print(f"machine: {_machine()}")
        print(f"start {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average {_load()}")
        print(f"calls per arm per case: {args.calls} (after {args.warmup} warm-up), {args.rounds} rounds")
        for upstream in upstreams:
            clients = build_clients(base, upstream)
            rows = []
            for case in cases:
                check(case, clients)
                rows.append(summary(case, measure(case, clients, args.calls, args.warmup, args.rounds)))
                print(f"  {upstream} {case} done, load average {_load()}", flush=True)
            print_table(upstream, rows)
            clients.close()
        if args.profile:
            clients = build_clients(base, "replay")
            for case in cases:
                stages(case, clients, args.profile * 5)
                profile(case, clients, args.profile)
            clients.close()
        print(f"\nend {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average {_load()}")


if __name__ == "__main__":
    main()
