"""The dashboard's only way to data: the management and spend API, called in process.

Each request builds a client on the gateway's own Starlette app (httpx's ASGI transport,
no socket) with the signed-in key as the bearer, so the API's role rules apply unchanged
and the dashboard has no queries of its own. Bodies are parsed with ``Decimal`` for every
JSON number with a fraction: money stays exact from the ledger to the page.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
from starlette.types import ASGIApp

__all__ = ["ApiClient", "ApiError"]


class ApiError(Exception):
    """The API refused: its status and message become the error page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ApiClient:
    """One signed-in person's calls to the API (``async with``)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self._app = app
        self._key = key
        self._client = self._new_client()

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self._app),
            base_url="http://spendgate",
            headers={"Authorization": f"Bearer {self._key}"},
            timeout=60,
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return _parsed(await self._client.get(path, params=_clean(params)))

    async def get_page(self, path: str, params: dict[str, Any], header: str) -> tuple[Any, str | None]:
        """A GET's parsed body and the value of one response ``header`` (a next-page cursor)."""
        response = await self._client.get(path, params=_clean(params))
        return _parsed(response), response.headers.get(header)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return _parsed(await self._client.post(path, json=body))

    async def text(self, path: str, params: dict[str, Any] | None = None) -> str:
        """A text answer (the CSV exports)."""
        response = await self._client.get(path, params=_clean(params))
        if response.status_code >= 400:
            _parsed(response)
        return response.text

    async def stream(self, path: str, params: dict[str, Any]) -> tuple[httpx.Response, AsyncIterator[bytes]]:
        """A streamed answer (a download) on its own client, which outlives this one: the
        body is passed on chunk by chunk and the client closed when it ends."""
        client = self._new_client()
        response = await client.send(client.build_request("GET", path, params=_clean(params)), stream=True)
        if response.status_code >= 400:
            await response.aread()
            await client.aclose()
            _parsed(response)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()
                await client.aclose()

        return response, body()


def _clean(params: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if params is None else {k: v for k, v in params.items() if v not in (None, "")}


def _parsed(response: httpx.Response) -> Any:
    try:
        body = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        body = None
    if response.status_code >= 400:
        message = response.reason_phrase
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message") or message)
        raise ApiError(response.status_code, message)
    return body
