"""The mock provider: an OpenAI- and Anthropic-compatible server with deterministic usage.

See ``docs/mock-provider.md``. Run it with ``spendgate mock-provider`` or, in tests, with
:func:`run_mock_provider`.
"""

from __future__ import annotations

from spendgate.providers.mock.app import MockProvider, create_app
from spendgate.providers.mock.controls import Controls
from spendgate.providers.mock.options import MockOptions
from spendgate.providers.mock.server import MockServer, run_mock_provider
from spendgate.providers.mock.tokens import (
    MESSAGE_OVERHEAD,
    chat_prompt_tokens,
    count_tokens,
    generate_text,
    input_tokens,
)

__all__ = [
    "MESSAGE_OVERHEAD",
    "Controls",
    "MockOptions",
    "MockProvider",
    "MockServer",
    "chat_prompt_tokens",
    "count_tokens",
    "create_app",
    "generate_text",
    "input_tokens",
    "run_mock_provider",
]
