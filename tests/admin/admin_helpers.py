"""Helpers for the management API tests: a client over ASGI, a migrated SQLite template."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.admin import build_admin_app

MASTER = "sk-master-key-for-tests"


class Api:
    """A thin client: every call returns ``(status, json)``; JSON numbers read as Decimal."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        key: str | None = MASTER,
        content: bytes | None = None,
    ) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        response = await self.client.request(
            method,
            path,
            json=body if content is None else None,
            content=content,
            params=params,
            headers=headers,
        )
        return response.status_code, json.loads(response.text, parse_float=Decimal) if response.text else None

    async def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body if body is not None else {}, **kw)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kw)

    async def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, data = await self.call(method, path, body, **kw)
        assert status == 200, (status, data)
        return data


def admin_client(engine: AsyncEngine) -> httpx.AsyncClient:
    app = build_admin_app(engine, MASTER)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin")


def copy_database(template: Path, target: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        source = template.with_name(template.name + suffix)
        if source.exists():
            shutil.copy(source, target.with_name(target.name + suffix))
    return f"sqlite+aiosqlite:///{target}"
