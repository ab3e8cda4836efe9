"""LiteLLM's ``BudgetManager`` (per-user budgets in the caller's process), exact and race-free.

LiteLLM's (reference §10.2) keeps float dollars in a dict, saves it from a background thread
that two processes overwrite, and only lets the caller compare ``get_current_cost`` with
``get_total_budget`` before a call: check-then-act, so concurrent calls overspend. This
one keeps its methods, arguments and float return values, and:

* keeps money as integer nano-USD (the ``*_nanos`` getters give it exactly; the float
  methods convert only on the way out), priced by the gateway's engine
  (:func:`spendgate.completion_cost`, :func:`spendgate.costs.price`), so an SDK call costs
  what the gateway would bill, to the nano-USD;
* stores budgets in a JSON file safe for several processes (``client_type="local"``) or in
  the spendgate database (``client_type=<database URL>``), shared across machines;
* counts ``daily`` / ``weekly`` / ``monthly`` / ``yearly`` as calendar periods in a timezone
  (``calendar=False``: LiteLLM's rolling days, monthly = 28);
* adds :meth:`BudgetManager.check_and_reserve`: the call's worst case (prompt estimate ×
  input rate + ``max_tokens`` × output rate) is reserved atomically before the call, or
  :class:`BudgetExceededError` is raised; :meth:`~BudgetManager.settle` replaces it with
  the real cost, :meth:`~BudgetManager.release` drops it (both idempotent). A reservation
  carries a lease: one its process never settles stops holding budget after
  ``lease_seconds``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from spendgate.core.money import to_nano
from spendgate.core.periods import get_timezone
from spendgate.core.pricing.catalogue import PriceBook
from spendgate.core.usage.model import Usage
from spendgate.costs import completion_cost, default_price_book, price
from spendgate.errors import ConfigurationError, UnpricedModelError
from spendgate.providers.base import estimate_prompt_tokens
from spendgate.sdk.budget_reservation import (
    BudgetExceededError,
    Reservation,
    litellm_entry,
    model_of,
    nanos_to_usd,
    refusal,
    usd_to_nanos,
    worst_case,
)
from spendgate.sdk.budget_store import (
    DURATIONS,
    BudgetRecord,
    BudgetStore,
    Held,
    new_record,
    reset_costs,
    roll_period,
    rolling_reset_due,
)

__all__ = ["DEFAULT_PATH", "BudgetExceededError", "BudgetManager", "Duration", "Reservation"]

Duration = Literal["daily", "weekly", "monthly", "yearly"]
DEFAULT_PATH = "spendgate_user_cost.json"
"""The local file when no ``path`` is given (LiteLLM's is ``user_cost.json``; the format
differs, so spendgate never overwrites one)."""


class BudgetManager:
    """Per-user budgets of one project (LiteLLM's ``BudgetManager``; see the module doc).

    Args:
        project_name: budgets are kept per project; several projects may share a store.
        client_type: ``"local"`` (a JSON file at ``path``) or a spendgate database URL
            (``sqlite+aiosqlite:///…``, ``postgresql://…``, migrated by
            ``spendgate db upgrade``). LiteLLM's ``"hosted"`` is refused: spendgate makes no
            network calls of its own.
        api_base: accepted for LiteLLM compatibility; unused.
        headers: accepted for LiteLLM compatibility; unused.
        path: the local file (default :data:`DEFAULT_PATH` in the working directory).
        timezone: the IANA zone of new budgets' calendar periods.
        calendar: True: durations are calendar periods; False: LiteLLM's rolling days.
        lease_seconds: how long a reservation holds budget if it is never settled.
        book: the prices to use (default: the process's book, with registered prices).
        clock: the current time (tests); default ``datetime.now(UTC)``.

    Raises:
        ConfigurationError: ``client_type`` is ``"hosted"`` or not understood.
        ValueError: ``timezone`` is not an IANA zone.
    """

    def __init__(
        self,
        project_name: str,
        client_type: str = "local",
        api_base: str | None = None,
        headers: dict[str, str] | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        timezone: str = "UTC",
        calendar: bool = True,
        lease_seconds: float = 600.0,
        book: PriceBook | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        get_timezone(timezone)  # an unknown zone fails here, not at the first budget
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
        self.project_name = project_name
        self.client_type = client_type
        self.api_base = api_base
        self.headers = headers
        self.timezone = timezone
        self.calendar = calendar
        self.lease = timedelta(seconds=lease_seconds)
        self._book = book
        self._clock = clock or (lambda: datetime.now(UTC))
        self._store = self._open_store(client_type, path)

    def _open_store(self, client_type: str, path: str | os.PathLike[str] | None) -> BudgetStore:
        if client_type == "local":
            from spendgate.sdk.budget_store_local import LocalBudgetStore

            return LocalBudgetStore(path or DEFAULT_PATH, self.project_name)
        if client_type == "hosted":
            raise ConfigurationError(
                "BudgetManager client_type='hosted' is not supported: spendgate makes no network calls "
                "to a budget service. Use client_type='local' (a JSON file) or a database URL "
                "(e.g. 'postgresql://…') to share budgets between machines"
            )
        if "://" in client_type:
            from spendgate.sdk.budget_store_database import DatabaseBudgetStore

            return DatabaseBudgetStore(client_type, self.project_name)
        raise ConfigurationError(
            f"BudgetManager client_type must be 'local' or a database URL, got {client_type!r}"
        )

    # -- plumbing ----------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the BudgetManager clock must return timezone-aware datetimes")
        return now

    def _price_book(self) -> PriceBook:
        return self._book or default_price_book()

    def _unknown(self, user: str) -> KeyError:
        return KeyError(f"no budget for user {user!r} in project {self.project_name!r}; create_budget first")

    def _record(self, user: str) -> BudgetRecord:
        record = self._store.get(user, self._now())
        if record is None:
            raise self._unknown(user)
        return record

    def _mutate(self, user: str, change: Callable[[BudgetRecord], Any]) -> BudgetRecord:
        def apply(record: BudgetRecord) -> BudgetRecord:
            change(record)
            return record

        try:
            return self._store.mutate(user, self._now(), apply)
        except KeyError:
            raise self._unknown(user) from None

    def _cost_of_text(self, model: str, input_text: str, output_text: str) -> int:
        prompt = estimate_prompt_tokens({"messages": [{"role": "user", "content": input_text}]})
        completion = estimate_prompt_tokens({"messages": [{"role": "user", "content": output_text}]})
        breakdown = price(
            model, Usage(input_tokens=prompt, output_tokens=completion), book=self._price_book()
        )
        if not breakdown.priced:
            raise UnpricedModelError(model, breakdown.unpriced_reason)
        return breakdown.total_nanos

    def _cost_of_response(self, completion_obj: Any) -> tuple[int, str]:
        model = model_of(completion_obj)
        if model is None:
            raise ValueError("the completion object names no model")
        return to_nano(completion_cost(completion_obj, book=self._price_book())), model

    # -- LiteLLM's methods -------------------------------------------------------------------

    @property
    def user_dict(self) -> dict[str, dict[str, Any]]:
        """Every user's budget in LiteLLM's shape (a snapshot; float USD)."""
        return {u: litellm_entry(r) for u, r in self._store.all(self._now()).items()}

    def create_budget(
        self,
        total_budget: float | int | Decimal | str,
        user: str,
        duration: Duration | None = None,
        created_at: float | datetime | None = None,
        *,
        replace: bool = True,
    ) -> dict[str, Any]:
        """Give ``user`` a budget of ``total_budget`` USD, reset every ``duration``.

        As in LiteLLM an existing budget is replaced, its costs restarting from zero;
        ``replace=False`` keeps an existing one instead (so the documented
        ``if not is_valid_user(user): create_budget(...)`` cannot race another process).

        Args:
            total_budget: USD (exact: a float is read by its shortest repr).
            user: the user id.
            duration: ``daily``, ``weekly``, ``monthly``, ``yearly`` or None (never resets).
            created_at: epoch seconds or an aware datetime; default now.

        Returns:
            The user's budget in LiteLLM's shape.
        """
        if duration is not None and duration not in DURATIONS:
            raise ValueError(
                f"duration must be one of daily, weekly, monthly, yearly (or None), got {duration!r}"
            )
        if created_at is None:
            when = self._now()
        elif isinstance(created_at, datetime):
            if created_at.tzinfo is None:
                raise ValueError("created_at must be timezone-aware")
            when = created_at.astimezone(UTC)
        else:
            when = datetime.fromtimestamp(float(created_at), UTC)
        record = new_record(
            usd_to_nanos(total_budget, "total_budget", limit=True),
            duration,
            calendar=self.calendar,
            timezone=self.timezone,
            created_at=when,
        )
        return litellm_entry(self._store.create(user, record, replace=replace))

    def projected_cost(self, model: str, messages: Sequence[Mapping[str, Any]], user: str) -> float:
        """The user's current cost plus the cost of ``messages`` as a prompt (USD)."""
        return nanos_to_usd(self.projected_cost_nanos(model, messages, user))

    def projected_cost_nanos(self, model: str, messages: Sequence[Mapping[str, Any]], user: str) -> int:
        """:meth:`projected_cost` in nano-USD."""
        prompt = estimate_prompt_tokens({"messages": list(messages)})
        breakdown = price(model, Usage(input_tokens=prompt), book=self._price_book())
        if not breakdown.priced:
            raise UnpricedModelError(model, breakdown.unpriced_reason)
        return breakdown.total_nanos + self._record(user).current_cost_nanos

    def get_total_budget(self, user: str) -> float:
        """The user's budget (USD)."""
        return nanos_to_usd(self._record(user).total_budget_nanos)

    def get_total_budget_nanos(self, user: str) -> int:
        """The user's budget in nano-USD."""
        return self._record(user).total_budget_nanos

    def update_cost(
        self,
        user: str,
        completion_obj: Any = None,
        model: str | None = None,
        input_text: str | None = None,
        output_text: str | None = None,
    ) -> dict[str, Any]:
        """Add a call's cost to the user's current cost and to its model's cost.

        Give the call's response (an OpenAI or Anthropic SDK object or its dict), priced
        exactly from its usage; or, as in LiteLLM, ``model`` with ``input_text`` and
        ``output_text``, priced from token estimates.

        Returns:
            ``{"user": <the user's budget in LiteLLM's shape>}``.
        """
        if model is not None and input_text is not None and output_text is not None:
            nanos, priced_model = self._cost_of_text(model, input_text, output_text), model
        elif completion_obj is not None:
            nanos, priced_model = self._cost_of_response(completion_obj)
        else:
            raise ValueError(
                "update_cost needs a completion object, or model with input_text and output_text"
            )

        def add(record: BudgetRecord) -> None:
            record.current_cost_nanos += nanos
            record.model_cost_nanos[priced_model] = record.model_cost_nanos.get(priced_model, 0) + nanos

        return {"user": litellm_entry(self._mutate(user, add))}

    def get_current_cost(self, user: str) -> float:
        """The user's cost in the current period (USD)."""
        return nanos_to_usd(self._record(user).current_cost_nanos)

    def get_current_cost_nanos(self, user: str) -> int:
        """The user's cost in the current period, in nano-USD."""
        return self._record(user).current_cost_nanos

    def get_record(self, user: str) -> BudgetRecord:
        """The user's whole budget as one consistent snapshot, exact (nano-USD): total,
        current, reserved, per-model cost, period, reservations in flight."""
        return self._record(user)

    def get_reserved_nanos(self, user: str) -> int:
        """The worst cases reserved for the user's calls in flight, in nano-USD."""
        return self._record(user).reserved_nanos

    def get_model_cost(self, user: str) -> dict[str, float]:
        """The user's cost per model in the current period (USD)."""
        return {m: nanos_to_usd(c) for m, c in self._record(user).model_cost_nanos.items()}

    def get_model_cost_nanos(self, user: str) -> dict[str, int]:
        """:meth:`get_model_cost` in nano-USD."""
        return dict(self._record(user).model_cost_nanos)

    def is_valid_user(self, user: str) -> bool:
        """Whether ``user`` has a budget."""
        return self._store.get(user, self._now()) is not None

    def get_users(self) -> list[str]:
        """Every user with a budget in this project."""
        return list(self._store.all(self._now()))

    def reset_cost(self, user: str) -> dict[str, Any]:
        """Zero the user's current and per-model costs (reservations in flight stay)."""
        return {"user": litellm_entry(self._mutate(user, reset_costs))}

    def reset_on_duration(self, user: str) -> None:
        """Reset the user's costs if their duration has passed: calendar mode, when a new
        period has begun (reads already show it; this writes it); rolling mode, LiteLLM's
        ``now - last_updated_at >= duration days``, restarting the count from now."""
        now = self._now()

        def maybe_reset(record: BudgetRecord) -> None:
            roll_period(record, now)
            if rolling_reset_due(record, now):
                reset_costs(record)
                record.last_updated_at = now

        self._mutate(user, maybe_reset)

    def update_budget_all_users(self) -> None:
        """:meth:`reset_on_duration` for every user with a duration."""
        for user, record in self._store.all(self._now()).items():
            if record.duration is not None:
                self.reset_on_duration(user)

    def save_data(self) -> dict[str, str]:
        """Kept for LiteLLM compatibility: every change is already written, atomically,
        before the method that made it returns."""
        return {"status": "success"}

    # -- what LiteLLM lacks: reserve, then settle ---------------------------------------------

    def check_and_reserve(
        self,
        user: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int | None = None,
    ) -> Reservation:
        """Reserve the call's worst case against the user's budget, atomically, or refuse.

        The worst case is the gateway's: the prompt estimate at the input rate plus
        ``max_tokens`` (default: the model's output limit in the catalogue) at the larger
        of the output and reasoning rates, at the long-context tier the prompt selects.
        It fits when ``current + reserved + worst <= total``.

        Returns:
            A :class:`Reservation`: pass it to :meth:`settle` after the call, or to
            :meth:`release` if the call is not made or fails.

        Raises:
            BudgetExceededError: the worst case does not fit.
            UnpricedModelError: no price is known for ``model``.
            KeyError: the user has no budget.
            ValueError: no ``max_tokens`` and no known output limit, or a negative one.
        """
        now = self._now()
        worst = worst_case(model, messages, max_tokens, self._price_book(), now)
        reservation = Reservation(
            id=uuid.uuid4().hex,
            user=user,
            model=model,
            amount_nanos=worst.nanos,
            prompt_tokens=worst.prompt_tokens,
            max_tokens=worst.max_tokens,
            expires_at=now + self.lease,
        )
        try:
            outcome = self._store.reserve(
                user, reservation.id, Held(worst.nanos, reservation.expires_at), now
            )
        except KeyError:
            raise self._unknown(user) from None
        if not outcome.reserved:
            raise refusal(self.project_name, user, outcome.record, worst, now)
        return reservation

    def settle(
        self,
        reservation: Reservation,
        completion_obj: Any = None,
        *,
        cost: float | int | Decimal | str | None = None,
        cost_nanos: int | None = None,
    ) -> bool:
        """Replace a reservation with the call's real cost (idempotent).

        Give the call's response (priced exactly, as :meth:`update_cost` does), or its
        ``cost`` in USD (a number may also be passed in the response's place), or
        ``cost_nanos``. The cost is added to the current period and to the model's cost.

        Returns:
            True if this call settled it; False if it was already settled or released.
        """
        if isinstance(completion_obj, int | float | Decimal) and not isinstance(completion_obj, bool):
            cost, completion_obj = completion_obj, None
        given = sum(x is not None for x in (completion_obj, cost, cost_nanos))
        if given != 1:
            raise ValueError("settle needs exactly one of a completion object, cost or cost_nanos")
        model = reservation.model
        if completion_obj is not None:
            nanos, model = self._cost_of_response(completion_obj)
        elif cost is not None:
            nanos = usd_to_nanos(cost, "cost")
        else:
            if isinstance(cost_nanos, bool) or not isinstance(cost_nanos, int) or cost_nanos < 0:
                raise ValueError(f"cost_nanos must be a non-negative integer, got {cost_nanos!r}")
            nanos = cost_nanos
        return self._close(reservation, "settled", nanos, model)

    def release(self, reservation: Reservation) -> bool:
        """Drop a reservation without cost (the call was not made, or failed unbilled).
        Idempotent: returns True if this call released it."""
        return self._close(reservation, "released", 0, reservation.model)

    def _close(
        self, reservation: Reservation, state: Literal["settled", "released"], nanos: int, model: str
    ) -> bool:
        with reservation.lock:
            if reservation.state != "open":
                return False

            def close(record: BudgetRecord) -> None:
                held = record.reservations.pop(reservation.id, None)
                if held is not None:  # else its lease ended and it no longer holds budget
                    record.reserved_nanos = max(0, record.reserved_nanos - held.amount_nanos)
                if state == "settled":
                    record.current_cost_nanos += nanos
                    record.model_cost_nanos[model] = record.model_cost_nanos.get(model, 0) + nanos

            self._mutate(reservation.user, close)
            reservation.state = state
            return True

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        """Release the store's connections and threads."""
        self._store.close()

    def __enter__(self) -> BudgetManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
