"""The gateway's routes and its ASGI front: the OpenAI API (each route also without
``/v1``), Anthropic's ``/v1/messages``, ``GET /v1/models``, LiteLLM's model info and
``/spend/calculate`` (:mod:`~spendgate.gateway.model_info`,
:mod:`~spendgate.gateway.spend_calculate`), and the files, batches and message batches
routes (:func:`batch_routes`).

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

from spendgate.gateway.batch_anthropic import MessageBatchesApi
from spendgate.gateway.batch_files import FilesApi
from spendgate.gateway.batch_openai import OpenAIBatchesApi
from spendgate.gateway.managed import BatchGateway
from spendgate.gateway.middleware import GatewayMiddleware, InFlight
from spendgate.gateway.model_info import ModelDirectory, ModelInfoApi
from spendgate.gateway.pipeline import Pipeline
from spendgate.gateway.spend_calculate import SpendCalculator
from spendgate.http.errors import render_error
from spendgate.providers.base import ENDPOINT_PATHS

__all__ = ["ENDPOINTS", "BatchesOf", "GatewayApp", "PipelineOf", "batch_routes", "gateway_routes"]

ENDPOINTS = {path.removeprefix("/v1"): name for name, path in ENDPOINT_PATHS.items()}
"""Route (after ``/v1``) → the pipeline's endpoint name."""

PipelineOf = Callable[[], Pipeline]
"""Finds the pipeline (built in the lifespan, after the routes)."""
BatchesOf = Callable[[], BatchGateway]
"""Finds the files and batches side (built in the lifespan, after the routes)."""


def gateway_routes(pipeline_of: PipelineOf, directory: ModelDirectory | None = None) -> list[Route]:
    """The inference routes and ``GET /v1/models``; with ``directory``, also ``GET
    /model/info`` (and ``/v1/model/info``), ``GET /model_group/info`` and ``POST
    /spend/calculate``."""
    routes: list[Route] = []
    for path, endpoint in ENDPOINTS.items():
        handler = _endpoint(pipeline_of, endpoint)
        routes.append(Route(f"/v1{path}", handler, methods=["POST"]))
        routes.append(Route(path, handler, methods=["POST"]))

    async def models(request: Request) -> Response:
        return await pipeline_of().list_models(request)

    for path in ("/v1/models", "/models"):
        routes.append(Route(path, models, methods=["GET"]))
    if directory is not None:
        info = ModelInfoApi(directory, lambda: pipeline_of().auth)
        for path in ("/model/info", "/v1/model/info"):
            routes.append(Route(path, info.model_info, methods=["GET"]))
        routes.append(Route("/model_group/info", info.model_group_info, methods=["GET"]))
        routes.append(
            Route("/spend/calculate", SpendCalculator(directory, pipeline_of).calculate, methods=["POST"])
        )
    return routes


def batch_routes(batches_of: BatchesOf) -> list[Route]:
    """The files, batches and message batches routes (each also without ``/v1``)."""
    table: list[tuple[str, str, Callable[[BatchGateway], Handler]]] = [
        ("/files", "POST", lambda gw: FilesApi(gw).upload),
        ("/files", "GET", lambda gw: FilesApi(gw).list),
        ("/files/{file_id}", "GET", lambda gw: FilesApi(gw).retrieve),
        ("/files/{file_id}", "DELETE", lambda gw: FilesApi(gw).delete),
        ("/files/{file_id}/content", "GET", lambda gw: FilesApi(gw).content),
        ("/batches", "POST", lambda gw: OpenAIBatchesApi(gw).create),
        ("/batches", "GET", lambda gw: OpenAIBatchesApi(gw).list),
        ("/batches/{batch_id}", "GET", lambda gw: OpenAIBatchesApi(gw).retrieve),
        ("/batches/{batch_id}/cancel", "POST", lambda gw: OpenAIBatchesApi(gw).cancel),
        ("/messages/batches", "POST", lambda gw: MessageBatchesApi(gw).create),
        ("/messages/batches", "GET", lambda gw: MessageBatchesApi(gw).list),
        ("/messages/batches/{batch_id}", "GET", lambda gw: MessageBatchesApi(gw).retrieve),
        ("/messages/batches/{batch_id}/cancel", "POST", lambda gw: MessageBatchesApi(gw).cancel),
        ("/messages/batches/{batch_id}/results", "GET", lambda gw: MessageBatchesApi(gw).results),
    ]
    by_path: dict[str, dict[str, Handler]] = {}
    for path, method, handler_of in table:
        by_path.setdefault(path, {})[method] = _batch_handler(batches_of, handler_of)
    routes: list[Route] = []
    for path, handlers in by_path.items():
        handle = _by_method(handlers)
        routes.append(Route(f"/v1{path}", handle, methods=list(handlers)))
        routes.append(Route(path, handle, methods=list(handlers)))
    return routes


Handler = Callable[[Request], Awaitable[Response]]


def _batch_handler(batches_of: BatchesOf, handler_of: Callable[[BatchGateway], Handler]) -> Handler:
    async def handle(request: Request) -> Response:
        return await handler_of(batches_of())(request)

    return handle


def _by_method(handlers: dict[str, Handler]) -> Handler:
    async def handle(request: Request) -> Response:
        return await handlers[request.method](request)

    return handle


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
        pipeline = self._pipeline_of()
        try:
            response = await pipeline.handle(request, endpoint)
        except Exception as exc:
            if pipeline.metrics is not None:
                status = render_error(exc, budget_status=self._http.budget_exceeded_status)[0]
                pipeline.metrics.failed(endpoint, status, type(exc).__name__)
            raise
        await response(scope, receive, send)
