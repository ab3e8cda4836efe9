"""FOCUS 1.2 rows for spend events: one row per event per meter (token-level SKUs).

Why a module of its own: the mapping from a ledger event to the FinOps Open Cost and Usage
Specification is a set of decisions (which meters, which quantities, what "list price"
means) that finance must be able to read in one place; docs/exports.md states them.

* A **meter** is one cost item of the price breakdown (``input``, ``cache_read``,
  ``cache_write``, ``output``, ``reasoning``, audio / image / video per side, ``tools``):
  ``SkuId`` = ``<model>/<meter>``. Its ``ConsumedQuantity`` is the tokens the calculator
  billed under that item (the same carving as :mod:`spendgate.core.pricing.calculator`:
  cache reads and writes and modality tokens are carved out of the prompt, reasoning and
  modality tokens out of the output); a meter priced by another unit (characters, queries,
  seconds, images, web-search calls) when it has no tokens counts that unit instead.
* ``BilledCost`` = ``EffectiveCost`` = ``ContractedCost``: the nano-USD the ledger billed
  for that item, with the event's discount and margin spread over its meters by largest
  remainder, so the rows of an event add up to its ``cost_nanos`` exactly.
* ``ListCost``: the same usage priced by the catalogue (the price book) at the **standard
  tier**, at the time of the event, without discount or margin, per meter at that meter's
  published rate. Batch, flex and priority savings (or premiums) and discounts are
  ``ListCost - EffectiveCost``. When the book does not know the model, the event's own
  pre-discount item cost stands in (``x_ListCostSource`` says which).
* An unpriced event keeps its rows (quantities, cost 0) with ``x_Unpriced`` true.
* An adjustment (an administrator set a key's spend, :mod:`spendgate.ledger.adjustments`)
  is one row of ``ChargeCategory`` ``Adjustment``: its amount, no quantity, no list cost.

Money is exact decimal text (never a float); times are UTC ``YYYY-MM-DDTHH:MM:SSZ``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Context, Decimal
from typing import Any

import orjson

from spendgate.core.money import ZERO, allocate_nanos, from_nano, tidy, usd_text
from spendgate.core.pricing.breakdown import ITEMS, CostBreakdown
from spendgate.core.pricing.catalogue import PriceBook
from spendgate.core.usage.model import Usage

__all__ = [
    "FOCUS_COLUMNS",
    "METERS",
    "FocusEvent",
    "ListPricer",
    "Meter",
    "focus_rows",
    "meter_quantities",
]

_DIV = Context(prec=28)
_EXACT = Context(prec=60)


@dataclass(frozen=True, slots=True)
class Meter:
    """One billed item of a call and the SKU it is exported as."""

    item: str
    """The cost item (:data:`spendgate.core.pricing.breakdown.ITEMS`)."""
    sku: str
    """The SKU suffix: ``SkuId`` is ``<model>/<sku>``."""
    name: str
    """``SkuMeter``."""


METERS: tuple[Meter, ...] = (
    Meter("input", "input", "Input Tokens"),
    Meter("cache_read", "cached-input", "Cached Input Tokens"),
    Meter("cache_write", "cache-write", "Cache Write Tokens"),
    Meter("input_audio", "input-audio", "Input Audio Tokens"),
    Meter("input_image", "input-image", "Input Image Tokens"),
    Meter("input_video", "input-video", "Input Video Tokens"),
    Meter("output", "output", "Output Tokens"),
    Meter("reasoning", "reasoning", "Reasoning Tokens"),
    Meter("output_audio", "output-audio", "Output Audio Tokens"),
    Meter("output_image", "output-image", "Output Image Tokens"),
    Meter("output_video", "output-video", "Output Video Tokens"),
    Meter("tools", "web-search", "Web Search Requests"),
)
_ADJUSTMENT = Meter("adjustment", "fee", "Request Fee")
"""Carries a discount or margin when no meter has a cost to spread it over."""

FOCUS_COLUMNS: dict[str, str] = {
    # name -> type: "decimal", "datetime", "string", "json", "boolean" (nullable or not is
    # in REQUIRED below). FOCUS 1.2 columns first, then the 1.3 provider name, then x_.
    "BillingAccountId": "string",
    "BillingAccountName": "string",
    "BillingAccountType": "string",
    "SubAccountId": "string",
    "SubAccountName": "string",
    "SubAccountType": "string",
    "BillingPeriodStart": "datetime",
    "BillingPeriodEnd": "datetime",
    "ChargePeriodStart": "datetime",
    "ChargePeriodEnd": "datetime",
    "ChargeCategory": "string",
    "ChargeClass": "string",
    "ChargeDescription": "string",
    "ChargeFrequency": "string",
    "PricingCategory": "string",
    "BillingCurrency": "string",
    "PricingCurrency": "string",
    "BilledCost": "decimal",
    "EffectiveCost": "decimal",
    "ContractedCost": "decimal",
    "ListCost": "decimal",
    "ListUnitPrice": "decimal",
    "PricingQuantity": "decimal",
    "PricingUnit": "string",
    "ConsumedQuantity": "decimal",
    "ConsumedUnit": "string",
    "ProviderName": "string",
    "PublisherName": "string",
    "InvoiceIssuerName": "string",
    "ServiceProviderName": "string",
    "ServiceName": "string",
    "ServiceCategory": "string",
    "SkuId": "string",
    "SkuMeter": "string",
    "ResourceId": "string",
    "Tags": "json",
    "x_RequestId": "string",
    "x_ApiKey": "string",
    "x_UserId": "string",
    "x_EndUser": "string",
    "x_OrganizationId": "string",
    "x_RequestedModel": "string",
    "x_Model": "string",
    "x_ServiceTier": "string",
    "x_Status": "string",
    "x_CatalogueVersion": "string",
    "x_PriceSource": "string",
    "x_Unpriced": "boolean",
    "x_UnpricedReason": "string",
    "x_Estimated": "boolean",
    "x_BatchId": "string",
    "x_OperationId": "string",
    "x_ListCostSource": "string",
    "x_BilledCostNanos": "integer",
}
"""Every column of a FOCUS export, in order, with its type."""

REQUIRED: frozenset[str] = frozenset(
    {
        "BillingAccountId",
        "BillingAccountType",
        "BillingPeriodStart",
        "BillingPeriodEnd",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "ChargeCategory",
        "ChargeDescription",
        "ChargeFrequency",
        "PricingCategory",
        "BillingCurrency",
        "PricingCurrency",
        "BilledCost",
        "EffectiveCost",
        "ContractedCost",
        "ListCost",
        "ProviderName",
        "PublisherName",
        "InvoiceIssuerName",
        "ServiceProviderName",
        "ServiceName",
        "ServiceCategory",
        "SkuId",
        "SkuMeter",
        "Tags",
        "x_RequestId",
        "x_Unpriced",
        "x_Estimated",
        "x_ListCostSource",
        "x_BilledCostNanos",
    }
)
"""Columns never empty (the others are null where the event does not say)."""

_SERVICE_NAMES = {
    "openai": "OpenAI API",
    "anthropic": "Anthropic API",
    "azure": "Azure OpenAI Service",
    "azure_ai": "Azure AI Foundry",
    "bedrock": "Amazon Bedrock",
    "vertex_ai": "Vertex AI",
    "gemini": "Gemini API",
}


@dataclass(frozen=True, slots=True)
class FocusEvent:
    """What a FOCUS row needs of one ledger event (built by :mod:`spendgate.ledger.exports`)."""

    event_id: str
    occurred_at: datetime
    cost_nanos: int
    cost_items: Mapping[str, int]
    usage: Usage
    unpriced: bool
    unpriced_reason: str | None
    estimated: bool
    status: str
    service_tier: str | None
    catalogue_version: str | None
    price_source: str | None
    model: str | None
    resolved_model: str | None
    requested_model: str | None
    provider: str | None
    deployment_id: str | None
    api_key_hash: str | None
    user_id: str | None
    team_id: str | None
    team_alias: str | None
    organization_id: str | None
    end_user: str | None
    tags: Sequence[str]
    batch_id: str | None
    operation_id: str | None


def meter_quantities(usage: Usage) -> dict[str, tuple[int | Decimal, str]]:
    """``item -> (quantity, unit)`` for every meter the usage has a quantity for.

    Tokens are carved exactly as the calculator bills them; a meter without tokens counts
    its other unit (characters, queries, seconds, images, web-search calls) if it has one.
    """
    u = usage
    total_in = u.input_tokens
    cache_read = min(u.cache_read_tokens, total_in)
    cache_write = min(u.cache_write_tokens, total_in - cache_read)
    remaining = total_in - cache_read - cache_write
    audio_in = image_in = video_in = 0
    if u.input_audio_tokens or u.input_image_tokens or u.input_video_tokens:
        cached_audio = min(u.cache_read_audio_tokens, cache_read)
        audio_in = min(max(u.input_audio_tokens - cached_audio, 0), remaining)
        remaining -= audio_in
        image_in = min(u.input_image_tokens, remaining)
        remaining -= image_in
        video_in = min(u.input_video_tokens, remaining)
        remaining -= video_in
    total_out = u.output_tokens
    reasoning = min(u.reasoning_tokens, total_out)
    rest = total_out - reasoning
    audio_out = image_out = video_out = 0
    if u.output_audio_tokens or u.output_image_tokens or u.output_video_tokens:
        audio_out = min(u.output_audio_tokens, rest)
        rest -= audio_out
        image_out = min(u.output_image_tokens, rest)
        rest -= image_out
        video_out = min(u.output_video_tokens, rest)
        rest -= video_out
    tokens: dict[str, int] = {
        "input": remaining,
        "cache_read": cache_read,
        "cache_write": cache_write,
        "input_audio": audio_in,
        "input_image": image_in,
        "input_video": video_in,
        "output": rest,
        "reasoning": reasoning,
        "output_audio": audio_out,
        "output_image": image_out,
        "output_video": video_out,
    }
    other: dict[str, list[tuple[int | Decimal, str]]] = {
        "input": [(u.input_characters, "Characters"), (u.queries, "Queries")],
        "input_image": [(u.input_images, "Images")],
        "output": [(u.output_characters, "Characters"), (u.seconds, "Seconds")],
        "output_image": [(u.images, "Images")],
        "output_video": [(u.seconds, "Seconds")],
        "tools": [(u.web_search_requests, "Requests")],
    }
    out: dict[str, tuple[int | Decimal, str]] = {}
    for meter in METERS:
        count = tokens.get(meter.item, 0)
        if count:
            out[meter.item] = (count, "Tokens")
            continue
        for value, unit in other.get(meter.item, ()):
            if value:
                out[meter.item] = (value, unit)
                break
    return out


ListPricer = Callable[[FocusEvent], tuple[dict[str, Decimal], str] | None]
"""``event -> ({item: list cost}, source)``, or None when the book cannot price it."""


def book_list_pricer(book: PriceBook | None = None) -> ListPricer:
    """The standard-tier list price of an event's usage in ``book`` (default: the
    process-wide book), at the event's time, without discount or margin."""
    from spendgate.costs import price

    def pricer(event: FocusEvent) -> tuple[dict[str, Decimal], str] | None:
        name = event.resolved_model or event.model
        if not name:
            return None
        result: CostBreakdown = price(
            name, event.usage, provider=event.provider, at=event.occurred_at, book=book
        )
        if not result.priced:
            return None
        return {m.item: getattr(result, m.item) for m in METERS}, f"catalogue:{result.catalogue_version}"

    return pricer


