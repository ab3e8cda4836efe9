"""How an upstream's answer is metered, for every caller that prices one: the gateway's
request path and the SDK's metered transports.

Written once here (moved down from the gateway) so a call costs the same to the nano-USD
whether it went through the gateway or an instrumented client: the service tier billed,
the generated text of an answer that came without usage (for an estimate), and the usage
of a stream however it ended.
"""

from __future__ import annotations

import orjson

from spendgate.core.pricing.spec import SERVICE_TIERS
from spendgate.core.usage.model import Usage
from spendgate.providers.base import Exchange, StreamTranslator, estimate_text_tokens

__all__ = ["billed_tier", "response_text", "stream_usage"]

_SURCHARGED_TIERS = frozenset({"priority"})
"""Tiers dearer than standard: billed as requested even when the answer does not say."""


def billed_tier(served: str | None, requested: str | None = None) -> str | None:
    """The service tier a call is priced at (None: standard), from normalized names
    (:mod:`spendgate.core.usage.tier`).

    The tier the answer says served the call wins (OpenAI reports it on every answer, and
    a ``priority`` request over its ramp limit is served and billed at standard). When the
    answer does not say, the requested tier counts if it is dearer than standard
    (``priority``); a discount (``flex``) needs the upstream to confirm it, since a server
    that ignores the field serves, and charges, the standard tier. A tier without rates of
    its own in the catalogue prices at the standard rates.
    """
    tier = served if served is not None else (requested if requested in _SURCHARGED_TIERS else None)
    return tier if tier in SERVICE_TIERS else None


def response_text(body: bytes) -> str:
    """The generated text of a non-streamed answer (for an estimate when it has no usage)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    parts: list[str] = []
    if isinstance(parsed, dict):
        for choice in parsed.get("choices") or []:
            if isinstance(choice, dict):
                message = choice.get("message") or {}
                parts.append(str(message.get("content") or "") if isinstance(message, dict) else "")
                parts.append(str(choice.get("text") or ""))
        for block in parsed.get("content") or []:
            if isinstance(block, dict):
                parts.append(str(block.get("text") or ""))
        if isinstance(parsed.get("output_text"), str):
            parts.append(parsed["output_text"])
    return "".join(parts)


def stream_usage(translator: StreamTranslator, exchange: Exchange, finished: bool) -> tuple[Usage, bool]:
    """``(usage, final)`` of a stream that has ended, however it ended.

    ``final`` is True when the upstream sent its final usage and ended the stream properly
    (``finished``). Otherwise the usage is estimated: with no usage at all, the prompt from
    the request and the output from the text streamed; with a usage chunk but no proper
    end, its input counts are exact (sent first) and the output is at least what was
    streamed.
    """
    usage = translator.usage()
    final = usage is not None and finished
    if usage is None:
        usage = exchange.estimate(translator.text)
    elif not final:
        usage = usage.with_(output_tokens=max(usage.output_tokens, estimate_text_tokens(translator.text)))
    return usage, final
