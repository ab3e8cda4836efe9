"""Where a ``spendgate.completion()`` call goes, and the instrumented client that sends it.

:func:`route` turns LiteLLM's arguments (``model="provider/name"``, ``api_base``,
``api_key``, ``api_version``) into a :class:`~spendgate.providers.base.Target` by the
gateway's own rule (:func:`~spendgate.providers.targets.resolve_target`), filling what was
not given from the environment as LiteLLM does (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``,
``GROQ_API_KEY`` …, ``<PROVIDER>_API_BASE``). :func:`client_for` returns an instrumented
official client for it (metered as :mod:`spendgate.openai` / :mod:`spendgate.anthropic`
meter theirs): there is no other HTTP stack. Sync clients are kept per (target, key) so
connections are reused; an async client lives for one call (a pooled connection belongs
to the event loop that opened it, and the caller's loop may end with the call).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from spendgate.errors import ConfigurationError
from spendgate.providers.base import Target
from spendgate.providers.targets import resolve_target
from spendgate.sdk.completion_mock import MOCK_API_BASE, mock_handler
from spendgate.sdk.httpx_compat import module_of_type
from spendgate.sdk.instrument import metered_default_client, metered_http_client

__all__ = ["CLIENTS_KEPT", "KEY_VARIABLES", "Route", "client_for", "reset_clients", "route"]

KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "text-completion-openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "azure": ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
    "azure_openai": ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
    "groq": ("GROQ_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHER_API_KEY"),
    "openrouter": ("OPENROUTER_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"),
    "mistral": ("MISTRAL_API_KEY",),
    "perplexity": ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
    "hosted_vllm": ("HOSTED_VLLM_API_KEY",),
}
"""The environment variables read for a provider's key, first found wins (LiteLLM's names);
another provider ``p`` reads ``P_API_KEY``."""

_NEEDS_KEY = frozenset({"openai", "text-completion-openai", "anthropic", "azure", "azure_openai"})
"""Providers whose servers refuse a call without a key (a clear error before sending);
a self-hosted OpenAI-compatible server gets a placeholder key instead, as LiteLLM sends."""

_PLACEHOLDER_KEY = "sk-no-key-required"

CLIENTS_KEPT = 64
"""Sync clients kept for reuse (least recently used dropped first)."""


@dataclass(frozen=True, slots=True)
class Route:
    """A call's upstream: the target, the key, and whether its answer is mocked."""

    target: Target
    prefix: str
    """The provider prefix of the model name as given (``openai`` for a bare name)."""
    api_key: str
    mock: bool = False


def _prefix(model: str) -> str:
    prefix, sep, _ = model.partition("/")
    if sep:
        return prefix.lower()
    return "anthropic" if model.startswith("claude") else "openai"


def _env(prefix: str, suffix: str) -> str | None:
    names = KEY_VARIABLES.get(prefix, ()) if suffix == "API_KEY" else ()
    for name in (*names, f"{prefix.upper()}_{suffix}"):
        value = os.environ.get(name)
        if value:
            return value
    if prefix == "openai" and suffix == "API_BASE":
        return os.environ.get("OPENAI_BASE_URL") or None
    return None


def route(
    model: str,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    api_version: str | None = None,
    mock: bool = False,
) -> Route:
    """The upstream of ``model`` (LiteLLM's ``provider/name``), with the key to send.

    Raises:
        ConfigurationError: an unsupported provider, a missing ``api_base`` the provider
            needs, or no key for a provider that needs one.
    """
    if not isinstance(model, str) or not model:
        raise ConfigurationError("completion(): model is required (e.g. 'openai/gpt-4o')")
    prefix = _prefix(model)
    name = model if "/" in model or prefix == "openai" else f"{prefix}/{model}"
    if mock:
        target = resolve_target(
            name, api_base=api_base or MOCK_API_BASE, api_version=api_version or "mock", where="completion()"
        )
        return Route(target, prefix, api_key or "sk-mock", mock=True)
    base = api_base or _env(prefix, "API_BASE")
    version = api_version or (_env(prefix, "API_VERSION") if prefix in ("azure", "azure_openai") else None)
    target = resolve_target(name, api_base=base, api_version=version, where="completion()")
    found_key = api_key or _env(prefix, "API_KEY")
    if found_key is None:
        if prefix in _NEEDS_KEY and api_base is None:
            variables = " or ".join(KEY_VARIABLES.get(prefix, (f"{prefix.upper()}_API_KEY",)))
            raise ConfigurationError(f"completion(model={model!r}): pass api_key= or set {variables}")
        found_key = _PLACEHOLDER_KEY
    return Route(target, prefix, found_key)


# -- clients ----------------------------------------------------------------------------------

_lock = threading.Lock()
_sync: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def _build(found: Route, is_async: bool, mock_response: Any) -> Any:
    """An official client whose HTTP client is metered (what :mod:`spendgate.openai` and
    :mod:`spendgate.anthropic` build in their constructors)."""
    target = found.target
    common: dict[str, Any] = {"api_key": found.api_key, "max_retries": 0}
    if target.kind == "anthropic" and not found.mock:
        import anthropic

        factory: Any = anthropic.DefaultAsyncHttpxClient if is_async else anthropic.DefaultHttpxClient
        http_client = metered_default_client(factory)
        cls: Any = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
        return cls(base_url=target.api_base, http_client=http_client, **common)
    import openai

    factory = openai.DefaultAsyncHttpxClient if is_async else openai.DefaultHttpxClient
    if found.mock:
        http = module_of_type(factory)
        transport = http.MockTransport(mock_handler(mock_response))
        own = (http.AsyncClient if is_async else http.Client)(transport=transport)
        http_client = metered_http_client(own, provider=target.provider)
    else:
        http_client = metered_default_client(factory, provider=target.provider)
    if target.kind == "azure" and not found.mock:
        cls = openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI
        return cls(
            azure_endpoint=target.api_base, api_version=target.api_version, http_client=http_client, **common
        )
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return cls(base_url=target.api_base, http_client=http_client, **common)


def client_for(found: Route, *, is_async: bool, mock_response: Any = None) -> tuple[Any, bool]:
    """An instrumented official client for ``found``, and whether the caller owns it (must
    close it when the call is over). Sync clients are kept and reused; an async client is
    new for each call (its connections belong to the caller's event loop, which may close
    after the call), as is a mocked call's (its answer is its own)."""
    if found.mock or is_async:
        return _build(found, is_async, mock_response), True
    target = found.target
    key = (target.kind, target.provider, target.api_base, target.api_version, found.api_key)
    with _lock:
        client = _sync.get(key)
        if client is None:
            client = _sync[key] = _build(found, False, None)
        _sync.move_to_end(key)
        while len(_sync) > CLIENTS_KEPT:
            _, old = _sync.popitem(last=False)
            old.close()
        return client, False


def reset_clients() -> None:
    """Close and forget the kept clients."""
    with _lock:
        for client in _sync.values():
            client.close()
        _sync.clear()
