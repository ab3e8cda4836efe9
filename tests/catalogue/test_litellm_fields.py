"""spendgate spec → LiteLLM's price fields: a LiteLLM entry converted in and written back
out gives its own fields and exact values again; undeclared rates stay absent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from spendgate.catalogue.litellm_fields import litellm_price_fields
from spendgate.catalogue.litellm_format import litellm_to_entries
from spendgate.core.pricing.spec import entry_from_dict

D = Decimal


def _round_trip(fields: dict[str, Any]) -> dict[str, Any]:
    [entry] = litellm_to_entries({"m": {"litellm_provider": "openai", "mode": "chat", **fields}})
    return litellm_price_fields(entry_from_dict(entry).prices[-1])


def test_declared_fields_come_back_under_their_litellm_names_exactly() -> None:
    declared = {
        "input_cost_per_token": "0.00000125",
        "output_cost_per_token": "0.00001",
        "cache_read_input_token_cost": "1.25e-7",
        "cache_creation_input_token_cost": "0.0000015625",
        "output_cost_per_reasoning_token": "0.00001",
        "input_cost_per_token_batches": "6.25e-7",
        "output_cost_per_token_batches": "0.000005",
        "input_cost_per_token_priority": "0.00000225",
        "output_cost_per_token_priority": "0.000018",
        "cache_read_input_token_cost_priority": "2.25e-7",
        "input_cost_per_token_above_200k_tokens": "0.0000025",
        "output_cost_per_token_above_200k_tokens": "0.000015",
    }
    fields = _round_trip(declared)
    assert fields == {name: D(value) for name, value in declared.items()}


def test_batch_without_its_own_rates_shows_the_half_price_billed_and_nothing_is_made_up() -> None:
    fields = _round_trip({"input_cost_per_token": "0.000002", "output_cost_per_token": "0.000008"})
    assert fields == {
        "input_cost_per_token": D("0.000002"),
        "output_cost_per_token": D("0.000008"),
        "input_cost_per_token_batches": D("0.000001"),
        "output_cost_per_token_batches": D("0.000004"),
    }


def test_web_search_prices_are_litellms_object() -> None:
    fields = _round_trip(
        {
            "input_cost_per_token": "0.000001",
            "search_context_cost_per_query": {
                "search_context_size_low": "0.025",
                "search_context_size_high": "0.05",
            },
        }
    )
    assert fields["search_context_cost_per_query"] == {
        "search_context_size_high": D("0.05"),
        "search_context_size_low": D("0.025"),
    }
