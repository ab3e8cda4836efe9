"""The gateway's routes and its ASGI front: the OpenAI API (each route also without
``/v1``), Anthropic's ``/v1/messages`` and ``GET /v1/models``.

The composition root (:mod:`spendgate.server`) builds the :class:`Pipeline` in its lifespan
and mounts these routes beside the management API's; :class:`GatewayApp` is the app it
serves: every HTTP request goes through :class:`GatewayMiddleware` (request id, headers,
errors), then the inference routes go straight to the pipeline with one dict look-up and
everything else (lifespan, health, models, management, 404 and 405) through Starlette.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from spendgate.gateway.middleware import GatewayMiddleware, InFlight
from spendgate.gateway.pipeline import Pipeline

__all__ = ["ENDPOINTS", "GatewayApp", "PipelineOf", "gateway_routes"]

ENDPOINTS = {
    "/chat/completions": "chat",
    "/completions": "completions",
    "/embeddings": "embeddings",
    "/responses": "responses",
    "/images/generations": "images",
    "/audio/transcriptions": "transcriptions",
    "/audio/speech": "speech",
    "/messages": "messages",
}
"""Route (after ``/v1``) → the pipeline's endpoint name."""

PipelineOf = Callable[[], Pipeline]
"""Finds the pipeline (built in the lifespan, after the routes)."""


def gateway_routes(pipeline_of: PipelineOf) -> list[Route]:
    """The inference routes and ``GET /v1/models``."""
    routes: list[Route] = []
    for path, endpoint in ENDPOINTS.items():
        handler = _endpoint(pipeline_of, endpoint)
        routes.append(Route(f"/v1{path}", handler, methods=["POST"]))
        routes.append(Route(path, handler, methods=["POST"]))

    async def models(request: Request) -> Response:
        return await pipeline_of().list_models(request)

    for path in ("/v1/models", "/models"):
        routes.append(Route(path, models, methods=["GET"]))
    return routes


def _endpoint(pipeline_of: PipelineOf, endpoint: str) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        return await pipeline_of().handle(request, endpoint)

    handle.__name__ = f"handle_{endpoint}"
    return handle


class GatewayApp:
    """The served ASGI app (see the module docstring)."""

    def __init__(
        self,
        starlette: Starlette,
        pipeline_of: PipelineOf,
        *,
        budget_exceeded_status: int = 429,
        in_flight: InFlight | None = None,
    ) -> None:
        self.starlette = starlette
        self.state = starlette.state
        self._pipeline_of = pipeline_of
        self._http = GatewayMiddleware(
            self._dispatch, budget_exceeded_status=budget_exceeded_status, in_flight=in_flight
        )
        self._routes = {f"{prefix}{path}": name for path, name in ENDPOINTS.items() for prefix in ("/v1", "")}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        else:
            await self.starlette(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._routes.get(scope["path"]) if scope["method"] == "POST" else None
        if endpoint is None:
            await self.starlette(scope, receive, send)
            return
        request = Request(scope, receive)
        response = await self._pipeline_of().handle(request, endpoint)
        await response(scope, receive, send)
