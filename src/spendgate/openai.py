"""Ready instrumented OpenAI clients: ``spendgate.openai.OpenAI`` and friends.

Drop-in subclasses of the official ``openai`` classes whose constructor gives the SDK a
metered HTTP client (:mod:`spendgate.sdk.instrument`): every call is priced, enforced
against ``spendgate.max_budget`` and reported to the callbacks; ``spendgate.cost_of(result)``
reads its cost. Two extra keyword arguments: ``spendgate_provider`` (price OpenAI-style
calls as another provider: ``groq``, ``together_ai`` …) and ``spendgate_metadata``
(passed to every call's callbacks). An ``http_client`` given is metered too (its transport
is shared). Copies (``with_options``) stay metered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import openai

from spendgate.sdk.instrument import metered_default_client, metered_http_client

__all__ = ["AsyncAzureOpenAI", "AsyncOpenAI", "AzureOpenAI", "OpenAI"]


def _http_client(
    given: Any, factory: type[Any], provider: str | None, metadata: Mapping[str, Any] | None
) -> Any:
    if given is None:
        return metered_default_client(factory, provider=provider, metadata=metadata)
    return metered_http_client(given, provider=provider, metadata=metadata)


class OpenAI(openai.OpenAI):
    """``openai.OpenAI``, metered."""

    def __init__(
        self,
        *args: Any,
        spendgate_provider: str | None = None,
        spendgate_metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["http_client"] = _http_client(
            kwargs.get("http_client"), openai.DefaultHttpxClient, spendgate_provider, spendgate_metadata
        )
        super().__init__(*args, **kwargs)


class AsyncOpenAI(openai.AsyncOpenAI):
    """``openai.AsyncOpenAI``, metered."""

    def __init__(
        self,
        *args: Any,
        spendgate_provider: str | None = None,
        spendgate_metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["http_client"] = _http_client(
            kwargs.get("http_client"), openai.DefaultAsyncHttpxClient, spendgate_provider, spendgate_metadata
        )
        super().__init__(*args, **kwargs)


class AzureOpenAI(openai.AzureOpenAI):
    """``openai.AzureOpenAI``, metered (priced as provider ``azure``)."""

    def __init__(
        self,
        *args: Any,
        spendgate_provider: str | None = "azure",
        spendgate_metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["http_client"] = _http_client(
            kwargs.get("http_client"), openai.DefaultHttpxClient, spendgate_provider, spendgate_metadata
        )
        super().__init__(*args, **kwargs)


class AsyncAzureOpenAI(openai.AsyncAzureOpenAI):
    """``openai.AsyncAzureOpenAI``, metered (priced as provider ``azure``)."""

    def __init__(
        self,
        *args: Any,
        spendgate_provider: str | None = "azure",
        spendgate_metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs["http_client"] = _http_client(
            kwargs.get("http_client"), openai.DefaultAsyncHttpxClient, spendgate_provider, spendgate_metadata
        )
        super().__init__(*args, **kwargs)
