"""The error tree. Every error spendgate raises on purpose is a :class:`SpendgateError`.

::

    SpendgateError
    ├── ConfigurationError          bad settings or files; the message names the field
    ├── MoneyError                  a price or amount that cannot be read exactly
    ├── UsageError                  a usage payload that cannot be read
    └── PricingError
        ├── UnpricedModelError      no price known for the model (never billed as $0)
        └── CatalogueFormatError    a price file that does not follow the format

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
