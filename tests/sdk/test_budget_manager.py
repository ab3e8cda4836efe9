"""spendgate.sdk.budget_manager: LiteLLM's BudgetManager, exact, on a local JSON file, SQLite
and PostgreSQL (issue #14 item 5).

* LiteLLM's documented example (create → check → call → update_cost) against the mock
  provider through the official openai SDK prints the call's exact cost;
* every method, on every store, to the nano-USD;
* calendar periods (day, week from Monday, month, year in a zone) and LiteLLM's rolling
  days with a fixed clock;
* check_and_reserve: the worst case, the exact boundary, the refusal, settle / release
  idempotent, leases;
* 4 processes on one local file and on one PostgreSQL database: no lost update, and
  check_and_reserve never lets spend + reserved exceed the budget.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from budget_manager_workers import MESSAGES, MODEL, expected_update_total, hammer

from spendgate.core.money import to_nano
from spendgate.errors import BudgetExceeded, ConfigurationError, UnpricedModelError
from spendgate.providers.base import estimate_prompt_tokens
from spendgate.providers.mock import run_mock_provider
from spendgate.sdk.budget_manager import BudgetExceededError, BudgetManager
from spendgate.stores.database import create_engine, upgrade

MINI_IN = Decimal("0.00000015")  # gpt-4o-mini, USD per token, from the bundled catalogue
MINI_OUT = Decimal("0.0000006")
MSGS = [{"role": "user", "content": "Hey, how's it going?"}]  # 20 chars: 5 tokens + 4 framing


class Clock:
    """A settable clock for the manager."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def mini_response(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def mini_cost(prompt: int, completion: int) -> int:
    return to_nano(prompt * MINI_IN + completion * MINI_OUT)


Factory = Callable[..., BudgetManager]


