"""How the management commands talk to a running gateway: one HTTP call per command.

``transport`` can be replaced (tests point it at the admin app with
``httpx.ASGITransport``). USD amounts are sent and read as exact decimals: a
``--max-budget 0.1`` goes out as the JSON number ``0.1``, never through a float.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import httpx
import orjson
import typer

from spendgate.cli._output import console, fail

__all__ = [
    "DEFAULT_URL",
    "JsonOpt",
    "KeyOpt",
    "UrlOpt",
    "call",
    "parse_usd",
    "print_json",
    "show_usd",
]

DEFAULT_URL = "http://127.0.0.1:4000"

transport: httpx.AsyncBaseTransport | None = None
"""Replaced in tests; ``None`` uses the network."""

UrlOpt = Annotated[str, typer.Option("--url", envvar="SPENDGATE_URL", help="The gateway's base URL.")]
KeyOpt = Annotated[
    str | None,
    typer.Option("--master-key", envvar="SPENDGATE_MASTER_KEY", help="The master key (or an admin's key)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON answer instead of a table.")]


def parse_usd(text: str | None, option: str) -> Decimal | None:
    """A USD amount from the command line, exactly; ``none``/``unlimited`` is None."""
    if text is None or text.strip().lower() in ("none", "null", "unlimited"):
        return None
    try:
        value = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        fail(f"{option}: {text!r} is not a number of USD")
    if not value.is_finite() or value < 0:
        fail(f"{option}: must be a number >= 0")
    return value


def _exact(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(f"{value:f}".encode())
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value


def print_json(data: Any) -> None:
    console.print_json(orjson.dumps(_exact(data)).decode(), highlight=False)


def show_usd(value: Any) -> str:
    """A USD amount for a table: ``$10``, ``$0.000001``, or ``unlimited``."""
    if value is None:
        return "unlimited"
    return f"${Decimal(value).normalize():f}" if isinstance(value, Decimal | int) else f"${value}"


def call(
    url: str,
    master_key: str | None,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    """One request to the management API; exits with the server's message on an error."""
    if not master_key:
        fail("no key: pass --master-key or set SPENDGATE_MASTER_KEY")
    clean_params = {k: v for k, v in (params or {}).items() if v is not None}

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30.0) as client:
            return await client.request(
                method,
                path,
                content=orjson.dumps(_exact(body)) if body is not None else None,
                params=clean_params or None,
                headers={"authorization": f"Bearer {master_key}", "content-type": "application/json"},
            )

    try:
        response = asyncio.run(send())
    except httpx.HTTPError as exc:
        fail(f"cannot reach the gateway at {url}: {exc}")
    try:
        data = json.loads(response.text, parse_float=Decimal) if response.text else None
    except json.JSONDecodeError:
        fail(f"{method} {path}: HTTP {response.status_code}, not a JSON answer")
    if response.status_code >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else response.text[:300]
        fail(f"{method} {path}: HTTP {response.status_code}: {message}", code=1)
    return data
