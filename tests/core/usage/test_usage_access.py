from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest

from spendgate.core.usage import Usage, UsageError
from spendgate.core.usage._access import check_nesting, count, dig, get, items, optional_count, seconds, text
from spendgate.core.usage.model import MAX_COUNT, MAX_SECONDS


class Model:
    """A stand-in for an SDK (pydantic) object: attributes and methods."""

    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)

    def copy(self) -> Model:
        return self


def test_get_reads_dicts_and_objects() -> None:
    assert get({"a": 1}, "a") == 1
    assert get(SimpleNamespace(a=1), "a") == 1
    assert get(Model(a=1), "a") == 1
    assert get({"a": 1}, "b") is None
    assert get(SimpleNamespace(a=1), "b") is None
    assert get(None, "a") is None


def test_get_never_returns_methods_or_reads_scalars() -> None:
    assert get(Model(a=1), "copy") is None
    assert get("text", "count") is None
    assert get(b"bytes", "count") is None
    assert get(5, "real") is None


def test_dig_follows_a_path() -> None:
    payload = {"usage": SimpleNamespace(details={"cached_tokens": 7})}
    assert dig(payload, "usage", "details", "cached_tokens") == 7
    assert dig(payload, "usage", "missing", "cached_tokens") is None


@pytest.mark.parametrize(("value", "expected"), [(None, 0), (0, 0), (12, 12), (12.0, 12), (Decimal("3"), 3)])
def test_count_accepts_integers_and_integral_floats(value: object, expected: int) -> None:
    result = count(value, "usage.x")
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    "value", [-1, -1.0, 1.5, float("nan"), float("inf"), True, False, "12", [1], Decimal("1.5")]
)
def test_count_refuses_non_counts_naming_the_field(value: object) -> None:
    with pytest.raises(UsageError, match=r"usage\.prompt_tokens_details\.cached_tokens"):
        count(value, "usage.prompt_tokens_details.cached_tokens")


@pytest.mark.parametrize("value", [MAX_COUNT + 1, 10**30, 1e300, float(MAX_COUNT + 2), Decimal("1E+999999")])
def test_count_refuses_counts_out_of_range(value: object) -> None:
    """A broken upstream's usage never becomes a cost beyond 64-bit nano-USD."""
    with pytest.raises(UsageError, match=r"usage\.prompt_tokens must be a non-negative integer up to"):
        count(value, "usage.prompt_tokens")
    assert count(MAX_COUNT, "usage.prompt_tokens") == MAX_COUNT
    with pytest.raises(UsageError, match="out of range"):
        Usage(input_tokens=MAX_COUNT + 1)
    with pytest.raises(UsageError, match="seconds"):
        Usage(seconds=Decimal(MAX_SECONDS + 1))


def test_optional_count_keeps_absence() -> None:
    assert optional_count(None, "x") is None
    assert optional_count(0, "x") == 0


def test_seconds_are_exact_decimals() -> None:
    assert seconds(8.470000267028809, "duration") == Decimal("8.470000267028809")
    assert seconds(9, "duration") == Decimal(9)
    assert seconds(None, "duration") is None
    for bad in (-1, True, "9", float("nan"), 1e300):
        with pytest.raises(UsageError, match="duration"):
            seconds(bad, "duration")


def test_text_and_items() -> None:
    assert text("1024x1024", "size") == "1024x1024"
    assert text(None, "size") is None
    with pytest.raises(UsageError, match="size"):
        text(1024, "size")
    assert items(None, "choices") == ()
    assert items([1, 2], "choices") == [1, 2]
    with pytest.raises(UsageError, match="choices"):
        items("abc", "choices")


def test_check_nesting() -> None:
    ok = Usage(
        input_tokens=10, cache_read_tokens=6, cache_write_tokens=4, output_tokens=5, reasoning_tokens=5
    )
    assert check_nesting(ok, "usage") is ok
    with pytest.raises(UsageError, match="cache_read_tokens"):
        check_nesting(Usage(input_tokens=10, cache_read_tokens=8, cache_write_tokens=4), "usage")
    with pytest.raises(UsageError, match="reasoning_tokens"):
        check_nesting(Usage(output_tokens=3, reasoning_tokens=4), "usage")
    with pytest.raises(UsageError, match="cache_write_1h_tokens"):
        check_nesting(Usage(input_tokens=10, cache_write_tokens=2, cache_write_1h_tokens=3), "usage")
