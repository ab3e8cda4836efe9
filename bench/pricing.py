"""Benchmark: the cost of pricing one call, spendgate against genai-prices and LiteLLM.

Run with ``make bench`` (installs the bench-only group), or
``.venv/bin/python bench/pricing.py [--samples 60] [--calls 200]``.

Every library prices the same calls in the same process, interleaved sample by sample
so that machine noise hits them alike:

* gpt-4o, 1000 input / 500 output tokens;
* gpt-4o with new token counts on every call (12,288 different pairs, cycled), so no
  library's cache of a previous answer can serve it;
* claude-sonnet-4-5 with caching: 1000 fresh input, 5000 cache-read, 2000 cache-write
  tokens and 300 output;
* the gpt-4o calls again through ``spendgate.price`` with a ready ``Usage`` (one cost
  calculation: resolve, rate, itemize), which is what the gateway calls per request,
  and the cached Sonnet call likewise; with new counts, once with ready ``Usage``
  objects (a different one every call) and once building the ``Usage`` inside the call
  (``price("gpt-4o", Usage(input_tokens=p, output_tokens=c))``, what an SDK user writes).

Reported: the median, min and max over samples of the time per call, in µs, and each
library's median relative to spendgate's. The libraries we compare against are optional:
a missing one is reported as such, never faked.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable
from decimal import Decimal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network for LiteLLM's map

# New token counts on every call: three times as many pairs as the calculator's memo holds,
# so it can never serve one from a previous call.
_PAIRS = [(1000 + i, 500 + (i * 7) % 997) for i in range(3 * 4096)]


def _cycled() -> Callable[[], tuple[int, int]]:
    return itertools.cycle(_PAIRS).__next__


def _spendgate() -> dict[str, Callable[[], object]]:
    import spendgate
    from spendgate import Usage

    sonnet_usage = Usage(
        input_tokens=8000, cache_read_tokens=5000, cache_write_tokens=2000, output_tokens=300
    )
    expected = {"gpt-4o": Decimal("0.0075"), "sonnet": Decimal("0.0165")}
    got = {
        "gpt-4o": sum(spendgate.cost_per_token("gpt-4o", 1000, 500)),
        "sonnet": spendgate.price("claude-sonnet-4-5", sonnet_usage).total,
    }
    assert got == expected, got
    gpt_usage = Usage(input_tokens=1000, output_tokens=500)
    pair = _cycled()
    usages = itertools.cycle([Usage(input_tokens=p, output_tokens=c) for p, c in _PAIRS]).__next__

    def gpt_new() -> object:
        p, c = pair()
        return spendgate.cost_per_token("gpt-4o", p, c)

    built_pair = _cycled()

    def gpt_built() -> object:
        p, c = built_pair()
        return spendgate.price("gpt-4o", Usage(input_tokens=p, output_tokens=c))

    return {
        "gpt-4o": lambda: spendgate.cost_per_token("gpt-4o", 1000, 500),
        "gpt-4o price()": lambda: spendgate.price("gpt-4o", gpt_usage),
        "gpt-4o new": gpt_new,
        "gpt-4o new price()": lambda: spendgate.price("gpt-4o", usages()),
        "gpt-4o built price()": gpt_built,
        "sonnet": lambda: spendgate.cost_per_token(
            "claude-sonnet-4-5", 8000, 300, cache_read_input_tokens=5000, cache_creation_input_tokens=2000
        ),
        "sonnet price()": lambda: spendgate.price("claude-sonnet-4-5", sonnet_usage),
    }


def _genai_prices() -> dict[str, Callable[[], object]]:
    from genai_prices import Usage as GUsage
    from genai_prices import calc_price

    def gpt() -> object:
        return calc_price(
            GUsage(input_tokens=1000, output_tokens=500), model_ref="gpt-4o", provider_id="openai"
        )

    def sonnet() -> object:
        usage = GUsage(input_tokens=8000, cache_read_tokens=5000, cache_write_tokens=2000, output_tokens=300)
        return calc_price(usage, model_ref="claude-sonnet-4-5", provider_id="anthropic")

    pair = _cycled()

    def gpt_new() -> object:
        p, c = pair()
        return calc_price(GUsage(input_tokens=p, output_tokens=c), model_ref="gpt-4o", provider_id="openai")

    return {"gpt-4o": gpt, "gpt-4o new": gpt_new, "sonnet": sonnet}


def _litellm() -> dict[str, Callable[[], object]]:
    import litellm

    def gpt() -> object:
        return litellm.cost_per_token(model="gpt-4o", prompt_tokens=1000, completion_tokens=500)

    def sonnet() -> object:
        return litellm.cost_per_token(
            model="claude-sonnet-4-5",
            prompt_tokens=8000,
            completion_tokens=300,
            cache_read_input_tokens=5000,
            cache_creation_input_tokens=2000,
            custom_llm_provider="anthropic",
        )

    pair = _cycled()

    def gpt_new() -> object:
        p, c = pair()
        return litellm.cost_per_token(model="gpt-4o", prompt_tokens=p, completion_tokens=c)

    return {"gpt-4o": gpt, "gpt-4o new": gpt_new, "sonnet": sonnet}


def _sample(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - start) / calls / 1000  # µs per call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Short samples (200 calls: well under a millisecond for spendgate) and many of them: on
    # a shared machine a sample that spans a preemption is an outlier the median ignores,
    # while a long sample is inflated by it (2000-call samples read 3-5x slower at load 13).
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--calls", type=int, default=200, help="calls per sample")
    args = parser.parse_args()

    load_before = f"{os.getloadavg()[0]:.2f}"
    libraries: dict[str, dict[str, Callable[[], object]]] = {}
    for name, loader in (("spendgate", _spendgate), ("genai-prices", _genai_prices), ("litellm", _litellm)):
        try:
            libraries[name] = loader()
        except ImportError as exc:
            print(f"{name}: not installed ({exc.name}); run `make bench` to install the bench group")
    for fns in libraries.values():
        for fn in fns.values():
            _sample(fn, max(args.calls // 10, 10))  # warm caches and lazy loads

    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.samples):
        for lib, fns in libraries.items():
            for case, fn in fns.items():
                results.setdefault((lib, case), []).append(_sample(fn, args.calls))

    def nothing() -> None:
        return None

    call = statistics.median(_sample(nothing, args.calls * 10) for _ in range(5))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"calibration: an empty Python function call takes {call * 1000:.0f} ns here")
    print(f"{args.samples} samples × {args.calls} calls; µs per call\n")
    print(f"load average before / after: {load_before} / {os.getloadavg()[0]:.2f}")
    print(f"{'case':<21} {'library':<13} {'median':>9} {'min':>9} {'max':>9} {'vs spendgate':>13}")
    cases = ("gpt-4o", "gpt-4o price()", "gpt-4o new", "gpt-4o new price()", "gpt-4o built price()")
    for case in (*cases, "sonnet", "sonnet price()"):
        base = statistics.median(
            results[("spendgate", case.removesuffix(" price()").replace("built", "new"))]
        )
        for lib in libraries:
            if (lib, case) not in results:
                continue
            xs = results[(lib, case)]
            med = statistics.median(xs)
            print(f"{case:<21} {lib:<13} {med:9.2f} {min(xs):9.2f} {max(xs):9.2f} {med / base:12.1f}x")


if __name__ == "__main__":
    main()
