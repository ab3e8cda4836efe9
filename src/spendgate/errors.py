"""The error tree. Every error spendgate raises on purpose is a :class:`SpendgateError`.

::

    SpendgateError
    ├── ConfigurationError          bad settings or files; the message names the field
    ├── MoneyError                  a price or amount that cannot be read exactly
    ├── UsageError                  a usage payload that cannot be read
    ├── StorageError                a counter store (Redis) could not be used; the caller applies
    │                               the declared fail-open / fail-closed policy
    ├── LimitExceeded               a request refused by a limit; carries ``retry_after``
    │   ├── RateLimited             a rate limit (requests, tokens, parallel) is used up
    │   └── BudgetExceeded          a budget window has no room for the request
    ├── PricingError
    │   ├── UnpricedModelError      no price known for the model (never billed as $0)
    │   └── CatalogueFormatError    a price file that does not follow the format
    └── UpstreamError               an LLM provider could not serve a call
        ├── UpstreamTimeout         it did not answer in time
        ├── UpstreamConnectError    it could not be reached
        └── UpstreamStatusError     it answered with an error status

This module imports nothing from spendgate, so every layer, the pure core included, can
raise these. The value errors also subclass :class:`ValueError`.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "BudgetExceeded",
    "CatalogueFormatError",
    "ConfigurationError",
    "LimitExceeded",
    "MoneyError",
    "PricingError",
    "RateLimited",
    "SpendgateError",
    "StorageError",
    "UnpricedModelError",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "UsageError",
]


class SpendgateError(Exception):
    """Root of every error spendgate raises on purpose."""


class ConfigurationError(SpendgateError, ValueError):
    """Settings or files that cannot be used; the message names the field."""


class MoneyError(SpendgateError, ValueError):
    """A price or amount that cannot be read exactly."""


class UsageError(SpendgateError, ValueError):
    """A usage payload that cannot be read (negative counts, wrong types)."""


class StorageError(SpendgateError):
    """A counter store could not be used (connection refused, timeout, script error).

    The backend exception is chained as ``__cause__``. Whether the request is then admitted
    is decided in one place, the enforcement admission, by its fail-open / fail-closed policy.
    """


class LimitExceeded(SpendgateError):
    """A request refused by a budget or a rate limit.

    ``retry_after`` is the number of seconds after which the same request may pass (a lower
    bound: other traffic may use the room first), or ``None`` when it can never pass.
    """

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class RateLimited(LimitExceeded):
    """A rate limit has no room: ``kind`` is ``requests``, ``tokens`` or ``parallel``."""

    def __init__(
        self,
        *,
        scope: str,
        kind: str,
        limit: int,
        window_seconds: float | None,
        retry_after: float | None,
    ) -> None:
        self.scope = scope
        self.kind = kind
        self.limit = limit
        self.window_seconds = window_seconds
        if kind == "parallel":
            what = f"{limit} parallel requests"
        else:
            what = f"{limit} {kind} per {window_seconds:g} s"
        wait = "it can never pass" if retry_after is None else f"retry after {retry_after:.3f} s"
        super().__init__(f"rate limit exceeded for {scope}: {what}; {wait}", retry_after=retry_after)


class BudgetExceeded(LimitExceeded):
    """A budget window has no room: names the scope, window, spend, limit and reset time.

    Amounts are integer nano-USD; ``reset_at`` is the period end (UTC), or ``None`` for a
    lifetime budget.
    """

    def __init__(
        self,
        *,
        scope: str,
        window: str,
        spend_nanos: int,
        reserved_nanos: int,
        limit_nanos: int,
        requested_nanos: int,
        reset_at: datetime | None,
        retry_after: float | None,
    ) -> None:
        self.scope = scope
        self.window = window
        self.spend_nanos = spend_nanos
        self.reserved_nanos = reserved_nanos
        self.limit_nanos = limit_nanos
        self.requested_nanos = requested_nanos
        self.reset_at = reset_at
        reset = "never (lifetime budget)" if reset_at is None else reset_at.isoformat()
        super().__init__(
            f"budget exceeded for {scope}, window {window}: spend ${_usd(spend_nanos)}"
            f" + in flight ${_usd(reserved_nanos)} + this request ${_usd(requested_nanos)}"
            f" > limit ${_usd(limit_nanos)}; resets at {reset}",
            retry_after=retry_after,
        )


def _usd(nanos: int) -> str:
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), 1_000_000_000)
    text = f"{frac:09d}".rstrip("0")
    return f"{sign}{whole}.{text.ljust(2, '0')}"


class PricingError(SpendgateError):
    """A call that cannot be priced."""


class UnpricedModelError(PricingError, LookupError):
    """No price is known for the model: record the call as unpriced, never as $0."""

    def __init__(self, model: str, reason: str | None = None) -> None:
        self.model = model
        super().__init__(reason or f"no price is known for model {model!r}")


class CatalogueFormatError(PricingError, ValueError):
    """Price data that does not follow the catalogue format; the message names the field."""


class UpstreamError(SpendgateError):
    """An upstream LLM provider could not serve a call."""

    @property
    def retryable(self) -> bool:
        """True when another attempt (or another deployment) may succeed."""
        return True


class UpstreamTimeout(UpstreamError):
    """The provider did not answer (or finish answering) in time."""


class UpstreamConnectError(UpstreamError):
    """The provider could not be reached (refused, DNS, TLS, reset before an answer)."""


class UpstreamStatusError(UpstreamError):
    """The provider answered with an error status; ``body`` is what it said."""

    def __init__(self, status_code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.body = body
        self.headers = headers or {}
        super().__init__(f"upstream answered {status_code}")

    @property
    def retryable(self) -> bool:
        return self.status_code in (408, 409, 429) or self.status_code >= 500
