"""``/v1/messages/batches``: Anthropic message batches created, read, cancelled, listed and
their results streamed through the gateway.

The requests come inline, so creating one is one step: every request is checked
(:func:`~spendgate.batches.requests.parse_anthropic_requests`; a bad one is a 400 naming it
and its field), the batch goes to an ``anthropic`` deployment of the model group its
requests name (each ``params.model`` rewritten to the deployment's own), its worst case is
reserved at every budget before the provider sees it, and its row is written with the
reservation — the same order and the same undo as an OpenAI batch
(:mod:`.batch_openai`). Retrieves never bill; the batch-cost poller bills it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from spendgate.batches.requests import line_worst_case, line_worst_tokens, parse_anthropic_requests
from spendgate.batches.settlement import provider_counts
from spendgate.batches.store import ManagedObjectRepository, new_object_id
from spendgate.gateway.batch_files import limit_param
from spendgate.gateway.batch_openai import settled_headers
from spendgate.gateway.batch_views import anthropic_batch_view, page_view
from spendgate.gateway.managed import BatchGateway, cursor_param, json_object, json_response, owned_by, relay
from spendgate.http.errors import InvalidField
from spendgate.stores.database.models import ManagedObject

__all__ = ["MessageBatchesApi"]


class MessageBatchesApi:
    """The ``/v1/messages/batches`` handlers (mounted by
    :func:`~spendgate.gateway.routes.batch_routes`)."""

    def __init__(self, gateway: BatchGateway) -> None:
        self.gw = gateway

    async def create(self, request: Request) -> Response:
        """``POST /v1/messages/batches``."""
        gw = self.gw
        caller = await gw.caller(request)
        body = await json_object(request, gw.settings.max_file_bytes)
        router = gw.pipeline.router
        requests = parse_anthropic_requests(
            body.get("requests"),
            may_use=caller.principal.may_use,
            groups=lambda g: router.group(g) is not None,
        )
        group = requests[0].model_group
        deployment = gw.pick(group, "anthropic", "requests")
        model = deployment.target.model
        sent = [{"custom_id": r.custom_id, "params": {**r.body, "model": model}} for r in requests]
        default_output = gw.settings.default_output_tokens
        worst = sum(line_worst_case(deployment, r, default_output) for r in requests)
        tokens = sum(line_worst_tokens(deployment, r, default_output) for r in requests)
        resolved = await gw.resolve(caller, group)
        batch_id = new_object_id("batch", "anthropic")
        reservation = await gw.reserve(batch_id, resolved, deployment, worst, tokens)
        upstream = gw.upstream(deployment)
        row = ManagedObject(
            id=batch_id,
            kind="batch",
            api="anthropic",
            deployment_id=deployment.id,
            model_group=group,
            purpose="batch",
            endpoint="/v1/messages",
            status="in_progress",
            requests_total=len(requests),
            reservation=None if reservation is None else reservation.to_json(),
            reserved_nanos=worst if reservation is None else reservation.reserved_nanos,
            **owned_by(caller.principal, resolved.scopes),
        )
        forwarded = gw.forwarded(caller, "anthropic")
        created = await gw.open_batch(
            row,
            reservation,
            lambda: upstream.create_message_batch(sent, headers=forwarded),
            upstream.cancel_message_batch,
        )
        return json_response(anthropic_batch_view(row, _base(request), created))

    async def retrieve(self, request: Request) -> Response:
        """``GET /v1/messages/batches/{batch_id}``."""
        gw = self.gw
        caller = await gw.caller(request)
        row = await gw.visible(caller, request.path_params["batch_id"], "batch", "anthropic")
        upstream = gw.upstream(gw.deployment_of(row))
        forwarded = gw.forwarded(caller, "anthropic")
        provider = await gw.fetch(
            row, lambda provider_id: upstream.retrieve_message_batch(provider_id, headers=forwarded)
        )
        if provider is not None:
            await _observe(gw, row, provider)
        return json_response(anthropic_batch_view(row, _base(request), provider), settled_headers(row))

    async def cancel(self, request: Request) -> Response:
        """``POST /v1/messages/batches/{batch_id}/cancel``."""
        gw = self.gw
        caller = await gw.caller(request)
        row = await gw.visible(caller, request.path_params["batch_id"], "batch", "anthropic", manage=True)
        provider = await gw.upstream(gw.deployment_of(row)).cancel_message_batch(
            row.provider_id or "", headers=gw.forwarded(caller, "anthropic")
        )
        await _observe(gw, row, provider)
        return json_response(anthropic_batch_view(row, _base(request), provider), settled_headers(row))

    async def results(self, request: Request) -> Response:
        """``GET /v1/messages/batches/{batch_id}/results`` (JSONL), streamed from the
        batch's deployment."""
        gw = self.gw
        caller = await gw.caller(request)
        row = await gw.visible(caller, request.path_params["batch_id"], "batch", "anthropic")
        stream = gw.upstream(gw.deployment_of(row)).message_batch_results(
            row.provider_id or "", headers=gw.forwarded(caller, "anthropic")
        )
        return await relay(stream, "application/binary")

    async def list(self, request: Request) -> Response:
        """``GET /v1/messages/batches`` (``limit`` 1–1000, ``after_id`` or ``before_id``):
        newest first, from the rows."""
        caller = await self.gw.caller(request)
        params = request.query_params
        after, before = cursor_param(params.get("after_id")), cursor_param(params.get("before_id"))
        if after and before:
            raise InvalidField("give after_id or before_id, not both", param="before_id")
        limit = limit_param(params.get("limit"), default=20, most=1000)
        async with self.gw.sessions() as session:
            page = await ManagedObjectRepository(session).list_visible(
                "batch",
                api="anthropic",
                after=before or after,
                order="asc" if before else "desc",
                limit=limit,
                **caller.viewer.visibility(),
            )
        rows = list(reversed(page.objects)) if before else list(page.objects)
        data = [anthropic_batch_view(row, _base(request)) for row in rows]
        return json_response(page_view(data, page.has_more, openai=False))


async def _observe(gw: BatchGateway, row: ManagedObject, provider: Mapping[str, Any]) -> None:
    """Write what the provider says on the row (never a bill)."""
    async with gw.sessions() as session:
        await ManagedObjectRepository(session).update_status(
            row.id,
            status=str(provider.get("processing_status") or row.status),
            now=datetime.now(UTC),
            counts=provider_counts("anthropic", provider),
        )
        await session.commit()


def _base(request: Request) -> str:
    return str(request.base_url)
