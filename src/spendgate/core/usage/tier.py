"""The service tier a call asked for and the one it was served at.

Providers sell the same tokens at several rates: OpenAI's ``flex`` (cheaper, slower) and
``priority`` (dearer, faster) next to the standard tier, Anthropic's ``priority``. The
request names the tier it wants (``service_tier``: ``auto``, ``default``, ``flex``,
``priority``; Anthropic: ``auto``, ``standard_only``) and the answer says which one
served it (OpenAI: ``service_tier`` in the response and in every stream chunk; Anthropic:
``usage.service_tier``), which can differ (a priority request over its ramp limit is
served, and billed, at the standard tier).

Names are normalized here, so the rest of the code sees one vocabulary: ``standard``
(OpenAI's ``default`` and ``auto``, Anthropic's ``standard`` and ``standard_only``),
``flex``, ``priority``, ``batch``, ``scale``. Anything else reads as not said (None).
The tier is not part of :class:`~spendgate.core.usage.model.Usage`: it says how the
counts are priced, not what was used.
"""

from __future__ import annotations

from spendgate.core.usage._access import dig, get

__all__ = ["STANDARD", "reported_service_tier", "requested_service_tier", "service_tier_name"]

STANDARD = "standard"

_NAMES = {
    "auto": STANDARD,
    "default": STANDARD,
    "standard": STANDARD,
    "standard_only": STANDARD,
    "flex": "flex",
    "priority": "priority",
    "batch": "batch",
    "scale": "scale",
}


def service_tier_name(value: object) -> str | None:
    """The normalized name of a tier as a provider or a client spells it (None: unknown)."""
    return _NAMES.get(value.lower()) if isinstance(value, str) else None


def reported_service_tier(response: object) -> str | None:
    """The tier an answer (a response, a stream chunk or event, an Anthropic message or
    its usage) says it was served at; None when it does not say."""
    if response.__class__ is dict:  # a parsed body or chunk: the usual case
        value = response.get("service_tier")
        if value.__class__ is str:
            tier = _NAMES.get(value.lower())
            if tier is not None:
                return tier
        elif value is None:  # said in the usage (Anthropic), or not at all
            usage = response.get("usage")
            if usage is None:
                return None
            if usage.__class__ is dict:
                return service_tier_name(usage.get("service_tier"))
    tier = service_tier_name(get(response, "service_tier"))
    if tier is None:
        tier = service_tier_name(dig(response, "usage", "service_tier"))
    return tier


def requested_service_tier(payload: object) -> str | None:
    """The tier a request body asks for (None: none named, the provider's default)."""
    return service_tier_name(get(payload, "service_tier"))
