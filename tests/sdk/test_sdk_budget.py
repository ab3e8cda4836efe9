"""The global budget (issue #14 item 4): ``spendgate.max_budget`` reserves each call's worst
case before it is sent, so concurrent calls (threads and asyncio tasks) never overshoot."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest

import spendgate
from spendgate.core.money import to_nano
from spendgate.enforcement.estimate import target_worst_case
from spendgate.providers.base import estimate_prompt_tokens
from spendgate.providers.mock import MockServer, run_mock_provider
from spendgate.sdk.budget import _UNCOUNTED_KEPT, BUDGET, GlobalBudget, Hold
from spendgate.sdk.budget_history import SpendHistory
from spendgate.sdk.metering import DEFAULT_MAX_OUTPUT, PricedModel

MESSAGES: list[Any] = [{"role": "user", "content": "Hey, how's it going"}]
SLOW = {"x-mock-latency-ms": "30"}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


@pytest.fixture
def client(mock: MockServer) -> Iterator[openai.OpenAI]:
    with spendgate.openai.OpenAI(base_url=mock.url, api_key="sk-test", max_retries=0) as c:
        yield c


def _sent(mock: MockServer) -> int:
    return len(mock.requests())


def test_litellm_documented_max_budget_raises(client: openai.OpenAI, mock: MockServer) -> None:
    # LiteLLM's example: litellm.max_budget = 0.001, then a gpt-4 call raises BudgetExceededError.
    spendgate.max_budget = 0.001
    before = _sent(mock)
    with pytest.raises(spendgate.BudgetExceededError) as refused:
        client.chat.completions.create(model="gpt-4", messages=MESSAGES)
    assert _sent(mock) == before  # nothing was sent
    error = refused.value
    assert error.max_budget == Decimal("0.001") and error.current_cost == 0
    assert error.worst_case > Decimal("0.001")
    assert "max_tokens" in str(error)  # how to bound a call without max_tokens
    assert isinstance(error, spendgate.SpendgateError)
    assert spendgate.current_cost == 0 and BUDGET.reserved_nanos == 0


def test_a_bounded_call_fits_and_spend_is_counted(client: openai.OpenAI) -> None:
    spendgate.max_budget = 0.001
    response = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=10)
    assert spendgate.current_cost == spendgate.cost_of(response) > 0
    assert BUDGET.reserved_nanos == 0


def test_the_call_that_would_cross_is_refused_before_it_is_sent(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    cost = spendgate.cost_of(first)
    spendgate.max_budget = cost * 2  # the worst case of a second call is > its real cost
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    assert spendgate.current_cost == 2 * cost
    with pytest.raises(spendgate.BudgetExceededError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    assert refused.value.current_cost == 2 * cost
    assert "max_tokens" not in str(refused.value)  # it declared one


def test_check_only_is_litellms_after_the_fact_check(client: openai.OpenAI) -> None:
    spendgate.budget_mode = "check_only"
    spendgate.max_budget = 0.000001
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # passes: nothing spent yet
    assert spendgate.current_cost > Decimal("0.000001")
    with pytest.raises(spendgate.BudgetExceededError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(ValueError):
        spendgate.budget_mode = "lenient"


def test_an_error_releases_the_reservation(client: openai.OpenAI) -> None:
    spendgate.max_budget = 1
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=10, extra_headers={"x-mock-status": "500"}
        )
    assert BUDGET.reserved_nanos == 0 and spendgate.current_cost == 0


def test_a_window_uses_calendar_periods(client: openai.OpenAI) -> None:
    spendgate.max_budget_duration = "1d"
    spendgate.max_budget = 0.00001
    with pytest.raises(spendgate.BudgetExceededError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=1000)
    assert refused.value.window == "1d" and refused.value.reset_at is not None
    assert refused.value.reset_at.hour == 0 and refused.value.reset_at.minute == 0
    with pytest.raises(ValueError):
        spendgate.max_budget_duration = "0d"
    with pytest.raises(ValueError):
        spendgate.max_budget = -1


def test_a_positive_budget_that_rounds_to_zero_nano_usd_is_refused() -> None:
    """0 means nothing is allowed: a positive amount kept as 0 would refuse every call."""
    for tiny in (1e-20, "0.0000000005", Decimal("1e-12")):
        with pytest.raises(ValueError, match="rounds to 0 nano-USD"):
            spendgate.max_budget = tiny
        assert spendgate.max_budget is None  # unchanged
    spendgate.max_budget = 0.1 * 3  # a float's noise is rounded, not refused
    assert spendgate.max_budget == Decimal("0.3")
    spendgate.max_budget = 0
    assert spendgate.max_budget == 0


def _budget_for(client: openai.OpenAI, calls: int) -> tuple[Decimal, Decimal]:
    """A budget with room for ``calls`` worst cases and a half, and one call's real cost."""
    probe = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    cost = spendgate.cost_of(probe)
    BUDGET.reset()
    prompt = estimate_prompt_tokens({"messages": MESSAGES}, "chat")
    worst = target_worst_case(PricedModel("gpt-4o", "openai"), prompt, 20)
    assert worst >= to_nano(cost) > 0
    return Decimal(worst * calls + worst // 2) / Decimal(10**9), cost


def test_100_threads_never_overshoot(client: openai.OpenAI) -> None:
    limit, cost = _budget_for(client, 30)
    spendgate.max_budget = limit
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(100)

    def one() -> None:
        start.wait()
        try:
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, max_tokens=20, extra_headers={"x-mock-latency-ms": "30"}
            )
            result = "ok"
        except spendgate.BudgetExceededError:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 100
    assert outcomes.count("ok") >= 30 and outcomes.count("refused") > 0
    assert spendgate.current_cost <= limit
    assert spendgate.current_cost == outcomes.count("ok") * cost  # no lost update
    assert BUDGET.reserved_nanos == 0


