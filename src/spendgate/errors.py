"""The error tree. Every error spendgate raises on purpose is a :class:`SpendgateError`.

::

    SpendgateError
    ├── ConfigurationError          bad settings or files; the message names the field
    ├── MoneyError                  a price or amount that cannot be read exactly
    ├── UsageError                  a usage payload that cannot be read
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

__all__ = [
    "CatalogueFormatError",
    "ConfigurationError",
    "MoneyError",
    "PricingError",
    "SpendgateError",
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
