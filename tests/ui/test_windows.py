"""A budget bar measures spend against what the gateway enforces: a key's limit plus its
unexpired temporary increase (issue #18: "temporary increases and their expiry")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from spendgate.ui.pages.windows import windows_of


def _key(expiry: datetime | None) -> dict[str, object]:
    return {
        "token": "hash",
        "key_alias": "k",
        "soft_budget": 6,
        "temp_budget_increase": "5",
        "temp_budget_expiry": None if expiry is None else expiry.isoformat(),
        "budget_windows": [
            {"budget_duration": "1mo", "max_budget": 10, "spend": 7.5, "remaining": 7.5},
            {"budget_duration": "1d", "max_budget": 2, "spend": 1.5, "remaining": 0.5},
        ],
    }


def test_an_active_increase_widens_the_main_windows_bar() -> None:
    main, daily = windows_of(_key(datetime.now(UTC) + timedelta(days=1)), "key")
    assert main.effective_limit == Decimal(15) and main.used_percent == Decimal(50)
    assert main.soft_percent == Decimal(40)  # 6 of 15
    assert main.state == "warning"  # 50 % used, but past the soft budget (7.5 >= 6)
    assert daily.effective_limit == Decimal(2) and daily.used_percent == Decimal(75)


def test_an_expired_increase_does_not() -> None:
    main, _ = windows_of(_key(datetime.now(UTC) - timedelta(minutes=1)), "key")
    assert not main.temp_active
    assert main.effective_limit == Decimal(10) and main.used_percent == Decimal(75)
