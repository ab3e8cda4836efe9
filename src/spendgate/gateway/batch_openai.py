"""``/v1/batches``: OpenAI batches created, read, cancelled and listed through the gateway.

Creating a batch, in order: the input file must be one the key may see; the batch's scopes
and their limits are resolved as for a live call; the file's worst case (stored when it was
uploaded) is **reserved** at every budget, all or nothing, for the batch's whole life — a
batch that does not fit is refused with the budget error before the provider sees it; then
the batch is created at the file's deployment and its row written with the reservation.
If the provider refuses, the reservation is given back; if the row cannot be written, the
batch is cancelled at the provider and the reservation given back.

A retrieve asks the provider, writes what it says on the row (status, counts, file ids) and
answers with the managed ids. It never bills: the batch-cost poller does, once. A settled
batch's answer carries its bill in ``x-spendgate-response-cost``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from spendgate.batches.settlement import provider_counts
from spendgate.batches.store import ManagedObjectRepository, new_object_id
from spendgate.gateway.batch_files import limit_param
from spendgate.gateway.batch_views import derived_file_id, openai_batch_view, page_view
from spendgate.gateway.managed import BatchGateway, cursor_param, json_object, json_response, owned_by
from spendgate.http.errors import InvalidField, MalformedRequest, PermissionDenied
from spendgate.http.headers import RESPONSE_COST, cost_text
from spendgate.stores.database.models import ManagedObject

__all__ = ["OpenAIBatchesApi", "settled_headers"]

_CREATE_BODY_BYTES = 1024 * 1024


class OpenAIBatchesApi:
    """The ``/v1/batches`` handlers (mounted by :func:`~spendgate.gateway.routes.batch_routes`)."""

    def __init__(self, gateway: BatchGateway) -> None:
        self.gw = gateway

    async def create(self, request: Request) -> Response:
        """``POST /v1/batches``."""
        gw = self.gw
        caller = await gw.caller(request)
        body = await json_object(request, _CREATE_BODY_BYTES)
        file_id = _text(body, "input_file_id")
        endpoint = _text(body, "endpoint")
        window = body.get("completion_window", "24h")
        if window != "24h":
            raise InvalidField("completion_window must be '24h'", param="completion_window")
        metadata = body.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())
        ):
            raise InvalidField("metadata must be an object of strings", param="metadata")
        source = await gw.visible(caller, file_id, "file", "openai")
        if source.purpose != "batch" or not source.provider_id:
            raise InvalidField(f"file {file_id!r} is not a batch input file", param="input_file_id")
        group = source.model_group or ""
        if not caller.principal.may_use(group):  # the batch is billed to this key: its models rule
            raise PermissionDenied(f"this key may not use model {group!r}", param="input_file_id")
        if endpoint != source.endpoint:
            raise InvalidField(
                f"the lines of {file_id!r} are for {source.endpoint!r}, not {endpoint!r}", param="endpoint"
            )
        deployment = gw.deployment_of(source)
        resolved = await gw.resolve(caller, group)
        batch_id = new_object_id("batch", "openai")
        tokens = int((source.metadata_ or {}).get("worst_case_tokens", 0))
        reservation = await gw.reserve(batch_id, resolved, deployment, source.reserved_nanos, tokens)
        upstream = gw.upstream(deployment)
        row = ManagedObject(
            id=batch_id,
            kind="batch",
            api="openai",
            deployment_id=deployment.id,
            model_group=source.model_group,
            purpose="batch",
            endpoint=endpoint,
            status="validating",
            input_file_id=source.id,
            requests_total=source.requests_total,
            reservation=None if reservation is None else reservation.to_json(),
            reserved_nanos=source.reserved_nanos if reservation is None else reservation.reserved_nanos,
            metadata_=metadata,
            **owned_by(caller.principal, resolved.scopes),
        )
        forwarded = gw.forwarded(caller, "openai")
        provider_file = source.provider_id
        created = await gw.open_batch(
            row,
            reservation,
            lambda: upstream.create_batch(provider_file, endpoint, window, metadata, headers=forwarded),
            upstream.cancel_batch,
        )
        return json_response(openai_batch_view(row, created))

    async def retrieve(self, request: Request) -> Response:
        """``GET /v1/batches/{batch_id}``."""
        gw = self.gw
        caller = await gw.caller(request)
        row = await gw.visible(caller, request.path_params["batch_id"], "batch", "openai")
        upstream = gw.upstream(gw.deployment_of(row))
        forwarded = gw.forwarded(caller, "openai")
        provider = await gw.fetch(
            row, lambda provider_id: upstream.retrieve_batch(provider_id, headers=forwarded)
        )
        if provider is not None:
            await _observe(gw, row, provider)
        return json_response(openai_batch_view(row, provider), settled_headers(row))

    async def cancel(self, request: Request) -> Response:
        """``POST /v1/batches/{batch_id}/cancel``: the lines done so far are billed, the
        rest of the reservation released, when the poller settles it."""
        gw = self.gw
        caller = await gw.caller(request)
        row = await gw.visible(caller, request.path_params["batch_id"], "batch", "openai", manage=True)
        provider = await gw.upstream(gw.deployment_of(row)).cancel_batch(
            row.provider_id or "", headers=gw.forwarded(caller, "openai")
        )
        await _observe(gw, row, provider)
        return json_response(openai_batch_view(row, provider), settled_headers(row))

    async def list(self, request: Request) -> Response:
        """``GET /v1/batches`` (``after``, ``limit`` 1–100): newest first, from the rows (the
        status each was last seen with)."""
        caller = await self.gw.caller(request)
        params = request.query_params
        async with self.gw.sessions() as session:
            page = await ManagedObjectRepository(session).list_visible(
                "batch",
                api="openai",
                after=cursor_param(params.get("after")),
                limit=limit_param(params.get("limit"), default=20, most=100),
                **caller.viewer.visibility(),
            )
        data = [openai_batch_view(row) for row in page.objects]
        return json_response(page_view(data, page.has_more))


def settled_headers(row: ManagedObject) -> dict[str, str]:
    """``x-spendgate-response-cost`` once the batch is billed (its exact bill; ``unpriced``
    when nothing in it could be priced)."""
    if row.settled_at is None or row.cost_nanos is None:
        return {}
    return {RESPONSE_COST: cost_text(row.cost_nanos, priced=not (row.unpriced and row.cost_nanos == 0))}


async def _observe(gw: BatchGateway, row: ManagedObject, provider: Mapping[str, Any]) -> None:
    """Write what the provider says on the row (never a bill), and give the batch's output
    and error files their managed rows the first time they appear."""
    output_id, error_id = _str(provider.get("output_file_id")), _str(provider.get("error_file_id"))
    now = datetime.now(UTC)
    async with gw.sessions() as session:
        await ManagedObjectRepository(session).update_status(
            row.id,
            status=str(provider.get("status") or row.status),
            now=now,
            counts=provider_counts("openai", provider),
            output_file_id=output_id,
            error_file_id=error_id,
        )
        await session.commit()
    for role, provider_file in (("output", output_id), ("error", error_id)):
        if provider_file is None:
            continue
        await gw.add_if_absent(
            ManagedObject(
                id=derived_file_id(row.id, role),  # type: ignore[arg-type]
                kind="file",
                api="openai",
                deployment_id=row.deployment_id,
                provider_id=provider_file,
                model_group=row.model_group,
                purpose="batch_output",
                endpoint=row.endpoint,
                status="processed",
                filename=f"{row.id}_{role}.jsonl",
                api_key=row.api_key,
                user_id=row.user_id,
                team_id=row.team_id,
                organization_id=row.organization_id,
                end_user=row.end_user,
                tags=row.tags,
            )
        )


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedRequest(f"'{name}' is required (a string)", param=name)
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
