"""The response headers of the shared HTTP edge: names and value formats."""

from __future__ import annotations

import math

import pytest

from spendgate.http.headers import (
    cost_text,
    format_reset,
    format_wait,
    overhead_text,
    rate_limit_headers,
    retry_after_text,
)


def test_cost_is_exact_usd_or_unpriced() -> None:
    assert cost_text(62_500) == "0.0000625"
    assert cost_text(0) == "0"
    assert cost_text(12_500_000_000) == "12.5"
    assert cost_text(62_500, priced=False) == "unpriced"


def test_overhead_is_milliseconds_with_three_decimals() -> None:
    assert overhead_text(0.0012345) == "1.234"
    assert overhead_text(0) == "0.000"


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after_text(s) for s in (0, 0.001, 1, 1.2, 59.9)] == ["1", "1", "1", "2", "60"]


def test_format_reset() -> None:
    assert [format_reset(ms) for ms in (0, 20, 999, 1000, 1500, 60_000, 360_000, 3_723_000)] == [
        "0ms", "20ms", "999ms", "1s", "1.5s", "1m0s", "6m0s", "1h2m3s",
    ]  # fmt: skip
    assert format_reset(-5) == "0ms"
    assert format_reset(1500.0) == "1.5s"
    assert format_reset(3_723_000.0) == "1h2m3s"


def test_format_reset_has_one_format_for_any_number() -> None:
    """Fractions of a millisecond are rounded up, never written (``20.5ms``) or rounded down."""
    assert [format_reset(ms) for ms in (20.5, 999.1, 1500.2, 59_999.5, 0.0)] == [
        "21ms", "1s", "1.501s", "1m0s", "0ms",
    ]  # fmt: skip
    assert format_wait(1.5) == format_reset(1500) == "1.5s"


def _old_duration(seconds: float) -> str:
    """What the 429 answer wrote before it shared :func:`format_reset` (below an hour)."""
    ms = max(0, math.ceil(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    minutes, secs = divmod(ms / 1000, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{text}s" if minutes else f"{text}s"


@pytest.mark.parametrize(
    "seconds", [-1, 0, 0.0001, 0.02, 0.9994, 1, 1.5, 1.2345, 59.9999, 60, 61.5, 360, 3599.999]
)
def test_a_wait_is_written_as_before_below_an_hour(seconds: float) -> None:
    assert format_wait(seconds) == _old_duration(seconds)


def test_a_wait_of_an_hour_or_more_names_the_hours() -> None:
    assert format_wait(3700) == "1h1m40s"


def test_rate_limit_headers() -> None:
    assert rate_limit_headers("tokens", 5000, 3800, "30s") == {
        "x-ratelimit-limit-tokens": "5000",
        "x-ratelimit-remaining-tokens": "3800",
        "x-ratelimit-reset-tokens": "30s",
    }
    assert rate_limit_headers("requests", 10, 0, None) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "0",
    }
