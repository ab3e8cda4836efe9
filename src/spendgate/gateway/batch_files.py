"""``/v1/files``: batch input files uploaded through the gateway, and the output and error
files of its batches.

An upload (``purpose=batch``, multipart as the official SDKs send it) is checked line by line
(:func:`~spendgate.batches.requests.parse_openai_input`) before anything reaches a provider: a
bad line is a 400 naming the line and the field, and nothing is stored anywhere. A good file
goes to a deployment of the model group its lines name (or LiteLLM's ``target_model_names`` /
``model`` form field names), with each line's ``model`` rewritten to the deployment's own; its
row records that deployment, its lines and its worst case at the batch rates, which a batch
made from it reserves.

A key lists, reads, downloads and deletes only the files it may see
(:class:`~spendgate.gateway.managed.Viewer`); any other id is a 404.
"""

from __future__ import annotations

import orjson
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from spendgate.batches.errors import BatchInputError
from spendgate.batches.requests import ENDPOINTS, line_worst_case, line_worst_tokens, parse_openai_input
from spendgate.batches.store import ManagedObjectRepository, new_object_id
from spendgate.errors import UpstreamStatusError
from spendgate.gateway.batch_views import file_view, page_view
from spendgate.gateway.managed import BatchGateway, cursor_param, json_response, owned_by, relay
from spendgate.http.body import read_body
from spendgate.http.errors import Conflict, InvalidField, MalformedRequest, PayloadTooLarge
from spendgate.stores.database.models import ManagedObject

__all__ = ["FilesApi"]

_FORM_OVERHEAD = 64 * 1024
"""Room for the multipart framing and the text fields around the file itself."""


class FilesApi:
    """The ``/v1/files`` handlers (mounted by :func:`~spendgate.gateway.routes.batch_routes`)."""

    def __init__(self, gateway: BatchGateway) -> None:
        self.gw = gateway

    async def upload(self, request: Request) -> Response:
        """``POST /v1/files``."""
        gw = self.gw
        caller = await gw.caller(request)
        limit = gw.settings.max_file_bytes
        body = await read_body(request, limit + _FORM_OVERHEAD, caller.headers.get("content-length"))
        form = await _form(request, body)
        try:
            upload, named = await _upload_of(form)
            data = await upload.read()
            filename = upload.filename or "batch.jsonl"
        finally:
            await form.close()
        if len(data) > limit:
            raise PayloadTooLarge(f"the file is {len(data)} bytes; the limit is {limit}")

        principal = caller.principal
        router = gw.pipeline.router
        endpoint = _endpoint(data)
        requests = parse_openai_input(
            data, endpoint=endpoint, may_use=principal.may_use, groups=lambda g: router.group(g) is not None
        )
        group = requests[0].model_group
        if named is not None and named.strip() != group:
            raise BatchInputError(
                f"the file's lines are for model {group!r}, not {named.strip()!r}",
                line=1,
                field="body.model",
            )
        deployment = gw.pick(group, "openai", "model")
        model = deployment.target.model
        sent = b"".join(
            orjson.dumps(
                {
                    "custom_id": r.custom_id,
                    "method": "POST",
                    "url": endpoint,
                    "body": {**r.body, "model": model},
                }
            )
            + b"\n"
            for r in requests
        )
        default_output = gw.settings.default_output_tokens
        worst = sum(line_worst_case(deployment, r, default_output) for r in requests)
        tokens = sum(line_worst_tokens(deployment, r, default_output) for r in requests)
        upstream = gw.upstream(deployment)
        stored = await upstream.upload_file(filename, sent, "batch", headers=gw.forwarded(caller, "openai"))
        row = ManagedObject(
            id=new_object_id("file", "openai"),
            kind="file",
            api="openai",
            deployment_id=deployment.id,
            provider_id=str(stored.get("id") or ""),
            model_group=group,
            purpose="batch",
            endpoint=endpoint,
            status="processed",
            requests_total=len(requests),
            reserved_nanos=worst,
            metadata_={"worst_case_tokens": tokens},
            bytes=len(data),
            filename=filename,
            **owned_by(principal),
        )
        try:
            await gw.add(row)
        except BaseException:
            await _forget_upstream(gw, row)
            raise
        return json_response(file_view(row))

    async def list(self, request: Request) -> Response:
        """``GET /v1/files`` (``purpose``, ``after``, ``limit`` 1–10000, ``order``)."""
        caller = await self.gw.caller(request)
        params = request.query_params
        limit = _limit(params.get("limit"), default=10_000, most=10_000)
        order = params.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidField("order must be 'asc' or 'desc'", param="order")
        async with self.gw.sessions() as session:
            page = await ManagedObjectRepository(session).list_visible(
                "file",
                api="openai",
                purpose=params.get("purpose") or None,
                after=cursor_param(params.get("after")),
                limit=limit,
                order="asc" if order == "asc" else "desc",
                **caller.viewer.visibility(),
            )
        return json_response(page_view([file_view(row) for row in page.objects], page.has_more))

    async def retrieve(self, request: Request) -> Response:
        """``GET /v1/files/{file_id}``."""
        caller = await self.gw.caller(request)
        row = await self.gw.visible(caller, request.path_params["file_id"], "file", "openai")
        return json_response(file_view(row))

    async def content(self, request: Request) -> Response:
        """``GET /v1/files/{file_id}/content``, streamed from the file's deployment."""
        gw = self.gw
        caller = await gw.caller(request)
        row = await gw.visible(caller, request.path_params["file_id"], "file", "openai")
        upstream = gw.upstream(gw.deployment_of(row))
        stream = upstream.file_content(row.provider_id or "", headers=gw.forwarded(caller, "openai"))
        return await relay(stream, "application/octet-stream")

    async def delete(self, request: Request) -> Response:
        """``DELETE /v1/files/{file_id}``: at the provider (already gone is fine), then the row."""
        gw = self.gw
        caller = await gw.caller(request)
        row = await gw.visible(caller, request.path_params["file_id"], "file", "openai", manage=True)
        async with gw.sessions() as session:
            if await ManagedObjectRepository(session).file_in_use(row.id):
                raise Conflict(f"file {row.id!r} is the input of a batch not yet billed; delete it after")
        try:
            await gw.upstream(gw.deployment_of(row)).delete_file(
                row.provider_id or "", headers=gw.forwarded(caller, "openai")
            )
        except UpstreamStatusError as exc:
            if exc.status_code != 404:
                raise
        async with gw.sessions() as session:
            await ManagedObjectRepository(session).remove_file(row.id)
            await session.commit()
        return json_response({"id": row.id, "object": "file", "deleted": True})


