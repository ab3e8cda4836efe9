"""Reviewed decisions: where LiteLLM and genai-prices disagree and no rule decides.

The arbiter is the provider's published price. genai-prices records where its figures
come from (each provider's ``pricing_urls``, a model's ``price_comments``), LiteLLM
sometimes does (a ``source`` field); each decision names that evidence. A review applies
to the disagreements whose entry id and rate path match its globs (``fnmatch``); the
first matching review wins. A disagreement no rule or review decides keeps LiteLLM's
figure and is listed as ``unreviewed`` in ``reconciliation.json``.

A review may also carry a :class:`PriceChange`: a dated change of the published price that
LiteLLM does not carry yet (it still has the earlier, e.g. introductory, rates). The entry
then gets a price history: LiteLLM's spec until the change, and from it the published
rates with every other per-token rate composed from them (:func:`.reconcile.compose_change`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal

__all__ = ["REVIEWS", "PriceChange", "Review"]


@dataclass(frozen=True, slots=True)
class PriceChange:
    """A published price that replaces the one LiteLLM carries, from a moment on."""

    start: datetime
    """When the new price applies (UTC; a page that gives only a date: 00:00 UTC that day)."""
    rates: Mapping[str, Decimal]
    """The published standard per-token rates from ``start`` (``input`` and ``output`` at
    least); every other rate is composed from them."""
    url: str
    """The stored page the figures and the date were read from."""
    keep: str = ""
    """Glob over rate paths that are not per-token rates and stay as they are (a per-query
    price the change does not touch); any other such rate stops the build."""


@dataclass(frozen=True, slots=True)
class Review:
    id: str
    entries: str | tuple[str, ...]
    """Glob(s) over catalogue entry ids (``openai/gpt-4o-*transcribe*``)."""
    take: Literal["litellm", "genai-prices"]
    reason: str
    """Why, with the evidence: the published price and where it is stated."""
    rates: str = "*"
    """Glob over rate paths (``input_audio``, ``batch:*``, ``web_search.*``)."""
    genai_model: str = "*"
    """Glob over the id of the genai-prices model compared with."""
    change: PriceChange | None = None
    """A dated price change the review records (see the module docstring)."""

    def applies(self, entry_id: str, path: str, model_id: str) -> bool:
        globs = (self.entries,) if isinstance(self.entries, str) else self.entries
        return (
            any(fnmatch.fnmatchcase(entry_id, g) for g in globs)
            and fnmatch.fnmatchcase(path, self.rates)
            and fnmatch.fnmatchcase(model_id, self.genai_model)
        )


D = Decimal
_GENAI: Final = "genai-prices"
_LITELLM: Final = "litellm"

REVIEWS: tuple[Review, ...] = (
    Review(
        "bedrock-in-region",
        "bedrock/*",
        _GENAI,
        "AWS prices Bedrock's in-region and geographic (us., eu.) endpoints of these models 10 % above "
        "global cross-region inference (aws.amazon.com/bedrock/pricing, genai-prices' aws pricing_urls; "
        "its model ids say 'regional.'). LiteLLM's bare model id carries the global figure while its own "
        "us. entries carry the regional one (+10 %); a bare id is called in-region, so the regional price.",
        genai_model="regional.*",
    ),
    Review(
        "openai-audio-tokens",
        "openai/gpt-4o-*transcribe*",
        _GENAI,
        "OpenAI's model pages (cited by genai-prices: developers.openai.com/api/docs/models/"
        "gpt-4o-transcribe-diarize) price audio input at $6/M for gpt-4o-transcribe and $3/M for "
        "gpt-4o-mini-transcribe; LiteLLM's openai entries repeat the text rate, its own azure entries "
        "carry 6E-6 and 3E-6. Audio tokens were under-billed at the text rate.",
        rates="input_audio",
    ),
    Review(
        "openai-tts-output",
        "openai/gpt-4o-mini-tts*",
        _GENAI,
        "gpt-4o-mini-tts outputs only audio, $12/M (OpenAI pricing page; LiteLLM's own "
        "output_cost_per_audio_token is 1.2E-5). OpenAI's usage does not split the output tokens, so "
        "they are billed at the output rate: LiteLLM's 1E-5 under-billed them.",
        rates="output",
    ),
    Review(
        "azure-global",
        "azure/*",
        _GENAI,
        "An azure/<model> entry without a zone is priced at Azure's Global deployment price, the one "
        "Azure's pricing page leads with and genai-prices records (its azure price_comments: 'prices for "
        "*-Global models, Regional often slightly higher'); LiteLLM's figure is the Regional (+10 %) "
        "one. Data-zone entries (azure/eu/…, azure/us/…) keep their own prices (rule regional-variant); "
        "a Regional deployment is priced with an operator override.",
        genai_model="text-embedding-*",
    ),
    Review(
        "azure-global-ada",
        "azure/*",
        _GENAI,
        "As azure-global: ada-002 embeddings at the Global price, $0.10/M.",
        genai_model="ada",
    ),
    Review(
        "fireworks-listed-price",
        tuple(
            f"fireworks_ai/accounts/fireworks/models/{m}"
            for m in ("llama-v3p1-8b-instruct", "gemma-3-27b-it", "deepseek-v4-pro")
        ),
        _GENAI,
        "Fireworks lists a per-model serverless price for these models (genai-prices records each, "
        "'Pricing Per 1M Tokens' on fireworks.ai/pricing); LiteLLM's figure is one of its parameter-size "
        "bands (fireworks-ai-up-to-4b 1E-7, above-16b 9E-7, moe 1.2E-6), which apply only to models "
        "without a listed price (an 8B model was even in the up-to-4B band). The dated snapshots "
        "(-0731, -0813) carry figures of their own and are not decided here.",
    ),
    Review(
        "xai-grok-code-fast",
        "xai/grok-code-fast*",
        _GENAI,
        "xAI's model list (docs.x.ai/docs/models, genai-prices' x-ai pricing_urls) prices "
        "grok-code-fast-1 at $0.20/M input, $0.02/M cached, $1.50/M output; LiteLLM's 1E-6 / 2E-7 / 2E-6 "
        "are grok-3-mini-class figures from an API listing, not the published price.",
    ),
    Review(
        "together-llama-3.3-70b-turbo",
        "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        _GENAI,
        "Together's pricing page (together.ai/pricing, genai-prices' together pricing_urls) lists "
        "Llama 3.3 70B Instruct Turbo at $0.88/M in and out; LiteLLM's 1.04E-6 comes from the models "
        "API listing (its source field), not the published price.",
    ),
    Review(
        "mistral-large-4-current-price",
        ("mistral/mistral-large-4", "mistral/mistral-large-4-0"),
        _GENAI,
        "Mistral's pricing page (docs.mistral.ai/inference/pricing; model card "
        "docs.mistral.ai/models/mistral-large-4-0) lists Mistral Large 4 at $0.70/M input, $0.07/M cached, "
        "$2.10/M output since 2026-10-29 (genai-prices' mistral-large-4 price_comments record the launch "
        "promotion $0.68/$0.07/$2.09, the list rates $1.36/$0.14/$4.18 from 2026-10-20 and the $0.70/$0.07/"
        "$2.10 of 2026-10-29; OpenRouter's Mistral-served listing, "
        "openrouter.ai/compare/…/mistral-large-4-0, "
        "shows $0.70/$2.10). LiteLLM 1.109.1 carries the superseded 2026-10-20 list rates.",
    ),
    Review(
        "openai-search-preview-web-search",
        "openai/gpt-4o-mini-search-preview*",
        _LITELLM,
        "The Chat Completions search models run OpenAI's web-search preview, whose price for non-reasoning "
        "models is $25 per 1,000 calls with the search content tokens free (OpenAI's pricing page, "
        "platform.openai.com/docs/pricing#built-in-tools, as quoted by OpenAI staff at "
        "community.openai.com/t/search-web-using-openai-api/1363698). genai-prices' $10/1k is the "
        "generally available web_search tool of the Responses API, which these models do not use.",
        rates="web_search.*",
    ),
    Review(
        "vertex-gemini-2.0-flash",
        "vertex_ai/gemini-2.0-flash",
        _LITELLM,
        "Vertex AI publishes its own Gemini 2.0 Flash price ($0.15/M input, $0.60/M output, $1/M audio "
        "in), above the Gemini API's; genai-prices' google provider carries the Gemini API figures "
        "for both.",
    ),
    Review(
        "gemini-4-argon-2026-12-01",
        ("gemini/gemini-4-argon", "vertex_ai/gemini-4-argon"),
        _GENAI,
        "Google's Gemini 4 Argon page (ai.google.dev/gemini-api/docs/generate-content/latest-model, "
        "stored copy in Chinese) prices gemini-4-argon at an introductory $2/M input and $10/M output "
        "until 2026-11-30, then $4/M input and $20/M output; it gives a date without a time or zone, "
        "so the new price applies from 2026-12-01 00:00 UTC. Thinking tokens are output tokens (Google's "
        "Gemini 4 guide counts thinking, function calls and the answer as output; LiteLLM's launch "
        "announcement, github.com/BerriAI/litellm/discussions/46238: 'Thinking tokens bill as output'), so "
        "reasoning = output. LiteLLM 1.109.1 carries only the introductory rates (its own "
        "vertex_ai/gemini-4-argon-cyber-permissive entry is exactly twice each of them); every other "
        "rate is composed from the published ones, which gives cached input $0.20/M and batch "
        "$2/$10/$0.10, as genai-prices records them (citing ai.google.dev/gemini-api/docs/pricing) and "
        "LiteLLM's announcement states the cached price. No Vertex AI price page was found: the vertex_ai "
        "entry, priced like the Gemini API's in LiteLLM, takes the same change. Google Search grounding "
        "($14/1k) is not part of the change.",
        change=PriceChange(
            start=datetime(2026, 12, 1, tzinfo=UTC),
            rates={"input": D("4E-6"), "output": D("2E-5"), "reasoning": D("2E-5")},
            url="https://ai.google.dev/gemini-api/docs/generate-content/latest-model?authuser=0&hl=zh-cn",
            keep="web_search.*",
        ),
    ),
)