async def test_100_tasks_never_overshoot(mock: MockServer, client: openai.OpenAI) -> None:
    limit, cost = _budget_for(client, 30)
    spendgate.max_budget = limit
    async with spendgate.openai.AsyncOpenAI(base_url=mock.url, api_key="sk", max_retries=0) as aclient:

        async def one() -> str:
            try:
                await aclient.chat.completions.create(
                    model="gpt-4o",
                    messages=MESSAGES,
                    max_tokens=20,
                    extra_headers={"x-mock-latency-ms": "30"},
                )
            except spendgate.BudgetExceededError:
                return "refused"
            return "ok"

        outcomes = await asyncio.gather(*(one() for _ in range(100)))
    assert outcomes.count("ok") >= 30 and outcomes.count("refused") > 0
    assert spendgate.current_cost <= limit
    assert spendgate.current_cost == outcomes.count("ok") * cost  # exact, no lost update
    assert BUDGET.reserved_nanos == 0


def test_without_reservation_concurrent_calls_do_overshoot(client: openai.OpenAI) -> None:
    """The race strict mode closes: LiteLLM's check (check_only) lets concurrent calls through."""
    limit, _ = _budget_for(client, 3)
    spendgate.budget_mode = "check_only"
    spendgate.max_budget = limit
    start = threading.Barrier(50)

    def one() -> None:
        start.wait()
        try:
            client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, max_tokens=20, extra_headers={"x-mock-latency-ms": "50"}
            )
        except spendgate.BudgetExceededError:
            pass

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert spendgate.current_cost > limit


def test_a_refusal_says_whether_the_output_assumed_is_the_models_maximum_or_the_default(
    client: openai.OpenAI, mock: MockServer
) -> None:
    spendgate.max_budget = 0.000001
    with pytest.raises(spendgate.BudgetExceededError) as known:
        client.chat.completions.create(model="gpt-4", messages=MESSAGES)
    assert "assumes 4096 output tokens (the model's maximum in the catalogue)" in str(known.value)
    # groq/llama-3.1-8b-instant has a price but no maximum output in the catalogue
    with (
        spendgate.openai.OpenAI(
            base_url=mock.url, api_key="sk", max_retries=0, spendgate_provider="groq"
        ) as groq,
        pytest.raises(spendgate.BudgetExceededError) as unknown,
    ):
        groq.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES)
    assert (
        f"assumes {DEFAULT_MAX_OUTPUT} output tokens (spendgate's default: the catalogue knows no "
        "maximum output for this model)"
    ) in str(unknown.value)
    assert "the model's maximum" not in str(unknown.value)


class _Clock:
    def __init__(self, at: str) -> None:
        self.now = datetime.fromisoformat(at).timestamp()

    def __call__(self) -> float:
        return self.now

    def at(self, when: str) -> None:
        self.now = datetime.fromisoformat(when).timestamp()


