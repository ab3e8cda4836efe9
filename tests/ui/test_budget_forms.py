"""The windows form's rules without a browser: only what changed is sent, amounts are
compared as numbers and sent as exact text, emptied rows go, a model row needs its name,
and a refusal marks the input its message names."""

from __future__ import annotations

from decimal import Decimal

import pytest

from spendgate.ui.api import ApiError
from spendgate.ui.pages.budget_forms import BLANK_ROWS, budget_changes, form_from_entity, refused

KEY = {
    "budget_limits": [{"budget_duration": "7d", "max_budget": Decimal("10")}],
    "model_max_budget": {
        "gpt-4o": {"max_budget": Decimal("0.5"), "budget_duration": "24h", "tpm_limit": None}
    },
    "temp_budget_increase": Decimal("2"),
    "temp_budget_expiry": "2030-01-01T00:00:00+00:00",
}


def _posted(**changes: str) -> dict[str, str]:
    """The form as the page fills it from KEY (Europe/Berlin), with ``changes`` typed in."""
    shown = form_from_entity(KEY, "Europe/Berlin", with_temp=True)
    form = {f"was_{k}": v for k, v in shown.was.items()}
    for i, row in enumerate(shown.limits):
        form |= {f"limit_{name}_{i}": value for name, value in row.items()}
    for i, row in enumerate(shown.models):
        form |= {f"model_{name}_{i}": value for name, value in row.items()}
    form |= {"temp_increase": shown.temp_increase, "temp_expiry": shown.temp_expiry}
    return form | changes


def test_the_form_shows_the_current_values_and_blank_rows() -> None:
    shown = form_from_entity(KEY, "Europe/Berlin", with_temp=True)
    assert shown.limits[0] == {"duration": "7d", "amount": "10"}
    assert len(shown.limits) == 1 + BLANK_ROWS and len(shown.models) == 1 + BLANK_ROWS
    assert shown.temp_expiry == "2030-01-01T01:00"  # in the page's zone
    assert budget_changes(_posted(), "Europe/Berlin", with_temp=True) == {}


def test_only_the_changed_parts_are_sent_exactly() -> None:
    assert budget_changes(_posted(limit_amount_0="10.000"), "UTC", with_temp=True) == {}  # same number
    body = budget_changes(
        _posted(limit_amount_0="10.000000001", limit_duration_1="1mo", limit_amount_1="40"),
        "UTC",
        with_temp=True,
    )
    assert body == {
        "budget_limits": [
            {"budget_duration": "7d", "max_budget": "10.000000001"},
            {"budget_duration": "1mo", "max_budget": "40"},
        ]
    }
    assert budget_changes(_posted(limit_duration_0="", limit_amount_0=""), "UTC", with_temp=True) == {
        "budget_limits": []
    }
    assert budget_changes(
        _posted(model_model_0="", model_amount_0="", model_duration_0=""), "UTC", with_temp=True
    ) == {"model_max_budget": None}
    body = budget_changes(_posted(temp_expiry="2030-06-01T12:00"), "Europe/Berlin", with_temp=True)
    assert body == {"temp_budget_increase": "2", "temp_budget_expiry": "2030-06-01T12:00:00+02:00"}
    assert budget_changes(_posted(temp_increase="", temp_expiry=""), "UTC", with_temp=True) == {
        "temp_budget_increase": None,
        "temp_budget_expiry": None,
    }


def test_model_rows_need_a_name_and_a_refusal_marks_its_field() -> None:
    with pytest.raises(ApiError, match="row 2 needs the model"):
        budget_changes(_posted(model_amount_1="3"), "UTC", with_temp=True)
    with pytest.raises(ApiError, match="appears twice"):
        budget_changes(_posted(model_model_1="gpt-4o", model_amount_1="3"), "UTC", with_temp=True)
    posted = _posted(limit_duration_0="7x")
    shown = refused(posted, ApiError(422, "budget_limits.0.budget_duration: Invalid budget_duration '7x'"))
    assert shown.invalid == {"limit_duration_0"} and shown.limits[0]["duration"] == "7x"
    shown = refused(
        posted, ApiError(422, "model_max_budget.gpt-4o.tpm_limit: Input should be a valid integer")
    )
    assert shown.invalid == {"model_tpm_0"}
    assert refused(posted, ApiError(422, "temp_budget_expiry: must be RFC 3339")).invalid == {"temp_expiry"}
