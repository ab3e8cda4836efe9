"""Helpers for tests/gateway/test_gateway_batches.py: batch input lines, the gateway's
managed-objects table and ledger read straight from its SQLite file, a key's budget window
in exact nano-USD, and "run poll cycles until this batch is billed"."""

from __future__ import annotations

import json
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
from gateway_helpers import MASTER_KEY

from spendgate.core.keys import hash_key

__all__ = [
    "batch_row",
    "error_of",
    "jsonl",
    "key_window",
    "keys_rows",
    "line",
    "managed_rows",
    "settle",
    "status_of",
    "to_nanos",
]

NANOS_PER_USD = 10**9


def line(
    custom_id: str,
    *,
    model: str = "gpt-4o",
    max_tokens: int = 8,
    words: int = 1,
    method: str = "POST",
    url: str = "/v1/chat/completions",
) -> dict[str, Any]:
    """One OpenAI batch input line (a chat completion; its prompt ``words`` words long)."""
    body = {"model": model, "messages": [{"role": "user", "content": "w " * words}], "max_tokens": max_tokens}
    return {"custom_id": custom_id, "method": method, "url": url, "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in lines)


def to_nanos(usd: Decimal | str) -> int:
    """Exact USD (a JSON number read as Decimal, or header text) → integer nano-USD."""
    value = Decimal(usd) * NANOS_PER_USD
    assert value == value.to_integral_value(), usd
    return int(value)


def key_window(http: httpx.Client, raw_key: str) -> tuple[int, int]:
    """(spend, reserved) of the key's own budget window, in nano-USD, from /budget/explain
    (its JSON numbers are exact; read them as Decimal, never float)."""
    r = http.post("/budget/explain", json={"key": raw_key})
    assert r.status_code == 200, r.text
    body = json.loads(r.text, parse_float=Decimal)
    [window] = [w for w in body["windows"] if w["scope_type"] == "key"]
    return to_nanos(Decimal(window["spend"])), to_nanos(Decimal(window["reserved"]))


def managed_rows(db: Path, where: str = "1=1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        query = f"SELECT * FROM managed_objects WHERE {where} ORDER BY created_at, id"  # noqa: S608
        return [dict(r) for r in conn.execute(query, params)]


def batch_row(db: Path, batch_id: str) -> dict[str, Any]:
    [row] = managed_rows(db, "id = ?", (batch_id,))
    return row


def keys_rows(db: Path, raw_key: str, kind: str) -> list[dict[str, Any]]:
    return managed_rows(db, "api_key = ? AND kind = ?", (hash_key(raw_key), kind))


def settle(http: httpx.Client, db: Path, batch_id: str, timeout: float = 20) -> dict[str, Any]:
    """Run batch-cost poll cycles (``POST /batches/poll``, master key) until the batch's row
    is settled; return the row."""
    deadline = time.monotonic() + timeout
    while True:
        r = http.post("/batches/poll", headers={"authorization": f"Bearer {MASTER_KEY}"})
        assert r.status_code == 200, r.text
        row = batch_row(db, batch_id)
        if row["settled_at"] is not None:
            return row
        assert time.monotonic() < deadline, f"batch {batch_id} was not settled: {row}"
        time.sleep(0.05)


def error_of(exc: Any) -> dict[str, Any]:
    """The error object of an SDK status error (OpenAI shape, or Anthropic's
    ``{"type": "error", "error": {...}}``)."""
    body: Any = exc.body
    while isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    assert isinstance(body, dict), body
    return body


def status_of(call: Any) -> int:
    """The HTTP status an SDK call ends with (200 when it returns)."""
    try:
        call()
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        return exc.status_code
    return 200
