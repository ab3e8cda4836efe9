"""The HTTP error contract of the gateway and the management API: every failure becomes
one OpenAI-shaped error.

::

    {"error": {"message": "...", "type": "...", "param": "model" | null, "code": "..." | null}}

==================================  ======  ==========================================
exception                           status  type / code
==================================  ======  ==========================================
MalformedRequest                    400     invalid_request_error
AuthenticationFailed                401     authentication_error / invalid_api_key
PermissionDenied                    403     permission_denied
CustomerNotAllowed                  403     permission_denied / customer_not_allowed
NotFound                            404     invalid_request_error / model_not_found
MethodNotAllowed                    405     invalid_request_error
Conflict                            409     invalid_request_error / conflict
PayloadTooLarge                     413     invalid_request_error / request_too_large
InvalidField                        422     invalid_request_error / invalid_value
RateLimited (spendgate.errors)      429     rate_limit_error (+ Retry-After, x-ratelimit-*)
BudgetExceeded                      402*    budget_exceeded (+ Retry-After); *configurable
StorageError (spendgate.errors)     503     service_unavailable / limits_unavailable
DatabaseUnavailable                 503     service_unavailable / database_unavailable
DatabaseBusy                        503     service_unavailable / database_busy (+ Retry-After)
UpstreamStatusError 4xx             same    the upstream's own error, passed on
UpstreamStatusError 401/403         502     upstream_error / upstream_auth_failed
UpstreamStatusError 429             429     rate_limit_error
UpstreamStatusError 5xx, others     502     upstream_error
UpstreamTimeout                     504     upstream_timeout
EntityNotFound / Conflict / Invalid 404 / 409 / 422, as NotFound / Conflict / InvalidField
BatchInputError (batches.errors)    400     invalid_request_error / invalid_batch_line
anything else                       500     internal_error (generic text; traceback logged)
==================================  ======  ==========================================

Nothing else builds an error response. :func:`is_database_outage` tells a database that
could not be reached (503) from one that answered with an error.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from sqlalchemy import exc as sa_exc

from spendgate.batches.errors import BatchError, BatchInputError
from spendgate.entities.errors import EntityConflict, EntityError, EntityInvalid, EntityNotFound
from spendgate.errors import (
    BudgetExceeded,
    LimitExceeded,
    RateLimited,
    SpendgateError,
    StorageError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from spendgate.http.headers import RETRY_AFTER, format_wait, rate_limit_headers, retry_after_text

__all__ = [
    "AuthenticationFailed",
    "Conflict",
    "CustomerNotAllowed",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "GatewayError",
    "InvalidField",
    "MalformedRequest",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "error_body",
    "is_database_outage",
    "is_pool_exhausted",
    "render_error",
]

log = logging.getLogger("spendgate.gateway")


class GatewayError(SpendgateError):
    """An error the gateway answers with; carries its status and OpenAI error fields."""

    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}


class MalformedRequest(GatewayError):
    status = 400


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_denied"
    code = "permission_denied"


class CustomerNotAllowed(PermissionDenied):
    """The request names a customer that belongs to another team or organization
    (``param``: the field that named it, e.g. ``user`` or ``metadata.user_id``)."""

    code = "customer_not_allowed"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"


class Conflict(GatewayError):
    """409: the object already exists (an id or ``key_alias``), is still in use, or was
    changed or deleted by a concurrent request while this one was changing it."""

    status = 409
    code = "conflict"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "request_too_large"


class InvalidField(GatewayError):
    status = 422
    code = "invalid_value"


_LIMITS_UNAVAILABLE = "budgets cannot be checked right now (counter storage unavailable); try again shortly"


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def render_error(exc: BaseException, *, budget_status: int = 429) -> tuple[int, bytes, dict[str, str]]:
    """``(status, JSON body, extra headers)`` for any exception. Logs unexpected ones.

    ``budget_status`` is the status of :class:`~spendgate.errors.BudgetExceeded`
    (``general_settings.budget_exceeded_status``).
    """
    if isinstance(exc, EntityError | BatchError):  # said without HTTP by the layers below
        exc = _domain_error(exc)
    if isinstance(exc, GatewayError):
        return exc.status, error_body(exc.message, exc.type, exc.param, exc.code), exc.headers
    if isinstance(exc, LimitExceeded):
        wait = exc.retry_after
        headers = {} if wait is None else {RETRY_AFTER: retry_after_text(wait)}
        if isinstance(exc, BudgetExceeded):
            return budget_status, error_body(str(exc), "budget_exceeded", None, str(budget_status)), headers
        if isinstance(exc, RateLimited):
            kind = "tokens" if exc.kind == "tokens" else "requests"
            headers.update(
                rate_limit_headers(kind, exc.limit, 0, None if wait is None else format_wait(wait))
            )
        return 429, error_body(str(exc), "rate_limit_error", None, "rate_limit_exceeded"), headers
    if isinstance(exc, StorageError):
        # The counter storage is down and the fail-closed policy applies.
        log.error("limits unavailable: %s", exc, exc_info=exc)
        return 503, error_body(_LIMITS_UNAVAILABLE, "service_unavailable", None, "limits_unavailable"), {}
    if isinstance(exc, UpstreamStatusError):
        return _upstream_status(exc)
    if isinstance(exc, UpstreamTimeout):
        return 504, error_body(str(exc), "upstream_timeout", None, "upstream_timeout"), {}
    if isinstance(exc, UpstreamError):
        return 502, error_body(str(exc), "upstream_error", None, "upstream_unavailable"), {}
    log.error("unexpected error in the gateway", exc_info=exc)
    return (
        500,
        error_body("internal error; see the gateway log", "internal_error", None, "internal_error"),
        {},
    )


_DOMAIN_ERRORS: tuple[tuple[type[EntityError | BatchError], type[GatewayError]], ...] = (
    (EntityNotFound, NotFound),  # 404
    (EntityConflict, Conflict),  # 409
    (EntityInvalid, InvalidField),  # 422
    (EntityError, InvalidField),
    (BatchInputError, MalformedRequest),  # 400 naming line and field
    (BatchError, MalformedRequest),
)
"""A refusal of the entity service or of a batch's checks → the HTTP error it answers."""


