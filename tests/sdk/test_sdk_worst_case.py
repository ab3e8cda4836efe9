"""The SDK's worst cases (a call's reservation, ``BudgetManager.check_and_reserve``) are
kept per model, provider and price book (``estimate.KeyedTarget``): equal to the ones
computed afresh, and a book changed by ``register_prices`` is a new key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

import spendgate
from spendgate.core.pricing.catalogue import PriceBook
from spendgate.costs import default_price_book
from spendgate.enforcement import estimate
from spendgate.enforcement.estimate import target_worst_case
from spendgate.sdk.budget_reservation import _Target, worst_case
from spendgate.sdk.metering import InstrumentOptions, MeteredCall, PricedModel


@pytest.fixture(autouse=True)
def bundled_prices() -> Iterator[None]:
    spendgate.reset_price_book()
    estimate._MEMO.clear()
    yield
    spendgate.reset_price_book()
    estimate._MEMO.clear()


class _Unkeyed:
    """The same pricing as ``target`` without a key: computed afresh every time."""

    def __init__(self, target: PricedModel | _Target) -> None:
        self.target = target
        self.price_model = target.price_model
        self.price_provider = target.price_provider
        self.price = target.price

    @property
    def book(self) -> PriceBook:
        return self.target.book


def _call(body: bytes) -> MeteredCall:
    request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions", content=body)
    call = MeteredCall.open(request, InstrumentOptions(), async_call=False)
    assert call is not None
    return call


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("gemini-2.5-pro", "gemini"),
        ("o3", "openai"),
    ],
)
@pytest.mark.parametrize("tier", [None, "priority", "flex"])
def test_a_models_kept_worst_case_equals_the_computed_one(
    model: str, provider: str, tier: str | None
) -> None:
    target = PricedModel(model, provider)
    for prompt, output in [(0, 0), (12, 5), (12, 5), (250_000, 8_192), (250_000, 8_192), (7, 100_000)]:
        expected = target_worst_case(_Unkeyed(target), prompt, output, service_tier=tier)
        assert target_worst_case(target, prompt, output, service_tier=tier) == expected
    # kept unless the price has a history (o3's has: its worst case depends on the time)
    assert bool(estimate._MEMO) == (default_price_book().resolve_static(model, provider) is not None)


def test_a_registered_price_is_a_new_key() -> None:
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}],"max_tokens":100}'
    before = _call(body).worst_case()[0]
    assert _call(body).worst_case()[0] == before  # kept
    spendgate.register_prices({"gpt-4o": {"input_cost_per_token": 1e-3, "output_cost_per_token": 2e-3}})
    after = _call(body).worst_case()[0]
    assert after == target_worst_case(_Unkeyed(PricedModel("gpt-4o", "openai")), 6, 100) != before
    assert after == 6 * 1_000_000 + 100 * 2_000_000  # the prompt estimate: 4 of framing, 2 of "hello"
    spendgate.reset_price_book()
    assert _call(body).worst_case()[0] == before


def test_a_budget_managers_kept_worst_case_equals_the_computed_one() -> None:
    book = default_price_book()
    at = datetime(2026, 6, 1, tzinfo=UTC)
    messages = [{"role": "user", "content": "x" * 4_000}]
    first = worst_case("gpt-4o", messages, 1_000, book, at)
    assert worst_case("gpt-4o", messages, 1_000, book, at) == first
    expected = target_worst_case(_Unkeyed(_Target("gpt-4o", book)), first.prompt_tokens, 1_000, at=at)
    assert first.nanos == expected > 0
    assert any(key[0][0] is _Target for key in estimate._MEMO)  # type: ignore[index]