def _spread(weights: list[Decimal], total_nanos: int) -> list[int]:
    """``total_nanos`` split in proportion to ``weights`` (nano-USD), adding up exactly."""
    whole = sum(weights, ZERO)
    if not whole:
        return [0] * len(weights)
    scale = _EXACT.divide(Decimal(total_nanos), whole)
    return allocate_nanos([_EXACT.multiply(w, scale).scaleb(-9) for w in weights], total_nanos)


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _dec(value: Decimal | int) -> str:
    return f"{tidy(Decimal(value)):f}"


def _hour(at: datetime, zone: tzinfo) -> tuple[datetime, datetime]:
    """The clock hour of the zone holding ``at`` (a :30 or :45 boundary in some zones)."""
    local = at.astimezone(zone)
    start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return start, start + timedelta(hours=1)


def _tags(tags: Sequence[str]) -> str:
    return orjson.dumps(dict.fromkeys(tags, "")).decode()


def _adjustment_row(event: FocusEvent, billing_period: tuple[datetime, datetime], zone: tzinfo) -> list[Any]:
    """An adjustment event as FOCUS: ChargeCategory ``Adjustment``, one-time, no quantity,
    no list cost; its amount (negative for a reset) is billed to the key alone."""
    period_start, period_end = _hour(event.occurred_at, zone)
    cost = usd_text(event.cost_nanos)
    values: dict[str, Any] = {
        "BillingAccountId": event.organization_id or "default",
        "BillingAccountName": event.organization_id,
        "BillingAccountType": "Organization",
        "BillingPeriodStart": _utc(billing_period[0]),
        "BillingPeriodEnd": _utc(billing_period[1]),
        "ChargePeriodStart": _utc(period_start),
        "ChargePeriodEnd": _utc(period_end),
        "ChargeCategory": "Adjustment",
        "ChargeDescription": "key spend set by an administrator (/key/update spend)",
        "ChargeFrequency": "One-Time",
        "PricingCategory": "Standard",
        "BillingCurrency": "USD",
        "PricingCurrency": "USD",
        "BilledCost": cost,
        "EffectiveCost": cost,
        "ContractedCost": cost,
        "ListCost": "0",
        "ProviderName": "spendgate",
        "PublisherName": "spendgate",
        "InvoiceIssuerName": "spendgate",
        "ServiceProviderName": "spendgate",
        "ServiceName": "spendgate budgets",
        "ServiceCategory": "Management and Governance",
        "SkuId": "spendgate/key-spend-adjustment",
        "SkuMeter": "Key Spend Adjustment",
        "Tags": _tags(event.tags),
        "x_RequestId": event.event_id,
        "x_ApiKey": event.api_key_hash,
        "x_Status": event.status,
        "x_Unpriced": False,
        "x_Estimated": False,
        "x_ListCostSource": "adjustment",
        "x_BilledCostNanos": event.cost_nanos,
    }
    return [values.get(name) for name in FOCUS_COLUMNS]