def _domain_error(exc: EntityError | BatchError) -> GatewayError:
    """The HTTP error of a refusal said without HTTP (same message, ``param`` and code)."""
    http = next(http for kind, http in _DOMAIN_ERRORS if isinstance(exc, kind))
    return http(exc.message, param=exc.param, code=exc.code)


def _upstream_status(exc: UpstreamStatusError) -> tuple[int, bytes, dict[str, str]]:
    upstream: dict[str, Any] = {}
    try:
        parsed = orjson.loads(exc.body) if exc.body else None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            upstream = parsed["error"]
    except orjson.JSONDecodeError:
        pass
    said = upstream.get("message") or exc.body[:500].decode("utf-8", "replace")
    message = f"upstream error {exc.status_code}: {said}"
    if exc.status_code == 429:
        retry = exc.headers.get("retry-after")
        return (
            429,
            error_body(message, "rate_limit_error", None, "upstream_rate_limited"),
            ({RETRY_AFTER: retry} if retry else {}),
        )
    if exc.status_code in (401, 403, 407):
        # The gateway's own provider credentials were refused: not the client's fault.
        return 502, error_body(message, "upstream_error", None, "upstream_auth_failed"), {}
    if 400 <= exc.status_code < 500:
        # The request itself was refused upstream (bad parameters, context too long …).
        code = upstream.get("code")
        return (
            exc.status_code,
            error_body(
                message,
                str(upstream.get("type") or "invalid_request_error"),
                upstream.get("param"),
                str(code) if code is not None else None,
            ),
            {},
        )
    return 502, error_body(message, "upstream_error", None, "upstream_error"), {}


class DatabaseUnavailable(GatewayError):
    """503: the database could not be reached in time and nothing cached could stand in."""

    status = 503
    type = "service_unavailable"
    code = "database_unavailable"


class DatabaseBusy(DatabaseUnavailable):
    """503: every pooled database connection stayed in use for the pool's whole wait. Most
    often the process has more work in flight than connections (many expensive reads at
    once); a database that stopped answering holds its connections too, so the answer
    says what happened, not which of the two it was."""

    code = "database_busy"


def is_pool_exhausted(exc: BaseException) -> bool:
    """True when ``exc`` is the pool's checkout timeout (no free connection in time): an
    outage to :func:`is_database_outage`, usually one of load rather than of the database."""
    return isinstance(exc, sa_exc.TimeoutError)


def is_database_outage(exc: BaseException) -> bool:
    """True when ``exc`` says the database could not be reached (refused, reset, timed out,
    pool exhausted), as opposed to a query the database answered with an error."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    # Pool checkout timeout, the bounded wait, refused or reset connections (TimeoutError
    # and ConnectionError are OSErrors).
    return isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError | OSError)