def _endpoint(data: bytes) -> str:
    """The batch endpoint the file's first line names (every line must name the same one)."""
    first = data.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0]
    try:
        url = orjson.loads(first).get("url") if first.strip() else None
    except (orjson.JSONDecodeError, AttributeError):
        return next(iter(ENDPOINTS))  # the parser names what is wrong with line 1
    if url not in ENDPOINTS:
        said = "is missing" if url is None else f"{url!r} cannot run as a batch"
        raise BatchInputError(f"'url' {said}; use one of {', '.join(ENDPOINTS)}", line=1, field="url")
    return str(url)


def _limit(text: str | None, *, default: int, most: int) -> int:
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= most:
        raise InvalidField(f"limit must be an integer from 1 to {most}", param="limit")
    return int(text)


async def _upload_of(form: FormData) -> tuple[UploadFile, str | None]:
    """The form's file, and the model group it names (if it does)."""
    purpose = form.get("purpose")
    if purpose != "batch":
        raise InvalidField(
            f"purpose {purpose!r}: the gateway manages batch input files only (purpose=batch)",
            param="purpose",
        )
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise MalformedRequest("a multipart 'file' part is required", param="file")
    named = form.get("target_model_names") or form.get("model")
    if named is not None and not isinstance(named, str):
        raise MalformedRequest("target_model_names must be a text field", param="target_model_names")
    return upload, named


async def _form(request: Request, body: bytes) -> FormData:
    """The multipart form of a body already read (within its size limit), parsed by Starlette."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise MalformedRequest("upload a file as multipart/form-data (fields: file, purpose)")
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, receive).form(max_files=1, max_fields=16)
    except Exception as exc:  # the parser's own errors: a malformed multipart body
        raise MalformedRequest(f"the multipart body cannot be read: {exc}") from None


async def _forget_upstream(gw: BatchGateway, row: ManagedObject) -> None:
    """The row could not be written: take the uploaded file back from the provider."""
    try:
        await gw.upstream(gw.deployment_of(row)).delete_file(row.provider_id or "")
    except Exception:  # best effort: a file nobody can name bills nothing
        pass


limit_param = _limit
"""The ``limit`` query parameter's check, shared with the batch lists."""
