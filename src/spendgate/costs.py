"""The pricing API: ``price``, and LiteLLM's ``cost_per_token`` and ``completion_cost``.

Token conventions (they differ between providers, and mixing them up double-bills):

* OpenAI's ``prompt_tokens`` *include* cached tokens (``prompt_tokens_details.cached_tokens``)
  and reasoning tokens are *part of* ``completion_tokens``.
* Anthropic's ``input_tokens`` *exclude* cache reads and cache writes, which it reports
  separately. The Anthropic extractor adds them back, so a :class:`Usage` always follows
  the OpenAI convention; ``cost_per_token``'s ``prompt_tokens`` does too.

``price`` returns a :class:`CostBreakdown`; for a model without a price, or a usage its
rates price at exactly $0 (a zero rate is a missing price unless the entry is declared
free), it is *unpriced* (``priced=False``), which callers must record as such.
``cost_per_token`` and ``completion_cost`` return plain numbers, so for them an unpriced
call raises :class:`~spendgate.errors.UnpricedModelError` instead of pretending it was free.

Usage is accepted as a spendgate :class:`Usage`, an OpenAI or Anthropic SDK usage object
(or LiteLLM's, which has OpenAI's shape), or a plain dict in either provider's shape;
anything else is a ``TypeError`` that says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from spendgate.core.money import ZERO, parse_rate, tidy
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.pricing.calculator import Adjustment, calculate
from spendgate.core.pricing.catalogue import Catalogue, PriceBook
from spendgate.core.pricing.spec import ModelEntry, PriceSpec, Rates, prices_nothing
from spendgate.core.pricing.table import cell
from spendgate.core.usage.model import Usage
from spendgate.errors import UnpricedModelError

__all__ = [
    "completion_cost",
    "cost_per_token",
    "default_price_book",
    "price",
    "register_prices",
    "reset_price_book",
]

_book: PriceBook | None = None
_TOKEN_RATES: dict[tuple[str, str | None], tuple[Decimal, Decimal] | None] = {}
"""(model, provider) → (input, output) rate of the default book, for models whose rates
nothing about a request or the time can change; None for every other model."""


def default_price_book() -> PriceBook:
    """The process-wide book: the bundled catalogue plus anything registered on top."""
    global _book
    if _book is None:
        from spendgate.catalogue.bundled import bundled_catalogue

        _book = PriceBook([bundled_catalogue()])
    return _book


def register_prices(layer: Catalogue | Mapping[str, Any], *, name: str = "registered") -> PriceBook:
    """Add an override layer on top of the default book (LiteLLM's ``register_model``).

    ``layer`` is a :class:`Catalogue`, a catalogue dict in spendgate's format, or a dict
    in LiteLLM's ``model_prices_and_context_window.json`` format. Declared rates replace
    the bundled ones for the models it names; everything else stays as bundled.
    """
    global _book
    if not isinstance(layer, Catalogue):
        data: Mapping[str, Any] = layer
        if data.get("format") is None:
            from spendgate.catalogue.litellm_format import litellm_to_catalogue

            data = litellm_to_catalogue(dict(data), name=name, version=name, prices_checked=None)
        layer = Catalogue.from_dict(data, name=name)
    _book = default_price_book().with_layer(layer)
    _TOKEN_RATES.clear()
    return _book


def reset_price_book() -> None:
    """Forget registered layers: back to the bundled catalogue alone."""
    global _book
    _book = None
    _TOKEN_RATES.clear()


_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "total_tokens")
_ACCEPTED = (
    "a spendgate Usage, an OpenAI or Anthropic SDK usage object (CompletionUsage, ResponseUsage,"
    " anthropic.types.Usage, …) or a dict in either provider's shape ({'prompt_tokens': …,"
    " 'completion_tokens': …} or {'input_tokens': …, 'output_tokens': …})"
)


def _usage_of(value: object, name: str = "usage") -> Usage:
    """``value`` as a :class:`Usage`: read with the OpenAI or Anthropic extractor."""
    if isinstance(value, Usage):
        return value
    if isinstance(value, Mapping):
        found = any(key in value for key in _USAGE_KEYS)
        got = f"a dict with keys {sorted(map(str, value))[:8]}"
    else:
        found = not isinstance(value, str | bytes | int | float | Decimal | list | tuple) and any(
            getattr(value, key, None) is not None for key in _USAGE_KEYS
        )
        got = f"a value of type {type(value).__name__}"
    if not found:
        raise TypeError(f"{name}: expected {_ACCEPTED}; got {got}")
    from spendgate.core.usage.detect import usage_from_response

    return usage_from_response(value)


def _custom_spec(
    custom_cost_per_token: Mapping[str, Any] | None, custom_cost_per_second: Any
) -> PriceSpec | None:
    if custom_cost_per_token is None and custom_cost_per_second is None:
        return None
    values: dict[str, Any] = {}
    if custom_cost_per_token is not None:
        names = {
            "input_cost_per_token": "input",
            "output_cost_per_token": "output",
            "cache_read_input_token_cost": "cache_read",
            "cache_creation_input_token_cost": "cache_write",
        }
        unknown = set(custom_cost_per_token) - set(names)
        if unknown:
            raise ValueError(f"custom_cost_per_token: unknown field(s) {', '.join(sorted(unknown))}")
        for key, field_name in names.items():
            if custom_cost_per_token.get(key) is not None:
                values[field_name] = parse_rate(custom_cost_per_token[key])
    if custom_cost_per_second is not None:
        values["per_second"] = parse_rate(custom_cost_per_second)
    return PriceSpec(rates=Rates(**values), source="custom")


def price(
    model: str,
    usage: Usage | Mapping[str, Any] | object | None = None,
    *,
    response: Any = None,
    provider: str | None = None,
    service_tier: str | None = None,
    at: datetime | None = None,
    book: PriceBook | None = None,
    custom_rates: Rates | PriceSpec | None = None,
    adjustment: Adjustment | None = None,
    response_time_ms: int | float | Decimal | None = None,
    search_context_size: str | None = None,
) -> CostBreakdown:
    """Price one call and itemize it.

    Args:
        model: the model as asked for or as served (``"gpt-4o"``, ``"azure/gpt-4o"``,
            ``"claude-sonnet-4-5"``, ``"gpt-4o-2024-08-06"``).
        usage: the call's usage: a :class:`Usage`, an OpenAI or Anthropic SDK usage
            object, or a dict in either's shape; or give ``response`` (an OpenAI or
            Anthropic SDK object, or its dict) and it is extracted.
        provider: the provider that served the call, when the name alone is ambiguous.
        service_tier: ``"batch"``, ``"flex"``, ``"priority"`` or None for standard.
        at: when the call happened (price history, off-peak windows); default now.
        book: the price layers to use; default :func:`default_price_book`.
        custom_rates: rates for this call only; they replace the catalogue entirely.
        adjustment: discount and margin to apply.
        response_time_ms: wall-clock duration, billed for per-second models.
        search_context_size: web-search context size asked for (``low``/``medium``/``high``).

    Returns:
        A :class:`CostBreakdown`; ``priced`` is False when no price is known, or when the
        usage prices at exactly $0 and the model is not declared free.

    Raises:
        TypeError: ``usage`` is none of the accepted kinds.
    """
    if usage is None:
        if response is None:
            raise TypeError("price() needs usage or a response")
        from spendgate.core.usage.detect import usage_from_response

        usage = usage_from_response(response)
        if not model:
            model = _response_model(response) or ""
    elif usage.__class__ is not Usage:
        usage = _usage_of(usage)
    assert isinstance(usage, Usage)
    when = at  # None = now; resolved lazily, only where prices depend on the time
    if search_context_size and not usage.search_context_size:
        usage = usage.with_(search_context_size=search_context_size)
    if response_time_ms is not None and not usage.seconds:
        usage = usage.with_(seconds=Decimal(str(response_time_ms)) / 1000)

    if custom_rates is not None:
        spec = custom_rates if isinstance(custom_rates, PriceSpec) else PriceSpec(rates=custom_rates)
        return calculate(
            spec,
            usage,
            model=model,
            resolved_model=None,
            provider=provider,
            service_tier=service_tier,
            at=when,
            adjustment=adjustment,
            catalogue_version=None,
            price_source=spec.source or "custom",
            free=prices_nothing(spec),
        )

    resolved = (book or _book or default_price_book()).resolve(model, provider, when)
    if resolved is None:
        return CostBreakdown(
            model=model,
            priced=False,
            provider=provider,
            usage=usage,
            service_tier=service_tier,
            catalogue_version=(book or default_price_book()).layers[0].version,
            unpriced_reason=f"no price is known for model {model!r}"
            + (f" from provider {provider!r}" if provider else ""),
        )
    entry: ModelEntry = resolved.entry
    # By position, in calculate()'s order: this is the per-request hot path.
    return calculate(
        resolved.spec,
        usage,
        model,
        entry.id,
        entry.provider,
        entry.mode,
        service_tier,
        when,
        entry.inclusive_thresholds,
        adjustment,
        resolved.catalogue_version,
        resolved.source,
        entry.free,
    )


def _response_model(response: Any) -> str | None:
    value = response.get("model") if isinstance(response, Mapping) else getattr(response, "model", None)
    return value if isinstance(value, str) else None


def _response_provider(response: Any) -> str | None:
    """The provider a result of ``spendgate.completion()`` (or LiteLLM's) says served it
    (``_hidden_params["custom_llm_provider"]``): its model name alone may be another
    provider's, or none (``llama-3.1-8b-instant`` served by ``groq``)."""
    hidden = getattr(response, "_hidden_params", None)
    provider = hidden.get("custom_llm_provider") if isinstance(hidden, Mapping) else None
    return provider if isinstance(provider, str) and provider else None


def cost_per_token(
    model: str = "",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    *,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    reasoning_tokens: int = 0,
    audio_input_tokens: int = 0,
    audio_output_tokens: int = 0,
    prompt_characters: int = 0,
    completion_characters: int = 0,
    number_of_queries: int = 0,
    audio_transcription_file_duration: float | Decimal = 0,
    response_time_ms: int | float | Decimal | None = None,
    custom_llm_provider: str | None = None,
    custom_cost_per_token: Mapping[str, Any] | None = None,
    custom_cost_per_second: Any = None,
    service_tier: str | None = None,
    usage_object: Usage | Mapping[str, Any] | object | None = None,
    at: datetime | None = None,
) -> tuple[Decimal, Decimal]:
    """LiteLLM-compatible: ``(prompt_cost, completion_cost)`` in Decimal USD.

    ``prompt_tokens`` follows the OpenAI convention: it *includes*
    ``cache_read_input_tokens`` and ``cache_creation_input_tokens``. Discounts and margins
    are not applied here (as in LiteLLM); ``completion_cost`` applies them.

    Raises:
        UnpricedModelError: no price is known for ``model``, or the usage prices at $0
            and the model is not declared free.
    """
    units = (
        reasoning_tokens
        or audio_input_tokens
        or audio_output_tokens
        or prompt_characters
        or completion_characters
        or number_of_queries
        or audio_transcription_file_duration
    )
    if (
        usage_object is None
        and prompt_tokens.__class__ is int
        and completion_tokens.__class__ is int
        and prompt_tokens >= 0
        and completion_tokens >= 0
        and not (
            units
            or cache_read_input_tokens
            or cache_creation_input_tokens
            or custom_cost_per_token is not None
            or custom_cost_per_second is not None
            or service_tier is not None
            or at is not None
            or response_time_ms is not None
        )
    ):
        # Plain token counts on a model whose rates nothing can change: two products.
        try:
            rates = _TOKEN_RATES[(model, custom_llm_provider)]
        except KeyError:
            rates = _token_rates(model, custom_llm_provider)
        if rates is not None:
            prompt_cost = rates[0] * prompt_tokens if prompt_tokens else ZERO
            completion = rates[1] * completion_tokens if completion_tokens else ZERO
            if prompt_cost or completion or not (prompt_tokens or completion_tokens):
                return tidy(prompt_cost), tidy(completion)
            # priced at $0: price() says whether that is free or unpriced, and why
    if usage_object is not None:
        usage = _usage_of(usage_object, "usage_object")
    elif not units:
        usage = Usage(
            input_tokens=prompt_tokens,
            cache_read_tokens=cache_read_input_tokens,
            cache_write_tokens=cache_creation_input_tokens,
            output_tokens=completion_tokens,
        )
    else:
        usage = Usage(
            input_tokens=prompt_tokens,
            cache_read_tokens=cache_read_input_tokens,
            cache_write_tokens=cache_creation_input_tokens,
            input_audio_tokens=audio_input_tokens,
            output_tokens=completion_tokens,
            reasoning_tokens=reasoning_tokens,
            output_audio_tokens=audio_output_tokens,
            input_characters=prompt_characters,
            output_characters=completion_characters,
            queries=number_of_queries,
            seconds=Decimal(repr(audio_transcription_file_duration))
            if isinstance(audio_transcription_file_duration, float)
            else Decimal(audio_transcription_file_duration),
        )
    custom = (
        None
        if custom_cost_per_token is None and custom_cost_per_second is None
        else _custom_spec(custom_cost_per_token, custom_cost_per_second)
    )
    result = price(
        model,
        usage,
        provider=custom_llm_provider,
        service_tier=service_tier,
        at=at,
        custom_rates=custom,
        response_time_ms=response_time_ms,
    )
    if not result.priced:
        raise UnpricedModelError(model, result.unpriced_reason)
    return tidy(result.prompt_cost), tidy(result.completion_cost)


def _token_rates(model: str, provider: str | None) -> tuple[Decimal, Decimal] | None:
    """The standard input and output rate of ``model`` in the default book, when they are
    the rates of every request with only prompt and completion tokens (cached)."""
    resolved = default_price_book().resolve_static(model, provider)
    rates = None
    if resolved is not None:
        spec = resolved.spec
        if not (spec.thresholds or spec.tiers or spec.off_peak is not None):
            standard = cell(spec, None, -1, None, False)
            rates = (standard.input, standard.output)
    if len(_TOKEN_RATES) < 65536:  # bounded: names come from callers
        _TOKEN_RATES[(model, provider)] = rates
    return rates


def completion_cost(
    completion_response: Any = None,
    model: str | None = None,
    usage: Usage | Mapping[str, Any] | object | None = None,
    *,
    custom_llm_provider: str | None = None,
    service_tier: str | None = None,
    batch: bool = False,
    custom_cost_per_token: Mapping[str, Any] | None = None,
    custom_cost_per_second: Any = None,
    response_time_ms: int | float | Decimal | None = None,
    search_context_size: str | None = None,
    adjustment: Adjustment | None = None,
    at: datetime | None = None,
    book: PriceBook | None = None,
) -> Decimal:
    """LiteLLM-compatible: the total cost of a call in Decimal USD.

    Give an OpenAI or Anthropic response (SDK object or dict), or ``model`` plus ``usage``
    (a :class:`Usage`, an OpenAI or Anthropic SDK usage object, or a dict in either's
    shape). The model defaults to the response's ``model``, the provider to the one its
    ``_hidden_params`` name (a result of ``spendgate.completion()``); ``batch=True`` is
    ``service_tier="batch"``.

    Raises:
        UnpricedModelError: no price is known for the model, or the usage prices at $0
            and the model is not declared free.
        TypeError: ``usage`` is none of the accepted kinds.
    """
    name = model or (_response_model(completion_response) if completion_response is not None else None)
    if not name:
        raise ValueError("completion_cost() needs a model, or a response that names one")
    if custom_llm_provider is None and completion_response is not None:
        custom_llm_provider = _response_provider(completion_response)
    tier = "batch" if batch else service_tier
    if tier is None and completion_response is not None:
        served = (
            completion_response.get("service_tier")
            if isinstance(completion_response, Mapping)
            else getattr(completion_response, "service_tier", None)
        )
        if served in ("flex", "priority"):
            tier = served
    result = price(
        name,
        usage,
        response=completion_response,
        provider=custom_llm_provider,
        service_tier=tier,
        at=at,
        book=book,
        custom_rates=_custom_spec(custom_cost_per_token, custom_cost_per_second),
        adjustment=adjustment,
        response_time_ms=response_time_ms,
        search_context_size=search_context_size,
    )
    if not result.priced:
        raise UnpricedModelError(name, result.unpriced_reason)
    return tidy(result.total)
