"""What every files and batches route shares: who is calling and what they may see, which
deployment an object lives on, and the reservation a batch takes at its creation.

A managed object (a file or a batch that passed through the gateway, issue #12) is a row of
``managed_objects`` (:mod:`spendgate.batches.store`). The routes
(:mod:`.batch_files`, :mod:`.batch_openai`, :mod:`.batch_anthropic`) are thin: they check the
request, call the provider through :class:`~spendgate.providers.batch_api.BatchUpstream` and
write the row; this module holds the rules they have in common:

* **who sees what** (:class:`Viewer`): the master key, and a key whose user is a
  ``proxy_admin`` or ``proxy_admin_viewer``, see every object (a viewer may not cancel or
  delete); any other key sees the objects created with it and, when its user is a team's
  admin, those created by that team's keys. Everyone else gets the same 404 as for an id
  that does not exist;
* **where an object lives**: a new file or batch goes to a deployment of its model group
  picked by the router among those that speak the API (OpenAI files and batches: ``openai``
  and ``azure`` deployments; message batches: ``anthropic``); every later call on the object
  goes to that same deployment (``deployment_id`` on the row), never to one a client names;
* **the batch's reservation** (:meth:`BatchGateway.reserve`): its worst case, held against
  every budget of its creator's scopes and of its deployment for the batch's whole life.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from spendgate.batches.store import ManagedObjectRepository, ObjectApi, ObjectKind
from spendgate.enforcement import Reservation
from spendgate.entities.repository import EntityRepository
from spendgate.errors import UpstreamError
from spendgate.gateway.admission import BatchAdmission
from spendgate.gateway.auth import Principal
from spendgate.gateway.deployments import Deployment
from spendgate.gateway.pipeline import Pipeline
from spendgate.gateway.replies import header_map
from spendgate.gateway.scoping import ResolvedScopes, Scopes
from spendgate.http.body import read_body
from spendgate.http.credentials import end_user_from_header
from spendgate.http.errors import InvalidField, MalformedRequest, NotFound, PermissionDenied
from spendgate.providers.base import ClientCall
from spendgate.providers.batch_api import BatchUpstream, ContentStream
from spendgate.stores.database.models import ManagedObject

__all__ = [
    "BatchCaller",
    "BatchGateway",
    "BatchSettings",
    "Viewer",
    "cursor_param",
    "epoch",
    "json_object",
    "json_response",
    "owned_by",
    "plausible_id",
    "relay",
]

_OPENAI_KINDS = frozenset({"openai", "azure"})
_ADMIN_ROLES = frozenset({"proxy_admin", "proxy_admin_viewer"})


@dataclass(frozen=True, slots=True)
class Viewer:
    """Which managed objects a caller may see (module docstring)."""

    key_id: str | None
    admin_teams: frozenset[str] = frozenset()
    reads_all: bool = False
    manages_all: bool = False

    def visibility(self) -> dict[str, Any]:
        """The arguments of the repository's owner-scoped reads."""
        return {"key_id": self.key_id, "team_ids_admin": self.admin_teams, "is_admin": self.reads_all}

    def may_manage(self, obj: ManagedObject) -> bool:
        """Cancel or delete: the creator's key, its team's admin, or a proxy_admin."""
        return (
            self.manages_all
            or (self.key_id is not None and obj.api_key == self.key_id)
            or (obj.team_id is not None and obj.team_id in self.admin_teams)
        )


@dataclass(frozen=True, slots=True)
class BatchCaller:
    """One authenticated call of a files or batches route."""

    principal: Principal
    viewer: Viewer
    headers: Mapping[str, str]
    request: Request


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """The config the routes read."""

    max_file_bytes: int
    """Largest batch input file (and message-batch body); larger is a 413."""
    default_output_tokens: int
    """Output tokens a line reserves when neither it nor the catalogue bounds them."""
    lease_seconds: float
    """A batch's reservation lease: its whole life (the poller's stale age plus an hour)."""


