"""What a spend event says in OpenTelemetry's GenAI vocabulary (pure: no OpenTelemetry import).

A spend event already holds everything the span and the metrics need: the operation (by
the endpoint's path), the provider, the model asked for and the one that served, the
normalized usage, the exact cost and who is billed. This module only renames it.

* ``gen_ai.request.model`` is the model (group) the client asked for, ``gen_ai.response.model``
  the upstream model of the deployment that served it (they differ after routing or a
  fallback); the upstream's own answer is not kept, so its dated model id is not known here.
* ``gen_ai.usage.cost.amount`` is a float of USD (the open proposal's type), as on any
  metric boundary; ``spendgate.cost.usd`` is the exact decimal text, the same as the
  ``x-spendgate-response-cost`` header (``unpriced`` for a model without a price, which has
  no ``gen_ai.usage.cost.amount``: never a made-up 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from spendgate.core.money import NANOS_PER_USD, usd_text
from spendgate.ledger.events import EventStatus, SpendEvent

__all__ = [
    "AttributeValue",
    "metric_attributes",
    "operation_name",
    "provider_name",
    "span_attributes",
    "span_name",
    "unix_nanos",
]

AttributeValue = str | bool | int | float | Sequence[str]

# The endpoint's path (without /v1) → gen_ai.operation.name. The first three are the
# conventions' well-known values; the others have none, so they are custom (allowed).
_OPERATIONS: Mapping[str, str] = {
    "/chat/completions": "chat",
    "/messages": "chat",
    "/responses": "chat",
    "/completions": "text_completion",
    "/embeddings": "embeddings",
    "/images/generations": "image_generation",
    "/audio/transcriptions": "transcription",
    "/audio/speech": "speech",
}

# spendgate's provider ids whose well-known gen_ai.provider.name is spelled otherwise.
_PROVIDERS: Mapping[str, str] = {
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "text-completion-openai": "openai",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "watsonx": "ibm.watsonx.ai",
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def operation_name(path: str | None) -> str:
    """``gen_ai.operation.name`` of an endpoint path (``/v1/chat/completions`` → ``chat``)."""
    if not path:
        return "chat"
    path = path.rstrip("/")
    if path.startswith("/v1/"):
        path = path[3:]
    return _OPERATIONS.get(path, "chat" if path.endswith("/chat/completions") else path.lstrip("/"))


def provider_name(provider: str | None) -> str:
    """``gen_ai.provider.name`` of a spendgate provider id (``azure`` → ``azure.ai.openai``)."""
    if not provider:
        return "unknown"
    return _PROVIDERS.get(provider, provider)


def span_name(event: SpendEvent) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``, the conventions' span name."""
    return f"{operation_name(event.endpoint)} {event.requested_model or event.model or ''}".rstrip()


def unix_nanos(at: datetime) -> int:
    """A timezone-aware time as integer nanoseconds since the epoch (exact to the microsecond)."""
    return (at - _EPOCH) // _MICROSECOND * 1000


def metric_attributes(event: SpendEvent) -> dict[str, str]:
    """The bounded attributes of the GenAI metrics: operation, provider, and the two models
    (both come from the config: an unknown model is refused before anything is billed)."""
    attributes = {
        "gen_ai.operation.name": operation_name(event.endpoint),
        "gen_ai.provider.name": provider_name(event.provider),
        "gen_ai.request.model": event.requested_model or event.model or "",
        "gen_ai.response.model": event.model or "",
    }
    if event.status is not EventStatus.SUCCESS:
        attributes["error.type"] = event.status.value
    return attributes


def span_attributes(event: SpendEvent) -> dict[str, AttributeValue]:
    """Every attribute of the event's span: the GenAI conventions', then spendgate's."""
    usage = event.usage
    attributes: dict[str, AttributeValue] = {
        **metric_attributes(event),
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
        "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
        "spendgate.request_id": event.operation_id or event.event_id,
        "spendgate.event_id": event.event_id,
        "spendgate.outcome": event.status.value,
        "spendgate.estimated": event.estimated,
    }
    if event.unpriced:
        attributes["spendgate.cost.usd"] = "unpriced"
        attributes["spendgate.unpriced"] = True
        if event.unpriced_reason:
            attributes["spendgate.unpriced_reason"] = event.unpriced_reason
    else:
        attributes["gen_ai.usage.cost.amount"] = event.cost_nanos / NANOS_PER_USD
        attributes["gen_ai.usage.cost.currency"] = "USD"
        attributes["gen_ai.usage.cost.source"] = "local"
        attributes["spendgate.cost.usd"] = usd_text(event.cost_nanos)
        attributes["spendgate.cost.nanos"] = event.cost_nanos
    optional: dict[str, str | None] = {
        "spendgate.hashed_api_key": event.api_key,
        "spendgate.team_id": event.team_id,
        "spendgate.user_id": event.user_id,
        "spendgate.organization_id": event.organization_id,
        "spendgate.end_user": event.end_user,
        "spendgate.deployment_id": event.deployment_id,
        "spendgate.batch_id": event.batch_id,
        "spendgate.service_tier": event.service_tier,
        "spendgate.catalogue_version": event.catalogue_version,
        "spendgate.price_source": event.price_source,
    }
    attributes.update((name, value) for name, value in optional.items() if value)
    if event.tags:
        attributes["spendgate.tags"] = event.tags
    return attributes
