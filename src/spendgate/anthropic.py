"""Ready instrumented Anthropic clients: ``spendgate.anthropic.Anthropic`` and ``AsyncAnthropic``.

Drop-in subclasses of the official ``anthropic`` classes whose constructor gives the SDK a
metered HTTP client (:mod:`spendgate.sdk.instrument`): every Messages call is priced,
enforced against ``spendgate.max_budget`` and reported to the callbacks;
``spendgate.cost_of(result)`` reads its cost. ``spendgate_metadata`` is passed to every
call's callbacks. An ``http_client`` given is metered too (its transport is shared).
Copies (``with_options``) stay metered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anthropic

from spendgate.sdk.instrument import metered_default_client, metered_http_client

__all__ = ["Anthropic", "AsyncAnthropic"]


def _http_client(given: Any, factory: type[Any], metadata: Mapping[str, Any] | None) -> Any:
    if given is None:
        return metered_default_client(factory, metadata=metadata)
    return metered_http_client(given, metadata=metadata)


class Anthropic(anthropic.Anthropic):
    """``anthropic.Anthropic``, metered."""

    def __init__(
        self, *args: Any, spendgate_metadata: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        kwargs["http_client"] = _http_client(
            kwargs.get("http_client"), anthropic.DefaultHttpxClient, spendgate_metadata
        )
        super().__init__(*args, **kwargs)


class AsyncAnthropic(anthropic.AsyncAnthropic):
    """``anthropic.AsyncAnthropic``, metered."""

    def __init__(
        self, *args: Any, spendgate_metadata: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        kwargs["http_client"] = _http_client(
            kwargs.get("http_client"), anthropic.DefaultAsyncHttpxClient, spendgate_metadata
        )
        super().__init__(*args, **kwargs)