def focus_rows(
    event: FocusEvent,
    *,
    billing_period: tuple[datetime, datetime],
    zone: tzinfo,
    list_pricer: ListPricer,
) -> Iterator[list[Any]]:
    """The FOCUS rows of one event, each a list in :data:`FOCUS_COLUMNS` order.

    An event that used nothing and cost nothing has no row. An adjustment (an administrator
    set a key's spend) is one ``Adjustment`` row of its amount, not usage.
    """
    if event.status == "adjustment":
        yield _adjustment_row(event, billing_period, zone)
        return
    quantities = meter_quantities(event.usage)
    items = event.cost_items
    meters = [m for m in METERS if m.item in quantities or items.get(m.item)]
    adjustment = sum(items.get(k, 0) for k in ITEMS if k not in {m.item for m in METERS})
    weights = [Decimal(items.get(m.item, 0)) for m in meters]
    if adjustment and not any(weights):
        meters.append(_ADJUSTMENT)
        weights.append(Decimal(1))
    if not meters:
        return
    billed = _spread(weights, event.cost_nanos)
    listed: dict[str, Decimal]
    if event.unpriced:
        listed, source = {}, "unpriced"
    else:
        found = list_pricer(event)
        if found is not None:
            listed, source = found
        else:
            listed = {m.item: from_nano(items.get(m.item, 0)) for m in METERS}
            source = "billed"
    model = event.resolved_model or event.model or "unknown"
    provider = event.provider or "unknown"
    period_start, period_end = _hour(event.occurred_at, zone)
    common_head = [
        event.organization_id or "default",
        event.organization_id,
        "Organization",
        event.team_id or None,
        event.team_alias,
        "Team" if event.team_id else None,
        _utc(billing_period[0]),
        _utc(billing_period[1]),
        _utc(period_start),
        _utc(period_end),
        "Usage",
        None,
    ]
    tier = event.service_tier
    for meter, nanos in zip(meters, billed, strict=True):
        quantity, unit = quantities.get(meter.item, (None, None))
        list_cost = listed.get(meter.item, ZERO)
        unit_price = (
            _dec(_DIV.divide(list_cost, Decimal(quantity)))
            if quantity and not event.unpriced and meter is not _ADJUSTMENT
            else None
        )
        cost = usd_text(nanos)
        yield [
            *common_head,
            f"{model} {meter.name.lower()}" + (f" ({tier} tier)" if tier else ""),
            "Usage-Based",
            "Standard",
            "USD",
            "USD",
            cost,
            cost,
            cost,
            _dec(list_cost),
            unit_price,
            _dec(quantity) if quantity is not None else None,
            unit,
            _dec(quantity) if quantity is not None else None,
            unit,
            provider,
            provider,
            provider,
            provider,
            _SERVICE_NAMES.get(provider, f"{provider} API"),
            "AI and Machine Learning",
            f"{model}/{meter.sku}",
            meter.name,
            event.deployment_id,
            _tags(event.tags),
            event.event_id,
            event.api_key_hash,
            event.user_id,
            event.end_user,
            event.organization_id,
            event.requested_model,
            event.model,
            tier,
            event.status,
            event.catalogue_version,
            event.price_source,
            event.unpriced,
            event.unpriced_reason,
            event.estimated,
            event.batch_id,
            event.operation_id,
            source,
            nanos,
        ]
