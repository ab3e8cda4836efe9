"""The gateway's own CPU per request, in process: no sockets, no load generator, no mock server.

The ASGI app is driven directly by an httpx ASGI client; the upstream is an httpx
``MockTransport`` answering a fixed chat completion with usage, and spend events go to a
list. What is left is the gateway's request path itself (middleware, authentication, scope
resolution, admission on in-process counters, routing, metering, pricing, settlement,
recording) plus the ASGI client's own cost, which is the same for every tree measured.

    python bench/request_path.py                       # this tree
    PYTHONPATH=/tmp/sg-base/src python bench/request_path.py   # an older tree (git worktree)
    python bench/request_path.py --requests 5000 --key virtual

``--key master`` sends the master key (no entity look-ups); ``--key virtual`` creates a
virtual key with a daily budget and a rate limit through the management API first, so every
request also reserves and settles against the key's counters (entities cached). Prints one
line: requests, seconds, microseconds per request. Compare trees in one sitting,
alternating, and quote ratios (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

try:  # the composition root (since #11); older trees built the app in the gateway package
    from spendgate.server import build_app
except ImportError:  # pragma: no cover - older trees
    from spendgate.gateway import build_app  # type: ignore[attr-defined,no-redef]
from spendgate.config import parse_config

MASTER = "sk-bench"
BODY = orjson.dumps(
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello, how are you?"}], "max_tokens": 5}
)
ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16},
    }
)


class _Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def record(self, event: Any) -> None:
        self.events.append(event)


def _upstream(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=ANSWER, headers={"content-type": "application/json"})


async def _run(requests: int, key_kind: str, warmup: int) -> tuple[int, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(
            {
                "model_list": [
                    {
                        "model_name": "gpt-4o",
                        "litellm_params": {"model": "openai/gpt-4o", "api_base": "http://up/v1"},
                    }
                ],
                "general_settings": {
                    "master_key": MASTER,
                    "database_url": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
                    "key_cache_ttl_seconds": 3600,
                },
                "router_settings": {"num_retries": 0},
            },
            environ={},
        )
        sink = _Sink()
        upstream = httpx.MockTransport(_upstream)
        app: Any = build_app(config, transport=upstream, recorder_factory=lambda engine: sink)
        async with app.starlette.router.lifespan_context(app.starlette):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                token = MASTER
                if key_kind == "virtual":
                    made = await client.post(
                        "/key/generate",
                        json={"max_budget": 1000, "budget_duration": "1d", "rpm_limit": 10_000_000},
                        headers={"authorization": f"Bearer {MASTER}"},
                    )
                    token = made.json()["key"]
                headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

                async def one() -> None:
                    response = await client.post("/v1/chat/completions", content=BODY, headers=headers)
                    if response.status_code != 200:
                        raise SystemExit(f"unexpected {response.status_code}: {response.text}")

                for _ in range(warmup):
                    await one()
                started = time.perf_counter()
                for _ in range(requests):
                    await one()
                elapsed = time.perf_counter() - started
        return requests, elapsed, len(sink.events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--key", choices=("master", "virtual"), default="master")
    args = parser.parse_args()
    n, elapsed, recorded = asyncio.run(_run(args.requests, args.key, args.warmup))
    if recorded != n + args.warmup:
        raise SystemExit(f"recorded {recorded} events for {n + args.warmup} requests")
    print(f"{args.key} key: {n} requests in {elapsed:.3f} s: {elapsed / n * 1e6:.1f} us/request")


if __name__ == "__main__":
    main()
