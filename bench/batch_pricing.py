"""Benchmark: pricing a batch's output file, streamed from disk (issue #12).

    python bench/batch_pricing.py                        # 50,000 and 200,000 lines
    python bench/batch_pricing.py --lines 50000 --runs 7 --variety repeated

Generates an OpenAI batch output file into a temporary directory with the mock provider's
own answer builder (``chat_completion_payload``, the bodies its batches write), then prices
it the way the batch-cost poller does: ``spendgate.batches.price_output`` over the file
read in 64 KiB blocks, each line priced by the deployment at the ``batch`` tier, at a fixed
time (``batch_price_line(deployment, at)``, what the poller passes).

``--variety distinct`` (the default) gives nearly every line a usage of its own, as a real
batch of different prompts has (prompt 20–4,000 tokens, completion 1–800, a third of the
lines with cached tokens), so the pricer's memo of (model, usage) → price rarely hits;
``repeated`` draws the usages from 200 values (a classification batch with short fixed
answers) to show the memo when it does.

Reported per size: the median (min–max) over ``--runs`` of lines per second, wall-clock
and CPU (``time.process_time``, less sensitive to a busy machine), with the memo on and
off; and the peak of Python memory allocated while pricing (``tracemalloc``, a separate
run: tracing slows the run down). The bill is checked against the lines priced one by one
on the first size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from spendgate.batches import BatchTotals, batch_price_line, price_output
from spendgate.config import parse_config
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.usage.detect import usage_from_response
from spendgate.core.usage.model import Usage
from spendgate.costs import default_price_book
from spendgate.gateway.deployments import Deployment, build_deployments
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.openai_api import chat_completion_payload
from spendgate.providers.mock.options import MockOptions

MODEL = "gpt-4o-mini"
AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
BLOCK = 64 * 1024


def _deployment() -> Deployment:
    config = parse_config(
        {"model_list": [{"model_name": MODEL, "litellm_params": {"model": f"openai/{MODEL}"}}]}
    )
    return build_deployments(config, default_price_book())[0]


def _price_line(deployment: Deployment) -> Callable[[str, Usage], CostBreakdown]:
    return batch_price_line(deployment, AT)


def generate(path: Path, lines: int, variety: str, seed: int = 12) -> None:
    """Write ``lines`` output lines to ``path`` (streamed: the file is never in memory)."""
    rng = random.Random(seed)
    options = MockOptions()
    shapes = [(rng.randint(20, 4000), rng.randint(1, 800), rng.random() < 0.33) for _ in range(200)]
    with path.open("wb") as out:
        for i in range(lines):
            if variety == "repeated":
                prompt, completion, cached = shapes[rng.randrange(len(shapes))]
            else:
                prompt, completion, cached = rng.randint(20, 4000), rng.randint(1, 800), rng.random() < 0.33
            text = "word " * max(1, (prompt - 4) * 4 // 5)
            body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": completion}
            controls = Controls(cached_tokens=(prompt // 2 // 128) * 128 if cached else 0)
            answer = chat_completion_payload(body, controls, options)
            response = {"status_code": 200, "request_id": f"req_{i:08d}", "body": answer}
            record = {
                "id": f"batch_req_{i:08d}",
                "custom_id": f"request-{i}",
                "response": response,
                "error": None,
            }
            out.write(orjson.dumps(record))
            out.write(b"\n")


async def _blocks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb", buffering=0) as f:
        while block := f.read(BLOCK):
            yield block


def price_file(path: Path, price_line: Callable[[str, Usage], CostBreakdown], memoize: bool) -> BatchTotals:
    return asyncio.run(price_output(_blocks(path), price_line, api="openai", memoize=memoize))


def check(path: Path, totals: BatchTotals, deployment: Deployment) -> None:
    """The bill equals the lines priced one by one (independently of the pricer)."""
    expected = 0
    with path.open("rb") as f:
        for line in f:
            usage = usage_from_response(orjson.loads(line)["response"]["body"])
            expected += deployment.price(usage, AT, served_tier="batch").total_nanos
    assert totals.cost_nanos == expected, (totals.cost_nanos, expected)


def measure(
    path: Path, lines: int, runs: int, price_line: Callable[[str, Usage], CostBreakdown]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for memoize in (True, False):
        wall: list[float] = []
        cpu: list[float] = []
        for _ in range(runs):
            w0, c0 = time.perf_counter(), time.process_time()
            totals = price_file(path, price_line, memoize)
            wall.append(lines / (time.perf_counter() - w0))
            cpu.append(lines / (time.process_time() - c0))
            assert totals.lines_ok == lines
        result["on" if memoize else "off"] = (wall, cpu)
    tracemalloc.start()
    tracemalloc.reset_peak()
    price_file(path, price_line, True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result["peak"] = peak
    return result


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--variety", choices=["distinct", "repeated"], default="distinct")
    args = parser.parse_args()

    deployment = _deployment()
    price_line = _price_line(deployment)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"{python}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    print(f"variety: {args.variety}; {args.runs} runs per case; lines/s as median (min–max)")
    print(
        "lines      MB   distinct  memo on: wall / cpu"
        + " " * 17
        + "memo off: wall / cpu"
        + " " * 16
        + "peak"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n, lines in enumerate(args.lines):
            path = Path(tmp) / f"output-{lines}.jsonl"
            generate(path, lines, args.variety)
            totals = price_file(path, price_line, memoize=True)
            if n == 0:
                check(path, totals, deployment)
            distinct = _distinct(path)
            result = measure(path, lines, args.runs, price_line)
            on_wall, on_cpu = result["on"]
            off_wall, off_cpu = result["off"]
            print(
                f"{lines:<9,} {path.stat().st_size / 1e6:5.0f}  {distinct:8,}  "
                f"{_fmt(on_wall)} / {_fmt(on_cpu)}   {_fmt(off_wall)} / {_fmt(off_cpu)}   "
                f"{result['peak'] / 1e6:.2f} MB"
            )
            path.unlink()
    print(f"load after: {os.getloadavg()}")


def _distinct(path: Path) -> int:
    seen: set[bytes] = set()
    with path.open("rb") as f:
        for line in f:
            seen.add(orjson.dumps(orjson.loads(line)["response"]["body"]["usage"]))
    return len(seen)


if __name__ == "__main__":
    main()
