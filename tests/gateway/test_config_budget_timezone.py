"""LiteLLM's two spellings of the budget calendar's zone (issue #17 item 3)."""

from __future__ import annotations

from typing import Any

import pytest

from spendgate.config import parse_config
from spendgate.errors import ConfigurationError


@pytest.mark.parametrize(
    "raw",
    [
        {"general_settings": {"budget_reset_timezone": "America/New_York"}},
        {"litellm_settings": {"timezone": "America/New_York"}},
        {
            "general_settings": {"budget_reset_timezone": "America/New_York"},
            "litellm_settings": {"timezone": "America/New_York"},
        },
    ],
)
def test_either_spelling_sets_the_budget_zone(raw: dict[str, Any]) -> None:
    assert parse_config(raw).litellm_settings.timezone == "America/New_York"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"general_settings": {"budget_reset_timezone": "Mars/Base"}},
            "general_settings.budget_reset_timezone",
        ),
        ({"general_settings": {"budget_reset_timezone": 5}}, "general_settings.budget_reset_timezone"),
        ({"litellm_settings": {"timezone": "Mars/Base"}}, "litellm_settings.timezone"),
        (
            {
                "general_settings": {"budget_reset_timezone": "UTC"},
                "litellm_settings": {"timezone": "Europe/Paris"},
            },
            "differ",
        ),
    ],
)
def test_a_bad_or_conflicting_zone_is_named(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_config(raw)


def test_litellm_budget_reset_time_is_accepted_with_a_warning() -> None:
    config = parse_config({"litellm_settings": {"budget_reset_time": "05:00"}})
    assert any("budget_reset_time" in w for w in config.warnings)
