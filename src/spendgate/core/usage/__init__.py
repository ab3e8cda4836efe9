"""One usage model for every endpoint, and the extractors that produce it."""

from __future__ import annotations

from spendgate.core.usage.anthropic import from_anthropic_message
from spendgate.core.usage.model import Usage, UsageError
from spendgate.core.usage.openai import (
    from_openai_chat,
    from_openai_completion,
    from_openai_embedding,
    from_openai_image,
    from_openai_responses,
    from_openai_speech,
    from_openai_transcription,
)
from spendgate.core.usage.stream import (
    AnthropicStreamAccumulator,
    OpenAIResponsesStreamAccumulator,
    OpenAIStreamAccumulator,
)
from spendgate.core.usage.tier import reported_service_tier, requested_service_tier, service_tier_name

__all__ = [
    "AnthropicStreamAccumulator",
    "OpenAIResponsesStreamAccumulator",
    "OpenAIStreamAccumulator",
    "Usage",
    "UsageError",
    "from_anthropic_message",
    "from_openai_chat",
    "from_openai_completion",
    "from_openai_embedding",
    "from_openai_image",
    "from_openai_responses",
    "from_openai_speech",
    "from_openai_transcription",
    "reported_service_tier",
    "requested_service_tier",
    "service_tier_name",
]