def _spend(budget: GlobalBudget, clock: _Clock, when: str, nanos: int) -> None:
    clock.at(when)
    budget.settle(budget.reserve(nanos), nanos)


def test_a_window_counts_only_the_calls_settled_inside_its_period() -> None:
    """Issue #14 doc review, item 6: a window set (or changed) after spending counts the
    spend settled inside its current period, not the process's whole spend."""
    clock = _Clock("2026-12-01T10:00:00+00:00")  # a Tuesday
    budget = GlobalBudget(clock=clock)
    _spend(budget, clock, "2026-12-01T10:00:00+00:00", 100)
    _spend(budget, clock, "2026-12-02T09:00:00+00:00", 50)
    assert budget.current_cost_nanos == 150  # lifetime
    budget.max_budget_duration = "1d"
    assert budget.current_cost_nanos == 50  # today's (UTC) only
    budget.budget_timezone = "Pacific/Kiritimati"  # UTC+14: both fall on its 2 December
    assert budget.current_cost_nanos == 150
    budget.budget_timezone = "UTC"
    budget.max_budget = Decimal("0.00000006")  # 60 nano-USD a day
    with pytest.raises(spendgate.BudgetExceededError):
        budget.reserve(11)  # 50 + 11 > 60: the earlier day's 100 does not count, today's 50 does
    budget.settle(budget.reserve(10), 10)
    clock.at("2026-12-03T00:30:00+00:00")
    assert budget.current_cost_nanos == 0  # a new day
    _spend(budget, clock, "2026-12-03T00:30:00+00:00", 7)
    budget.max_budget_duration = "1h"
    assert budget.current_cost_nanos == 7
    clock.at("2026-12-03T01:00:00+00:00")
    assert budget.current_cost_nanos == 0
    budget.max_budget = None
    _spend(budget, clock, "2026-12-10T12:00:00+00:00", 1000)  # a week on: older slots are merged
    budget.max_budget_duration = "1mo"
    assert budget.current_cost_nanos == 100 + 50 + 10 + 7 + 1000
    budget.max_budget_duration = "7d"  # the week from Monday 7 December
    assert budget.current_cost_nanos == 1000
    budget.max_budget_duration = None
    assert budget.current_cost_nanos == 1167
    clock.at("2027-01-01T00:00:00+00:00")
    budget.max_budget_duration = "1mo"
    assert budget.current_cost_nanos == 0


def test_spend_history_is_exact_on_quarter_hours_and_never_less_inside_a_slot() -> None:
    history = SpendHistory()
    start = datetime.fromisoformat("2026-06-01T00:00:00+00:00").timestamp()
    for minute in range(0, 60 * 24 * 45, 7):  # a call every 7 minutes for 45 days
        history.add(3, start + minute * 60 + 5)
    now = start + 45 * 86_400

    def truth(since: float) -> int:
        return 3 * sum(1 for m in range(0, 60 * 24 * 45, 7) if start + m * 60 + 5 >= since)

    for back in (60, 3600, 5400, 86_400, 3 * 86_400, 30 * 86_400, 44 * 86_400):
        since = now - back  # whole minutes (recent) and quarter hours (older): exact
        assert history.since(since) == truth(since), back
    assert history.since(now - 86_400 + 30) >= truth(now - 86_400 + 30)  # inside a slot: never less
    assert history.since(start) == history.total == truth(start)


def test_costs_settled_without_the_lock_count_in_the_period_they_were_settled_in() -> None:
    """A call that reserved nothing settles without the lock (queued); the queue is counted
    before the spend is read or checked, each cost in the period of its settling."""
    clock = _Clock("2026-12-01T23:00:00+00:00")
    budget = GlobalBudget(clock=clock)
    budget.max_budget_duration = "1d"
    assert budget.current_cost_nanos == 0  # the period is 1 December
    budget.settle(budget.reserve(0), 100)  # queued on 1 December, counted on the 2nd
    clock.at("2026-12-02T01:00:00+00:00")
    budget.settle(budget.reserve(0), 30)
    assert budget.current_cost_nanos == 30
    budget.max_budget_duration = None
    assert budget.current_cost_nanos == 130
    budget.max_budget = Decimal("0.000000200")  # 200 nano-USD
    budget.budget_mode = "check_only"
    budget.settle(budget.reserve(0), 70)  # check_only reserves nothing: queued too
    with pytest.raises(spendgate.BudgetExceededError):
        budget.reserve(0)  # 130 + 70 counted before the check
    hold = Hold(0)
    budget.settle(hold, 5)
    budget.settle(hold, 5)  # once
    assert budget.current_cost_nanos == 205