@pytest.fixture(params=["local", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Builds managers on one store (a fresh project each test, so stores are not shared)."""
    project = f"p-{uuid.uuid4().hex[:8]}"
    if request.param == "local":
        client_type, path = "local", tmp_path / "budgets.json"
    else:
        client_type, path = str(request.getfixturevalue(f"{request.param}_url")), None
    made: list[BudgetManager] = []

    def factory(**kwargs: Any) -> BudgetManager:
        manager = BudgetManager(project, client_type, path=path, **kwargs)
        made.append(manager)
        return manager

    yield factory
    for manager in made:
        manager.close()


# -- LiteLLM's documented example ----------------------------------------------------------------


def test_litellm_documented_example_prints_the_exact_cost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    budget_manager = BudgetManager(project_name="test_project", path=tmp_path / "user_cost.json")
    user = "1234"
    with run_mock_provider() as mock:
        client = openai.OpenAI(base_url=mock.url, api_key="sk-test")
        # create a budget if new user user
        if not budget_manager.is_valid_user(user):
            budget_manager.create_budget(total_budget=10, user=user)
        # check if a given call can be made
        assert budget_manager.get_current_cost(user=user) <= budget_manager.get_total_budget(user)
        response = client.chat.completions.create(
            model="gpt-3.5-turbo", messages=[{"role": "user", "content": "Hey, how's it going?"}]
        )
        budget_manager.update_cost(completion_obj=response, user=user)
        print(budget_manager.get_current_cost(user=user))
        client.close()

    usage = response.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    # gpt-3.5-turbo: $0.50 / $1.50 per million tokens.
    exact = to_nano(
        usage.prompt_tokens * Decimal("0.0000005") + usage.completion_tokens * Decimal("0.0000015")
    )
    assert budget_manager.get_current_cost_nanos(user) == exact
    assert budget_manager.get_model_cost_nanos(user) == {response.model: exact}
    assert capsys.readouterr().out == f"{float(Decimal(exact).scaleb(-9))}\n"


# -- every method ---------------------------------------------------------------------------------


def test_create_budget_returns_litellm_shape_and_replaces(make: Factory) -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    bm = make(clock=clock, calendar=False)
    assert bm.create_budget(10, "a") == {"total_budget": 10.0, "current_cost": 0.0, "model_cost": {}}
    entry = bm.create_budget(0.1, "b", "monthly", created_at=1_700_000_000.5)
    assert entry["duration"] == 28 and entry["created_at"] == entry["last_updated_at"] == 1_700_000_000.5
    assert bm.get_total_budget_nanos("b") == 100_000_000  # 0.1 read exactly, not 0.1000000000000000055…
    assert bm.get_total_budget("b") == 0.1

    bm.update_cost("a", completion_obj=mini_response(1000, 100))
    assert bm.create_budget(10, "a", replace=False)["current_cost"] > 0  # kept
    bm.create_budget(20, "a")  # LiteLLM: replaced, costs restart
    assert (bm.get_total_budget_nanos("a"), bm.get_current_cost_nanos("a")) == (20 * 10**9, 0)
    assert sorted(bm.get_users()) == ["a", "b"]
    assert bm.is_valid_user("a") and not bm.is_valid_user("nobody")
    with pytest.raises(ValueError, match="duration"):
        bm.create_budget(1, "c", "fortnightly")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rounds to 0 nano-USD"):  # 0 would allow nothing
        bm.create_budget(1e-20, "c")
    assert not bm.is_valid_user("c")
    with pytest.raises(ValueError, match="non-negative"):
        bm.create_budget(-1, "c")


def test_days_in_a_month_is_litellms_and_overridable(make: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    bm = make(calendar=False)
    monkeypatch.setenv("DAYS_IN_A_MONTH", "30")
    assert bm.create_budget(1, "m", "monthly")["duration"] == 30
    assert bm.create_budget(1, "y", "yearly")["duration"] == 365
    assert bm.create_budget(1, "w", "weekly")["duration"] == 7
    assert bm.create_budget(1, "d", "daily")["duration"] == 1


def test_update_cost_adds_exactly_per_model(make: Factory) -> None:
    bm = make()
    bm.create_budget(5, "u")
    result = bm.update_cost("u", completion_obj=mini_response(1234, 567))
    bm.update_cost(user="u", completion_obj=mini_response(1, 1))
    bm.update_cost("u", model="gpt-3.5-turbo", input_text="a" * 40, output_text="b" * 80)
    # Text is estimated as the gateway does: 4 chars a token + 4 tokens of message framing.
    text_cost = to_nano(14 * Decimal("0.0000005") + 24 * Decimal("0.0000015"))
    mini = mini_cost(1234, 567) + mini_cost(1, 1)
    assert result == {"user": {"total_budget": 5.0, "current_cost": mini_cost(1234, 567) / 1e9,
                               "model_cost": {"gpt-4o-mini": mini_cost(1234, 567) / 1e9}}}  # fmt: skip
    assert bm.get_current_cost_nanos("u") == mini + text_cost
    assert bm.get_model_cost_nanos("u") == {"gpt-4o-mini": mini, "gpt-3.5-turbo": text_cost}
    assert bm.get_model_cost("u") == {"gpt-4o-mini": mini / 1e9, "gpt-3.5-turbo": text_cost / 1e9}
    assert bm.get_current_cost("u") == (mini + text_cost) / 1e9
    assert bm.user_dict["u"]["current_cost"] == (mini + text_cost) / 1e9


def test_update_cost_refuses_what_it_cannot_price(make: Factory) -> None:
    bm = make()
    bm.create_budget(5, "u")
    with pytest.raises(ValueError, match="completion object"):
        bm.update_cost("u")
    unknown = mini_response(10, 10) | {"model": "no-such-model-xyz"}
    with pytest.raises(UnpricedModelError):
        bm.update_cost("u", completion_obj=unknown)
    assert bm.get_current_cost_nanos("u") == 0  # never recorded as $0 or anything else
    with pytest.raises(KeyError, match="create_budget first"):
        bm.update_cost("ghost", completion_obj=mini_response(1, 1))
    with pytest.raises(KeyError):
        bm.get_total_budget("ghost")


def test_projected_cost_is_current_plus_prompt(make: Factory) -> None:
    bm = make()
    bm.create_budget(5, "u")
    bm.update_cost("u", completion_obj=mini_response(100, 10))
    prompt = to_nano(9 * MINI_IN)
    assert bm.projected_cost_nanos("gpt-4o-mini", MSGS, "u") == mini_cost(100, 10) + prompt
    assert bm.projected_cost("gpt-4o-mini", MSGS, "u") == (mini_cost(100, 10) + prompt) / 1e9


def test_reset_cost_zeroes_costs_and_keeps_calls_in_flight(make: Factory) -> None:
    bm = make()
    bm.create_budget(5, "u")
    bm.update_cost("u", completion_obj=mini_response(100, 10))
    held = bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=100)
    assert bm.reset_cost("u") == {"user": {"total_budget": 5.0, "current_cost": 0.0, "model_cost": {}}}
    assert (bm.get_current_cost_nanos("u"), bm.get_model_cost("u")) == (0, {})
    assert bm.get_reserved_nanos("u") == held.amount_nanos
    assert bm.save_data() == {"status": "success"}


def test_hosted_and_unknown_client_types_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"hosted.*no network"):
        BudgetManager("p", client_type="hosted")
    with pytest.raises(ConfigurationError, match="'local' or a database URL"):
        BudgetManager("p", client_type="remote")
    with pytest.raises(ValueError, match="timezone"):
        BudgetManager("p", path=tmp_path / "b.json", timezone="Mars/Olympus")


def test_a_database_without_the_table_says_to_migrate(tmp_path: Path) -> None:
    bm = BudgetManager("p", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    try:
        with pytest.raises(ConfigurationError, match="spendgate db upgrade"):
            bm.create_budget(1, "u")
    finally:
        bm.close()


def test_local_file_is_replaced_whole_and_shared_by_projects(tmp_path: Path) -> None:
    path = tmp_path / "budgets.json"
    one, two = BudgetManager("one", path=path), BudgetManager("two", path=path)
    for i in range(20):
        one.create_budget(i, f"u{i}")
    two.create_budget(3, "u0")
    assert one.get_total_budget_nanos("u0") == 0 and two.get_total_budget_nanos("u0") == 3 * 10**9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["budgets.json", "budgets.json.lock"]  # no temp left
    path.write_text('{"1234": {"total_budget": 10}}')  # LiteLLM's format: refused, not overwritten
    with pytest.raises(ConfigurationError, match="not a spendgate BudgetManager file"):
        one.get_users()
    assert path.read_text() == '{"1234": {"total_budget": 10}}'


# -- check_and_reserve, settle, release -----------------------------------------------------------


def test_check_and_reserve_holds_the_worst_case_to_the_nano(make: Factory) -> None:
    bm = make()
    worst = to_nano(9 * MINI_IN + 200 * MINI_OUT)  # prompt estimate × input + max_tokens × output
    bm.create_budget(Decimal(worst * 2).scaleb(-9), "u")  # room for exactly two
    first = bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=200)
    second = bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=200)
    assert (first.amount_nanos, first.prompt_tokens, first.max_tokens) == (worst, 9, 200)
    assert bm.get_reserved_nanos("u") == 2 * worst
    with pytest.raises(BudgetExceededError) as refused:
        bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=200)
    err = refused.value
    assert isinstance(err, BudgetExceeded)
    assert (err.spend_nanos, err.reserved_nanos, err.limit_nanos, err.requested_nanos) == (
        0,
        2 * worst,
        2 * worst,
        worst,
    )
    assert err.user == "u" and err.max_budget == 2 * worst / 1e9 and err.current_cost == 0.0
    assert err.reset_at is None and err.retry_after is None and "lifetime" in str(err)

    assert bm.settle(first, mini_response(9, 150)) is True  # real cost replaces the worst case
    assert bm.settle(first, mini_response(9, 150)) is False  # idempotent
    assert bm.release(first) is False
    assert bm.get_reserved_nanos("u") == worst
    assert bm.get_current_cost_nanos("u") == mini_cost(9, 150)
    assert bm.release(second) is True and bm.release(second) is False
    assert bm.settle(second, cost=1.0) is False  # released: nothing billed
    assert (bm.get_reserved_nanos("u"), bm.get_current_cost_nanos("u")) == (0, mini_cost(9, 150))
    assert bm.get_model_cost_nanos("u") == {"gpt-4o-mini": mini_cost(9, 150)}

    third = bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=200)  # room again
    assert bm.settle(third, 0.000001) is True  # a number in the response's place is USD
    fourth = bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=1)
    assert bm.settle(fourth, cost_nanos=7)
    assert bm.get_current_cost_nanos("u") == mini_cost(9, 150) + 1000 + 7
    assert bm.get_record("u").reservations == {}


def test_without_max_tokens_the_catalogue_limit_counts_and_the_refusal_says_so(make: Factory) -> None:
    bm = make()
    bm.create_budget(0.001, "u", "daily")
    with pytest.raises(BudgetExceededError, match=r"no max_tokens.*16384.*pass max_tokens") as refused:
        bm.check_and_reserve("u", "gpt-4o-mini", MSGS)
    assert refused.value.requested_nanos == to_nano(9 * MINI_IN + 16384 * MINI_OUT)
    # Larger than the whole budget: it can never pass, whatever the reset.
    assert refused.value.reset_at is not None and refused.value.retry_after is None
    with pytest.raises(UnpricedModelError):
        bm.check_and_reserve("u", "no-such-model-xyz", MSGS, max_tokens=10)
    with pytest.raises(ValueError, match="max_tokens"):
        bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=-1)
    with pytest.raises(KeyError):
        bm.check_and_reserve("ghost", "gpt-4o-mini", MSGS, max_tokens=10)
    assert bm.get_reserved_nanos("u") == 0


def test_an_unsettled_reservation_stops_holding_budget_when_its_lease_ends(make: Factory) -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    bm = make(clock=clock, lease_seconds=60)
    bm.create_budget(1, "u")
    held = bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=100)
    clock.advance(seconds=59)
    assert bm.get_reserved_nanos("u") == held.amount_nanos
    clock.advance(seconds=1)
    assert bm.get_reserved_nanos("u") == 0
    other = bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=100)
    assert bm.settle(held, cost_nanos=500) is True  # a late answer is still billed…
    assert bm.get_reserved_nanos("u") == other.amount_nanos  # …without freeing another's hold
    assert bm.get_current_cost_nanos("u") == 500


def test_a_refusal_names_the_period_reset(make: Factory) -> None:
    clock = Clock(datetime(2026, 3, 10, 22, 30, tzinfo=UTC))
    bm = make(clock=clock, timezone="Europe/Berlin")
    bm.create_budget(Decimal(to_nano(9 * MINI_IN + 100 * MINI_OUT)).scaleb(-9), "u", "daily")
    bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=100)
    with pytest.raises(BudgetExceededError, match=r"daily \(calendar, Europe/Berlin\)") as refused:
        bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=100)
    assert refused.value.reset_at == datetime(2026, 3, 10, 23, tzinfo=UTC)  # Berlin midnight
    assert refused.value.retry_after == 30 * 60


# -- durations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "last_second", "next_period"),
    [
        # Europe/Berlin (UTC+1 in winter, +2 from 2026-03-29): local midnights.
        ("daily", datetime(2026, 3, 10, 22, 59, 59, tzinfo=UTC), datetime(2026, 3, 10, 23, tzinfo=UTC)),
        # 2026-03-16 is a Monday.
        ("weekly", datetime(2026, 3, 15, 22, 59, 59, tzinfo=UTC), datetime(2026, 3, 15, 23, tzinfo=UTC)),
        ("monthly", datetime(2026, 3, 31, 21, 59, 59, tzinfo=UTC), datetime(2026, 3, 31, 22, tzinfo=UTC)),
        ("yearly", datetime(2026, 12, 31, 22, 59, 59, tzinfo=UTC), datetime(2026, 12, 31, 23, tzinfo=UTC)),
    ],
)
def test_calendar_periods_start_from_zero_by_the_clock(
    make: Factory, duration: str, last_second: datetime, next_period: datetime
) -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    bm = make(clock=clock, timezone="Europe/Berlin", lease_seconds=10**9)
    bm.create_budget(1, "u", duration)  # type: ignore[arg-type]
    bm.update_cost("u", completion_obj=mini_response(1000, 1000))
    held = bm.check_and_reserve("u", "gpt-4o-mini", MSGS, max_tokens=10)
    clock.at = last_second
    assert bm.get_current_cost_nanos("u") == mini_cost(1000, 1000)
    clock.at = next_period
    assert bm.get_current_cost_nanos("u") == 0  # no reset job: the period moved
    assert bm.get_model_cost("u") == {}
    assert bm.get_reserved_nanos("u") == held.amount_nanos  # a call in flight still holds
    bm.update_cost("u", completion_obj=mini_response(1, 1))
    assert bm.get_current_cost_nanos("u") == mini_cost(1, 1)
    bm.reset_on_duration("u")  # already in this period: nothing to reset
    bm.update_budget_all_users()
    assert bm.get_current_cost_nanos("u") == mini_cost(1, 1)
    assert bm.get_record("u").period_start == next_period


def test_reset_on_duration_writes_the_new_calendar_period(make: Factory) -> None:
    clock = Clock(datetime(2026, 3, 10, 12, tzinfo=UTC))
    bm = make(clock=clock)
    bm.create_budget(1, "u", "daily")
    bm.create_budget(1, "forever")
    for user in ("u", "forever"):
        bm.update_cost(user, completion_obj=mini_response(10, 10))
    clock.at = datetime(2026, 3, 11, 0, 0, 1, tzinfo=UTC)
    bm.update_budget_all_users()
    record = bm.get_record("u")
    assert (record.current_cost_nanos, record.period_start) == (0, datetime(2026, 3, 11, tzinfo=UTC))
    assert record.last_updated_at == clock.at
    reset_time = clock.at
    clock.advance(hours=1)  # the reset was written: the day's start stays when it was seen
    assert bm.get_record("u").last_updated_at == reset_time
    assert bm.get_current_cost_nanos("forever") == mini_cost(10, 10)  # no duration: never resets


def test_rolling_days_reset_only_when_asked_as_litellm(make: Factory) -> None:
    created = datetime(2026, 3, 10, 12, tzinfo=UTC)
    clock = Clock(created)
    bm = make(clock=clock, calendar=False)
    bm.create_budget(1, "u", "monthly")  # 28 days
    bm.update_cost("u", completion_obj=mini_response(10, 10))
    clock.at = created + timedelta(days=28) - timedelta(seconds=1)
    bm.reset_on_duration("u")
    assert bm.get_current_cost_nanos("u") == mini_cost(10, 10)
    clock.at = created + timedelta(days=40)
    assert bm.get_current_cost_nanos("u") == mini_cost(10, 10)  # rolling: no reset until asked
    bm.update_budget_all_users()
    assert bm.get_current_cost_nanos("u") == 0
    assert bm.user_dict["u"]["last_updated_at"] == clock.at.timestamp()
    bm.update_cost("u", completion_obj=mini_response(10, 10))
    clock.advance(days=27)
    bm.reset_on_duration("u")  # counted from the last reset, not from creation
    assert bm.get_current_cost_nanos("u") == mini_cost(10, 10)


# -- many processes -------------------------------------------------------------------------------


def _run_hammer(client_type: str, path: str | None, project: str, watch: BudgetManager) -> None:
    workers, updates = 4, 25
    prompt = estimate_prompt_tokens({"messages": MESSAGES})
    worst = to_nano(prompt * MINI_IN + 43 * MINI_OUT)  # the largest worker's worst case (max_tokens 43)
    budget = 30 * worst + 12_345  # room for about 30 calls, not a multiple of any worst case
    watch.create_budget(0, "u")
    watch.create_budget(Decimal(budget).scaleb(-9), "r")
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        result = pool.map_async(hammer, [(client_type, path, project, w, updates) for w in range(workers)])
        while not result.ready():  # meanwhile: spend + in flight never above the budget
            record = watch.get_record("r")
            assert record.current_cost_nanos + record.reserved_nanos <= budget
            time.sleep(0.002)
        outcomes = result.get(timeout=120)

    assert watch.get_current_cost_nanos("u") == expected_update_total(workers, updates)  # no lost update
    assert watch.get_model_cost_nanos("u") == {MODEL: expected_update_total(workers, updates)}
    record = watch.get_record("r")
    settled = sum(o[1] for o in outcomes)
    assert record.current_cost_nanos == settled <= budget
    assert record.reserved_nanos == 0 and record.reservations == {}
    # A worker was refused only when the budget could not hold its call: what is left is less
    # than its worst case, plus what the (at most 3) other calls then in flight settled below
    # their worst cases (< 1000 nanos each).
    for _admitted, _settled, refused_worst in outcomes:
        assert budget - settled < refused_worst + 3 * 1000
    assert sum(o[0] for o in outcomes) >= 30  # the budget was really used up


def test_four_processes_on_one_local_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.json")
    watch = BudgetManager("hammer", path=path)
    _run_hammer("local", path, "hammer", watch)


@pytest.mark.postgres
def test_four_processes_on_one_postgres_database(postgres_url: str) -> None:
    project = f"hammer-{uuid.uuid4().hex[:8]}"
    watch = BudgetManager(project, postgres_url)
    try:
        _run_hammer(postgres_url, None, project, watch)
    finally:
        watch.close()


# -- the schema -----------------------------------------------------------------------------------


def test_migration_0006_creates_and_drops_the_table(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import Connection, inspect

    from spendgate.stores.database.migrate import alembic_config

    def downgrade(connection: Connection, revision: str) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)

    async def run() -> tuple[set[str], set[str], set[str]]:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        try:
            await upgrade(engine, "0006")
            async with engine.connect() as conn:
                up = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
                columns = {
                    c["name"]
                    for c in await conn.run_sync(lambda c: inspect(c).get_columns("sdk_budgets"))
                    if "BIGINT" in str(c["type"]).upper()
                }
            async with engine.begin() as conn:
                await conn.run_sync(downgrade, "0005")
            async with engine.connect() as conn:
                down = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            return up, columns, down
        finally:
            await engine.dispose()

    up, money, down = asyncio.run(run())
    assert "sdk_budgets" in up and "sdk_budgets" not in down and up - down == {"sdk_budgets"}
    assert {"total_budget_nanos", "current_cost_nanos", "reserved_nanos"} <= money
