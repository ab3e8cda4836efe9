"""Where a LiteLLM-style model name goes: ``provider/model`` (+ ``api_base``) → a :class:`Target`.

One rule for the gateway's ``model_list`` (``litellm_params.model`` and ``api_base``) and the
SDK's ``spendgate.completion(model=...)``, so a name reaches the same upstream and is priced
as the same provider in both:

* ``anthropic/<model>``: Anthropic's Messages API (default ``https://api.anthropic.com``);
* ``azure/<deployment>`` (or ``azure_openai/``): Azure OpenAI, ``api_base`` required;
* ``<provider>/<model>`` for a known OpenAI-compatible provider (:data:`OPENAI_COMPATIBLE`:
  ``openai``, ``groq``, ``together_ai``, ``hosted_vllm`` …): its default base URL or
  ``api_base`` (required for servers with no public URL, such as ``hosted_vllm``);
* any other name with an ``api_base``: an OpenAI-compatible server, the whole name (slash
  included: ``org/model``) sent upstream;
* a bare name (``gpt-4o``): OpenAI.
"""

from __future__ import annotations

from spendgate.core.pricing.catalogue import canonical_provider
from spendgate.errors import ConfigurationError
from spendgate.providers.base import Target

__all__ = ["OPENAI_COMPATIBLE", "resolve_target"]

# OpenAI-compatible providers and their default base URLs (the OpenAI SDK's base_url).
OPENAI_COMPATIBLE: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "text-completion-openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "together_ai": "https://api.together.xyz/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "xai": "https://api.x.ai/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "mistral": "https://api.mistral.ai/v1",
    "perplexity": "https://api.perplexity.ai",
    "ollama": "http://localhost:11434/v1",
    "ollama_chat": "http://localhost:11434/v1",
    "hosted_vllm": None,
    "openai_like": None,
    "custom_openai": None,
    "lm_studio": "http://localhost:1234/v1",
}


def resolve_target(
    model: str,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    api_version: str | None = None,
    timeout: float = 600.0,
    stream_timeout: float | None = None,
    where: str = "model",
) -> Target:
    """The upstream a LiteLLM-style model name (``provider/model``) and ``api_base`` reach.

    Args:
        model: ``gpt-4o``, ``openai/gpt-4o``, ``anthropic/claude-sonnet-4-6``,
            ``hosted_vllm/meta-llama/Llama-3-8B`` …
        api_base: the server's base URL (overrides the provider's default).
        api_key, api_version: sent to the upstream (``api_version``: Azure only).
        timeout, stream_timeout: the read timeouts, in seconds.
        where: what ``model`` and ``api_base`` are called in error messages (the gateway
            passes ``model_list[i].litellm_params``).

    Raises:
        ConfigurationError: an unsupported provider, or a missing required ``api_base``.
    """
    prefix, sep, rest = model.partition("/")
    provider, name = (prefix.lower(), rest) if sep else ("openai", model)
    if provider in ("azure", "azure_openai"):
        if not api_base:
            raise ConfigurationError(f"{where}.api_base: required for azure/ deployments")
        return Target("azure", "azure", name, api_base, api_key, api_version, timeout, stream_timeout)
    if provider == "anthropic":
        base = api_base or "https://api.anthropic.com"
        return Target("anthropic", "anthropic", name, base, api_key, None, timeout, stream_timeout)
    if provider in OPENAI_COMPATIBLE or api_base:
        found = api_base or OPENAI_COMPATIBLE.get(provider)
        if found is None:
            raise ConfigurationError(f"{where}.api_base: required for {provider}/ deployments")
        if provider not in OPENAI_COMPATIBLE:
            name = model  # "org/model" on a custom server: the slash is part of the name
        return Target(
            "openai", canonical_provider(provider), name, found, api_key, None, timeout, stream_timeout
        )
    raise ConfigurationError(
        f"{where}.model: provider {provider!r} is not supported by the gateway "
        "(use openai/, azure/, anthropic/ or an OpenAI-compatible provider with api_base)"
    )