class BatchGateway:
    """The files and batches side of the gateway (see the module docstring).

    Args:
        pipeline: the request path's parts (authentication, routing, scopes, admission,
            the upstream client) — a batch is admitted and routed by the same ones.
        engine: the database of the managed objects.
        settings: limits and leases.
    """

    def __init__(self, pipeline: Pipeline, engine: AsyncEngine, settings: BatchSettings) -> None:
        self.pipeline = pipeline
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.settings = settings
        self._deployments = {d.id: d for group in pipeline.router.groups.values() for d in group}

    # -- callers ---------------------------------------------------------------------------

    async def caller(self, request: Request) -> BatchCaller:
        """Authenticate the request (401 / 403 as for any call) and find what it may see."""
        headers = header_map(request.scope["headers"])
        principal = await self.pipeline.auth.authenticate(headers)
        return BatchCaller(principal, await self._viewer(principal), headers, request)

    async def _viewer(self, principal: Principal) -> Viewer:
        if principal.key_hash is None or principal.is_master:  # no auth configured, or master
            return Viewer(principal.key_id, reads_all=True, manages_all=True)
        if principal.user_id is None:
            return Viewer(principal.key_id)
        async with self.sessions() as session:
            repo = EntityRepository(session)
            user = await repo.caller_user(principal.user_id)
            teams = await repo.caller_teams(principal.user_id)
        role = user[0] if user is not None else None
        return Viewer(
            principal.key_id,
            admin_teams=frozenset(t for t, r in teams.items() if r == "admin"),
            reads_all=role in _ADMIN_ROLES,
            manages_all=role == "proxy_admin",
        )

    # -- objects ---------------------------------------------------------------------------

    async def visible(
        self, caller: BatchCaller, object_id: str, kind: ObjectKind, api: ObjectApi, *, manage: bool = False
    ) -> ManagedObject:
        """The object if the caller may see it (and, with ``manage``, cancel or delete it);
        404 otherwise, the same for an id that does not exist and one that is not theirs."""
        obj = None
        if plausible_id(object_id):
            async with self.sessions() as session:
                obj = await ManagedObjectRepository(session).get_visible(
                    object_id, kind=kind, api=api, **caller.viewer.visibility()
                )
        if obj is None:
            what = "file" if kind == "file" else "batch"
            raise NotFound(f"no {what} {object_id!r}", param=f"{what}_id", code="not_found")
        if manage and not caller.viewer.may_manage(obj):
            raise PermissionDenied(f"this key may read {obj.id!r} but not change it")
        return obj

    def deployment_of(self, obj: ManagedObject) -> Deployment:
        """The deployment an object lives on (a 404 if the config no longer has it)."""
        deployment = self._deployments.get(obj.deployment_id or "")
        if deployment is None:
            raise NotFound(
                f"{obj.id!r} lives on deployment {obj.deployment_id!r}, which is no longer configured",
                code="deployment_not_found",
            )
        return deployment

    def pick(self, group: str, api: ObjectApi, param: str) -> Deployment:
        """A deployment of ``group`` that speaks ``api``'s batch protocol, picked by the router."""
        kinds = _OPENAI_KINDS if api == "openai" else frozenset({"anthropic"})
        candidates = [d for d in self.pipeline.router.group(group) or () if d.target.kind in kinds]
        if not candidates:
            what = "OpenAI files and batches" if api == "openai" else "Anthropic message batches"
            raise InvalidField(f"model group {group!r} has no deployment that serves {what}", param=param)
        return self.pipeline.router.pick(candidates)

    def upstream(self, deployment: Deployment) -> BatchUpstream:
        return BatchUpstream(self.pipeline.client, deployment.target, where=deployment.id)

    def forwarded(self, caller: BatchCaller, api: ObjectApi) -> dict[str, str]:
        """The client headers a batch call forwards upstream (as a live call would)."""
        return self.pipeline.forwarded_headers(
            caller.headers, "messages" if api == "anthropic" else "batches"
        )

    async def add(self, obj: ManagedObject) -> None:
        """Insert a new row and commit it."""
        async with self.sessions() as session:
            await ManagedObjectRepository(session).add(obj)
            await session.commit()

    async def add_if_absent(self, obj: ManagedObject) -> None:
        """Insert a row unless one with its id exists (a concurrent retrieve may win)."""
        async with self.sessions() as session:
            if await session.get(ManagedObject, obj.id) is not None:
                return
            try:
                await ManagedObjectRepository(session).add(obj)
                await session.commit()
            except Exception:
                await session.rollback()
                if await _exists(session, obj.id):
                    return
                raise

    # -- a batch's creation ----------------------------------------------------------------

    async def resolve(self, caller: BatchCaller, group: str) -> ResolvedScopes:
        """The creator's scopes and their limits, as a live call to ``group`` resolves them
        (the end customer: a bound key's, else a trusted proxy's header)."""
        pipeline = self.pipeline
        header_end_user = None
        if pipeline.trusted_proxies:
            peer = caller.request.scope.get("client")
            header_end_user = end_user_from_header(
                caller.headers, peer[0] if peer else None, pipeline.trusted_proxies
            )
        call = ClientCall(endpoint="batches", model=group, payload={})
        scopes = pipeline.scopes.attribute(caller.principal, call, header_end_user)
        return await pipeline.scopes.resolve(caller.principal, scopes, {})

    async def reserve(
        self, batch_id: str, resolved: ResolvedScopes, deployment: Deployment, nanos: int, tokens: int
    ) -> Reservation | None:
        """Reserve the batch's worst case (or raise the budget error naming the scope)."""
        return await self.pipeline.admission.admit_batch(
            BatchAdmission(batch_id, resolved, deployment, nanos, tokens, self.settings.lease_seconds)
        )

    async def open_batch(
        self,
        row: ManagedObject,
        reservation: Reservation | None,
        create: Callable[[], Awaitable[dict[str, Any]]],
        cancel: Callable[[str], Awaitable[object]],
    ) -> dict[str, Any]:
        """Create a reserved batch at the provider (``create``) and write its row (with the
        provider's id and status): the reservation given back if the provider refuses; the
        batch cancelled (best effort) and the reservation given back if the row cannot be
        written. Returns the provider's batch object."""
        try:
            created = await create()
        except BaseException:
            await self.release(reservation)
            raise
        row.provider_id = str(created.get("id") or "")
        row.status = str(
            created.get("processing_status" if row.api == "anthropic" else "status") or row.status
        )
        try:
            await self.add(row)
        except BaseException:
            with contextlib.suppress(Exception):  # a batch nobody can name is billed nothing
                await cancel(row.provider_id)
            await self.release(reservation)
            raise
        return created

    async def fetch(
        self, row: ManagedObject, fetch: Callable[[str], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any] | None:
        """The provider's batch object; None for a settled batch the provider no longer
        answers for (billed and final: its row says all there is to say)."""
        try:
            return await fetch(row.provider_id or "")
        except UpstreamError:
            if row.settled_at is None:
                raise
            return None

    async def release(self, reservation: Reservation | None) -> None:
        """Give a reservation back: the batch was never created."""
        if reservation is not None:
            await self.pipeline.admission.release_batch(reservation)


def plausible_id(text: str | None) -> bool:
    """Whether ``text`` can be a managed id at all (printable ASCII, at most 64 characters):
    anything else is answered as unknown without a query (PostgreSQL refuses NUL in text)."""
    return text is not None and 0 < len(text) <= 64 and text.isascii() and text.isprintable()


def cursor_param(text: str | None) -> str | None:
    """A list's ``after`` / ``after_id`` / ``before_id``: None when absent; an id that cannot
    exist is kept as one no row has (an empty page, as for another owner's id)."""
    if not text:
        return None
    return text if plausible_id(text) else "-"


def owned_by(principal: Principal, scopes: Scopes | None = None) -> dict[str, Any]:
    """The creator's attribution a new row records (a batch is billed to it): the resolved
    scopes of a batch, the key's own for a file."""
    if scopes is None:
        scopes = Scopes(
            principal.key_id,
            user_id=principal.user_id,
            team_id=principal.team_id,
            organization_id=principal.organization_id,
            end_user=principal.end_user_id,
            tags=principal.tags,
        )
    return {
        "api_key": principal.key_id,
        "user_id": scopes.user_id,
        "team_id": scopes.team_id,
        "organization_id": scopes.organization_id,
        "end_user": scopes.end_user,
        "tags": list(scopes.tags) or None,
    }


def epoch(moment: datetime | None) -> int | None:
    """A row's time as the Unix seconds OpenAI's objects carry."""
    if moment is None:
        return None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


async def _exists(session: AsyncSession, object_id: str) -> bool:
    return await session.get(ManagedObject, object_id) is not None


async def json_object(request: Request, limit: int) -> dict[str, Any]:
    """The request's JSON object body (413 past ``limit``; 400 if it is not an object)."""
    raw = await read_body(request, limit, request.headers.get("content-length"))
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedRequest("the body must be a JSON object")
    return body


async def relay(stream: ContentStream, media_type: str) -> Response:
    """Stream a provider's file content or results to the client. The upstream is asked
    (and an error answer raised) before the response starts; the connection is released
    however the client's read ends."""
    await stream.open()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    return StreamingResponse(chunks(), media_type=stream.headers.get("content-type") or media_type)


def json_response(body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers=dict(headers or {}))
