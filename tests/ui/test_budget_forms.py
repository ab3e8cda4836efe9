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


TEAM = {"model_rpm_limit": {"gpt-4o": 30}, "model_tpm_limit": {"gpt-4o": 1000, "claude": 500}}


def _posted_rates(**changes: str) -> dict[str, str]:
    """A team's form as the page fills it from TEAM, with ``changes`` typed in."""
    shown = form_from_entity(TEAM, "UTC", with_temp=False, with_rates=True)
    form = {f"was_{k}": v for k, v in shown.was.items()}
    for i, row in enumerate(shown.rates or ()):
        form |= {f"rate_{name}_{i}": value for name, value in row.items()}
    return form | changes


def test_rate_limits_one_row_per_model_sent_only_when_changed() -> None:
    shown = form_from_entity(TEAM, "UTC", with_temp=False, with_rates=True)
    assert shown.rates is not None and shown.rates[:2] == [
        {"model": "gpt-4o", "rpm": "30", "tpm": "1000"},
        {"model": "claude", "rpm": "", "tpm": "500"},
    ]
    assert len(shown.rates) == 2 + BLANK_ROWS
    assert form_from_entity(TEAM, "UTC", with_temp=False).rates is None  # users, customers: no such part
    assert budget_changes(_posted_rates(), "UTC", with_temp=False, with_rates=True) == {}
    # Only the map that changed is sent, whole.
    assert budget_changes(_posted_rates(rate_rpm_1="6"), "UTC", with_temp=False, with_rates=True) == {
        "model_rpm_limit": {"gpt-4o": 30, "claude": 6}
    }
    body = budget_changes(
        _posted_rates(rate_model_2="o3", rate_tpm_2="42"), "UTC", with_temp=False, with_rates=True
    )
    assert body == {"model_tpm_limit": {"gpt-4o": 1000, "claude": 500, "o3": 42}}
    # Emptying every row removes both maps (None: no per-model limit).
    emptied = {f"rate_{n}_{i}": "" for i in range(2) for n in ("model", "rpm", "tpm")}
    assert budget_changes(_posted_rates(**emptied), "UTC", with_temp=False, with_rates=True) == {
        "model_rpm_limit": None,
        "model_tpm_limit": None,
    }


def test_rate_rows_need_a_name_and_a_refusal_marks_its_field() -> None:
    with pytest.raises(ApiError, match="row 3 needs the model"):
        budget_changes(_posted_rates(rate_rpm_2="5"), "UTC", with_temp=False, with_rates=True)
    with pytest.raises(ApiError, match="appears twice"):
        budget_changes(_posted_rates(rate_model_1="gpt-4o"), "UTC", with_temp=False, with_rates=True)
    posted = _posted_rates(rate_tpm_1="lots")
    assert budget_changes(posted, "UTC", with_temp=False, with_rates=True) == {
        "model_tpm_limit": {"gpt-4o": 1000, "claude": "lots"}  # for the API to refuse by name
    }
    shown = refused(
        posted, ApiError(422, "model_tpm_limit.claude: Input should be a valid integer"), with_rates=True
    )
    assert shown.invalid == {"rate_tpm_1"} and shown.rates is not None and shown.rates[1]["tpm"] == "lots"


def test_digits_that_are_not_ascii_go_to_the_api_as_text() -> None:
    # "²".isdigit() is true and int("²") raises: the form must not turn it into a 500.
    posted = _posted_rates(rate_rpm_1="²")
    assert budget_changes(posted, "UTC", with_temp=False, with_rates=True) == {
        "model_rpm_limit": {"gpt-4o": 30, "claude": "²"}  # for the API to refuse by name (422)
    }


def test_a_limit_of_digits_that_are_not_ascii_is_refused_by_name() -> None:
    from spendgate.ui.pages.edits import limit_changes

    assert limit_changes({"tpm_limit": "500"}, editing=False) == {"tpm_limit": 500}
    with pytest.raises(ApiError, match="tpm_limit: a whole number") as refused_:
        limit_changes({"tpm_limit": "5²"}, editing=False)
    assert refused_.value.status == 422
