"""Helpers for the budget and rate-limit tests through the real gateway.

The model ``cent`` is priced $0 per input token and $0.0001 per output token. The mock
returns exactly ``max_tokens`` completion tokens, so a call with ``max_tokens=100`` costs
100 × $0.0001 = **$0.01**, and its worst case (reserved at admission: the declared cap at
the output rate, the prompt at $0) is the same $0.01.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import openai
from gateway_helpers import MASTER_KEY, make_config

from spendgate.config import GatewayConfig

__all__ = [
    "ADMIN",
    "CENT",
    "MESSAGES",
    "Admin",
    "ClientFactory",
    "add_tag_budget",
    "cent_call",
    "clients_of",
    "error_of",
    "limits_config",
]

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
"""Prompt: 4 + ceil(2 / 4) = 5 tokens (the mock's formula and the gateway's estimate)."""
ClientFactory = Callable[..., openai.AsyncOpenAI]
CENT = 10_000_000
"""$0.01 in nano-USD: the cost of one ``cent_call``."""


def limits_config(mock_base_url: str, tmp: Path, **general: Any) -> GatewayConfig:
    models = [
        {
            "model_name": "cent",
            "litellm_params": {
                "model": "openai/cent-model",
                "api_base": mock_base_url,
                "input_cost_per_token": "0",
                "output_cost_per_token": "0.0001",
            },
        },
        {
            # Its own upstream key, so the mock's per-key in-flight gauge is this model's.
            "model_name": "cent-parallel",
            "litellm_params": {
                "model": "openai/cent-model",
                "api_base": mock_base_url,
                "api_key": "sk-upstream-parallel",
                "input_cost_per_token": "0",
                "output_cost_per_token": "0.0001",
            },
        },
    ]
    settings = {k: general.pop(k) for k in list(general) if k.startswith("litellm__")}
    return make_config(
        mock_base_url,
        tmp / "limits.db",
        tmp / "journal",
        model_list=models,
        router_settings={"fallbacks": []},
        general_settings={"key_cache_ttl_seconds": 60, **general},
        litellm_settings={k.removeprefix("litellm__"): v for k, v in settings.items()},
    )


class Admin:
    """The management API of a running gateway."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, headers=ADMIN, timeout=30)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(path, json=body)
        assert r.status_code == 200, (path, r.status_code, r.text)
        out: dict[str, Any] = r.json()
        return out

    def key(self, **fields: Any) -> str:
        return str(self.post("/key/generate", fields)["key"])

    def explain(self, key: str, **fields: Any) -> dict[str, Any]:
        return self.post("/budget/explain", {"key": key, **fields})

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def add_tag_budget(db: Path, tag: str, max_budget_nanos: int, duration: str | None = "1d") -> None:
    """A tag with a budget profile (there is no /tag endpoint yet): straight into the tables."""
    now = datetime.now(UTC).isoformat()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO budgets (budget_id, max_budget_nanos, budget_duration, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (f"tag-{tag}", max_budget_nanos, duration, now, now),
        )
        conn.execute(
            "INSERT INTO tags (tag_name, budget_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
            (tag, f"tag-{tag}", now, now),
        )


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    body: Any = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    assert isinstance(body, dict), body
    return body


async def cent_call(
    client: openai.AsyncOpenAI, model: str = "cent", **extra: Any
) -> tuple[int, dict[str, Any], Any]:
    """One $0.01 call: (status, error body or {}, response headers)."""
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, max_tokens=100, **extra
        )
    except openai.APIStatusError as exc:
        return exc.status_code, error_of(exc), exc.response.headers
    return raw.http_response.status_code, {}, raw.http_response.headers


@asynccontextmanager
async def clients_of(base_url: str) -> AsyncIterator[ClientFactory]:
    """A factory of openai clients on ``base_url`` (the gateway's ``/v1``) for any key,
    all closed on exit."""
    clients: list[openai.AsyncOpenAI] = []

    def make(key: str) -> openai.AsyncOpenAI:
        c = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=60)
        clients.append(c)
        return c

    try:
        yield make
    finally:
        for c in clients:
            await c.close()


async def burst(n: int, make: Any) -> list[Any]:
    return list(await asyncio.gather(*(make(i) for i in range(n))))