def test_costs_settled_without_the_lock_from_many_threads_are_each_counted_once() -> None:
    budget = GlobalBudget()
    per_thread, threads = 3_000, 8  # past the queue's bound many times
    start = threading.Barrier(threads)

    def settle(seed: int) -> None:
        start.wait()
        for i in range(per_thread):
            budget.settle(budget.reserve(0), seed + i % 7)

    workers = [threading.Thread(target=settle, args=(n,)) for n in range(1, threads + 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(budget._uncounted) < _UNCOUNTED_KEPT + threads  # bounded while nothing reads
    expected = sum(seed + i % 7 for seed in range(1, threads + 1) for i in range(per_thread))
    assert budget.current_cost_nanos == expected
    assert len(budget._uncounted) == 0


CLAUDE = "claude-sonnet-4-6"


def _refused_once(mock: MockServer, monkeypatch: pytest.MonkeyPatch, mode: str) -> tuple[list[int], int]:
    """Counts the budget's admissions; sets a budget that refuses the next call."""
    admissions: list[int] = []
    reserve = BUDGET.reserve

    def counting(*args: Any, **kwargs: Any) -> Hold:
        admissions.append(1)
        return reserve(*args, **kwargs)

    monkeypatch.setattr(BUDGET, "reserve", counting)
    if mode == "check_only":  # refused only once the spend is at the limit: a zero limit
        spendgate.budget_mode = "check_only"
        spendgate.max_budget = 0
    else:
        spendgate.max_budget = Decimal("0.0001")  # 20,000 output tokens do not fit
    return admissions, _sent(mock)


def _is_the_refusal(error: BaseException) -> None:
    """Raised to the caller as it is: a spendgate refusal (and an anthropic error, which the
    anthropic SDK hands on unchanged), not wrapped in a connection error."""
    assert isinstance(error, spendgate.BudgetExceededError)
    assert isinstance(error, anthropic.AnthropicError)
    assert not isinstance(error, anthropic.APIConnectionError)
    assert error.max_budget in (0, Decimal("0.0001"))


@pytest.mark.parametrize("mode", ["strict", "check_only"])
def test_an_anthropic_refusal_reaches_the_caller_unwrapped_and_is_not_retried(
    mock: MockServer, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    admissions, sent = _refused_once(mock, monkeypatch, mode)
    with spendgate.anthropic.Anthropic(base_url=mock.base_url, api_key="sk") as claude:  # 2 retries
        with pytest.raises(spendgate.BudgetExceededError) as refused:
            claude.messages.create(model=CLAUDE, messages=MESSAGES, max_tokens=20_000)
    _is_the_refusal(refused.value)
    assert admissions == [1]  # the SDK did not retry it
    assert _sent(mock) == sent and BUDGET.reserved_nanos == 0


async def test_an_async_anthropic_refusal_reaches_the_caller_unwrapped(
    mock: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    admissions, sent = _refused_once(mock, monkeypatch, "strict")
    async with spendgate.anthropic.AsyncAnthropic(base_url=mock.base_url, api_key="sk") as claude:
        with pytest.raises(spendgate.BudgetExceededError) as refused:
            async with claude.messages.stream(model=CLAUDE, messages=MESSAGES, max_tokens=20_000) as stream:
                await stream.get_final_message()
    _is_the_refusal(refused.value)
    assert admissions == [1] and _sent(mock) == sent


def test_completion_of_an_anthropic_model_refused_raises_the_refusal(
    mock: MockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    admissions, sent = _refused_once(mock, monkeypatch, "strict")
    with pytest.raises(spendgate.BudgetExceededError) as refused:
        spendgate.completion(
            model=f"anthropic/{CLAUDE}",
            messages=MESSAGES,
            max_tokens=20_000,
            api_base=mock.base_url,
            api_key="sk",
        )
    _is_the_refusal(refused.value)
    assert admissions == [1] and _sent(mock) == sent


def test_an_openai_refusal_is_a_plain_budget_error(client: openai.OpenAI) -> None:
    spendgate.max_budget = 0
    with pytest.raises(spendgate.BudgetExceededError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=10)
    assert type(refused.value) is spendgate.BudgetExceededError
