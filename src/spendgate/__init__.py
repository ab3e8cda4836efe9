"""spendgate: price every LLM call exactly, enforce budgets, report spend.

The pricing API is importable from here: :func:`price`, and LiteLLM's
:func:`cost_per_token` and :func:`completion_cost`. Names are loaded on first use, so
``import spendgate`` is cheap; no price data is read and no network is touched until a
call is priced (and even then only the bundled file is read).

The SDK (:mod:`spendgate.sdk`) is here too: :func:`instrument`, :func:`cost_of`,
:class:`BudgetManager`, the ready
clients :mod:`spendgate.openai` / :mod:`spendgate.anthropic`, and LiteLLM's module
settings, which are assigned like LiteLLM's (``spendgate.max_budget = 0.50``,
``spendgate.success_callback = [fn]``): this module's class forwards those names to the
SDK's state (:data:`_SETTINGS`), read and written on every access, never cached here.
"""

from __future__ import annotations

import importlib
import sys
import types

TYPE_CHECKING = False  # not imported from typing: keeps `import spendgate` at ~1 ms

__version__ = "0.1.0"

# Public name → the module that defines it (PEP 562 lazy loading).
_EXPORTS: dict[str, str] = {
    "Adjustment": "spendgate.core.pricing.calculator",
    "BudgetExceededError": "spendgate.sdk.errors",
    "BudgetManager": "spendgate.sdk.budget_manager",
    "Catalogue": "spendgate.core.pricing.catalogue",
    "CatalogueFormatError": "spendgate.errors",
    "ConfigurationError": "spendgate.errors",
    "CostBreakdown": "spendgate.core.pricing.breakdown",
    "CustomLogger": "spendgate.sdk.callbacks",
    "MoneyError": "spendgate.errors",
    "PriceBook": "spendgate.core.pricing.catalogue",
    "PriceSpec": "spendgate.core.pricing.spec",
    "PricingError": "spendgate.errors",
    "Rates": "spendgate.core.pricing.spec",
    "SpendgateError": "spendgate.errors",
    "UnpricedModelError": "spendgate.errors",
    "Usage": "spendgate.core.usage.model",
    "UsageError": "spendgate.errors",
    "acompletion": "spendgate.sdk.completion",
    "aembedding": "spendgate.sdk.completion",
    "breakdown_of": "spendgate.sdk.results",
    "completion": "spendgate.sdk.completion",
    "completion_cost": "spendgate.costs",
    "configure": "spendgate.sdk.ledger",
    "cost_of": "spendgate.sdk.results",
    "cost_per_token": "spendgate.costs",
    "default_price_book": "spendgate.costs",
    "embedding": "spendgate.sdk.completion",
    "flush": "spendgate.sdk.ledger",
    "format_usd": "spendgate.core.money",
    "from_nano": "spendgate.core.money",
    "instrument": "spendgate.sdk.instrument",
    "parse_rate": "spendgate.core.money",
    "price": "spendgate.costs",
    "register_prices": "spendgate.costs",
    "reset_price_book": "spendgate.costs",
    "to_nano": "spendgate.core.money",
}

# LiteLLM's module settings → (the SDK module holding them, the attribute of its object or
# None for the module itself). Assignable; read live (see the module docstring).
_SETTINGS: dict[str, tuple[str, str | None]] = {
    "budget_mode": ("spendgate.sdk.budget", "BUDGET"),
    "budget_timezone": ("spendgate.sdk.budget", "BUDGET"),
    "callbacks": ("spendgate.sdk.callbacks", None),
    "current_cost": ("spendgate.sdk.budget", "BUDGET"),
    "failure_callback": ("spendgate.sdk.callbacks", None),
    "max_budget": ("spendgate.sdk.budget", "BUDGET"),
    "max_budget_duration": ("spendgate.sdk.budget", "BUDGET"),
    "success_callback": ("spendgate.sdk.callbacks", None),
}

_SUBMODULES = frozenset({"anthropic", "openai", "sdk"})
"""Loaded on first access (``spendgate.openai.OpenAI`` after ``import spendgate``)."""

__all__ = [
    "Adjustment",
    "BudgetExceededError",
    "BudgetManager",
    "Catalogue",
    "CatalogueFormatError",
    "ConfigurationError",
    "CostBreakdown",
    "CustomLogger",
    "MoneyError",
    "PriceBook",
    "PriceSpec",
    "PricingError",
    "Rates",
    "SpendgateError",
    "UnpricedModelError",
    "Usage",
    "UsageError",
    "acompletion",
    "aembedding",
    "breakdown_of",
    "completion",
    "completion_cost",
    "configure",
    "cost_of",
    "cost_per_token",
    "default_price_book",
    "embedding",
    "flush",
    "format_usd",
    "from_nano",
    "instrument",
    "parse_rate",
    "price",
    "register_prices",
    "reset_price_book",
    "to_nano",
]


def _setting_holder(name: str) -> object:
    module, attribute = _SETTINGS[name]
    holder = importlib.import_module(module)
    return holder if attribute is None else getattr(holder, attribute)


def __getattr__(name: str) -> Any:
    if name in _SETTINGS:
        return getattr(_setting_holder(name), name)  # live: never cached here
    if name in _SUBMODULES:
        return importlib.import_module(f"spendgate.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'spendgate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SETTINGS})


class _Facade(types.ModuleType):
    """This module's class: ``spendgate.max_budget = ...`` and the other settings are set
    on the SDK's state, where the calls read them."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _SETTINGS:
            setattr(_setting_holder(name), name, value)
        else:
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Facade


if TYPE_CHECKING:
    from typing import Any

    from spendgate.core.money import format_usd, from_nano, parse_rate, to_nano
    from spendgate.core.pricing.breakdown import CostBreakdown
    from spendgate.core.pricing.calculator import Adjustment
    from spendgate.core.pricing.catalogue import Catalogue, PriceBook
    from spendgate.core.pricing.spec import PriceSpec, Rates
    from spendgate.core.usage.model import Usage
    from spendgate.costs import (
        completion_cost,
        cost_per_token,
        default_price_book,
        price,
        register_prices,
        reset_price_book,
    )
    from spendgate.errors import (
        CatalogueFormatError,
        ConfigurationError,
        MoneyError,
        PricingError,
        SpendgateError,
        UnpricedModelError,
        UsageError,
    )
    from spendgate.sdk.budget_manager import BudgetManager
    from spendgate.sdk.callbacks import CustomLogger
    from spendgate.sdk.completion import acompletion, aembedding, completion, embedding
    from spendgate.sdk.errors import BudgetExceededError
    from spendgate.sdk.instrument import instrument
    from spendgate.sdk.ledger import configure, flush
    from spendgate.sdk.results import breakdown_of, cost_of
