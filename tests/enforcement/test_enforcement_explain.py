"""explain(), response headers and the worst-case estimate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from counter_backends import CENT, USD, FakeClock, all_storages
from spendgate.core.pricing.spec import PriceSpec, Rates
from spendgate.enforcement import (
    BudgetLimit,
    EnforcementRequest,
    Enforcer,
    RateLimit,
    Scope,
    declared_max_output,
    explain,
    worst_case_nanos,
    worst_case_tokens,
)
from spendgate.errors import BudgetExceeded
from spendgate.http.headers import format_reset, limit_headers

KEY = Scope("key", "k-1")
TEAM = Scope("team", "t-1")
USER = Scope("user", "u-1")


@all_storages
class TestExplain:
    async def test_explain_agrees_with_the_decision(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        clock.set(datetime(2026, 11, 18, 12, tzinfo=UTC))
        key = BudgetLimit.of(KEY, "1d", USD)
        team = BudgetLimit.of(TEAM, "1mo", 50 * CENT, soft_nanos=10 * CENT)
        user = BudgetLimit.of(USER, "1d", None)
        t = await enforcer.admit(EnforcementRequest("a", [team], estimate_nanos=45 * CENT))
        await enforcer.settle(t, 30 * CENT)
        open_ticket = await enforcer.admit(EnforcementRequest("b", [team], estimate_nanos=15 * CENT))
        probe = EnforcementRequest("p", [key, team, user], estimate_nanos=10 * CENT)
        states = {s.scope: s for s in await explain(enforcer, probe)}
        assert states[KEY].verdict == "ok" and states[KEY].limit_nanos == USD
        assert (states[TEAM].spend_nanos, states[TEAM].reserved_nanos) == (30 * CENT, 15 * CENT)
        assert states[TEAM].verdict == "exceeded"
        assert states[TEAM].period_start == datetime(2026, 11, 1, tzinfo=UTC)
        assert states[TEAM].period_end == datetime(2026, 12, 1, tzinfo=UTC)
        assert states[USER].verdict == "unlimited"
        with pytest.raises(BudgetExceeded) as info:
            await enforcer.admit(probe)
        assert info.value.scope == "team:t-1"
        await enforcer.release(open_ticket)
        states = {s.scope: s for s in await explain(enforcer, probe)}
        assert states[TEAM].verdict == "soft_exceeded"
        await enforcer.admit(probe)

    async def test_headers_name_the_tightest_window_and_limits(
        self, make_enforcer: Callable[..., Enforcer], clock: FakeClock
    ) -> None:
        enforcer = make_enforcer()
        clock.set(datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC))
        ticket = await enforcer.admit(
            EnforcementRequest(
                "h",
                [BudgetLimit.of(KEY, "1d", USD), BudgetLimit.of(TEAM, "1h", 20 * CENT)],
                [
                    RateLimit(KEY, "requests", 100, 60),
                    RateLimit(TEAM, "requests", 10, 60),
                    RateLimit(KEY, "tokens", 5000, 60),
                ],
                estimate_nanos=5 * CENT,
                estimate_tokens=1200,
            )
        )
        headers = limit_headers(ticket)
        assert headers["x-spendgate-budget-remaining"] == "0.15"
        assert headers["x-spendgate-budget-reset"] == "2026-11-18T13:00:00Z"
        assert headers["x-ratelimit-limit-requests"] == "10"
        assert headers["x-ratelimit-remaining-requests"] == "9"
        assert headers["x-ratelimit-reset-requests"] == "30s"
        assert headers["x-ratelimit-limit-tokens"] == "5000"
        assert headers["x-ratelimit-remaining-tokens"] == "3800"


def test_format_reset() -> None:
    assert [format_reset(ms) for ms in (20, 1000, 1500, 360_000, 3_723_000)] == [
        "20ms", "1s", "1.5s", "6m0s", "1h2m3s",
    ]  # fmt: skip


def test_the_largest_output_cap_counts() -> None:
    payload = {"max_tokens": 1, "max_completion_tokens": 738, "max_output_tokens": 5}
    assert declared_max_output(payload) == 738
    assert declared_max_output({"max_tokens": True}) is None
    assert worst_case_tokens(100, payload, 4096) == 838
    assert worst_case_tokens(100, {}, 4096) == 4196


def test_worst_case_cost_uses_the_tier_the_prompt_selects() -> None:
    from decimal import Decimal

    spec = PriceSpec(
        rates=Rates(input=Decimal("0.000001"), output=Decimal("0.000004"), reasoning=Decimal("0.000008"))
    )
    # 1000 × $1/M + 500 × max($4/M, $8/M)
    assert worst_case_nanos(spec, 1000, 500) == 1000 * 1000 + 500 * 8000


def test_scope_limits_from_litellm_fields() -> None:
    from spendgate.enforcement import scope_limits

    budgets, rates = scope_limits(
        KEY,
        max_budget_nanos=10 * USD,
        budget_duration="30d",
        budget_windows=[("1h", USD), ("7d", None)],
        soft_budget_nanos=8 * USD,
        tz="Asia/Kolkata",
        rpm_limit=60,
        tpm_limit=0,
        tpd_limit=10**6,
        max_parallel_requests=5,
    )
    assert [(b.window.name, b.max_nanos, b.soft_nanos, b.tz) for b in budgets] == [
        ("1mo", 10 * USD, 8 * USD, "Asia/Kolkata"),
        ("1h", USD, None, "Asia/Kolkata"),
        ("1w", None, None, "Asia/Kolkata"),
    ]
    assert [(r.kind, r.limit, r.window_seconds) for r in rates] == [
        ("requests", 60, 60.0),
        ("tokens", 0, 60.0),
        ("tokens", 10**6, 86_400.0),
        ("parallel", 5, 60.0),
    ]
    lifetime, _ = scope_limits(TEAM, max_budget_nanos=USD)
    assert lifetime[0].window.name == "lifetime"
    assert scope_limits(USER) == ([], [])
