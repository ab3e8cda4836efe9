"""What is limited: budgets and rate limits of scopes, and the storage keys they count in.

Scopes themselves are defined in :mod:`spendgate.core.scopes`.

These are plain values; they hold no state and do no I/O. The enforcer
(:mod:`spendgate.enforcement.enforcer`, planning in :mod:`spendgate.enforcement.planning`)
turns them into storage operations.

Storage keys all start with one Redis Cluster hash tag, ``{<prefix>}``, so every key of a
request lands in one slot and a single Lua script can reserve across every scope at once,
all or nothing (see ``docs/enforcement.md``, "Redis Cluster").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from spendgate.core.periods import Period, Window, parse_window, period_for
from spendgate.core.scopes import Scope

__all__ = [
    "BudgetLimit",
    "KeySpace",
    "RateKind",
    "RateLimit",
    "scope_limits",
]

RateKind = Literal["requests", "tokens", "parallel"]


@dataclass(frozen=True, slots=True)
class BudgetLimit:
    """A spend cap for one scope and one window, in integer nano-USD.

    ``max_nanos=None`` is unlimited; ``0`` allows nothing. A request is admitted when
    ``spend + reserved + estimate <= max`` (the boundary is allowed: spend may reach the
    limit exactly, never pass it). ``soft_nanos`` never blocks; crossing it is reported on
    the reservation. ``temp_increase_nanos`` raises the limit until ``temp_expiry`` (UTC).
    ``tz`` is the IANA timezone the window's calendar is read in. ``alert_thresholds``:
    percents of the limit this budget alerts at besides the configured ones (LiteLLM's
    ``max_budget_alert_emails`` keys). ``anchor``: the budget's start (creation or last
    change of its duration); only a window that :attr:`~spendgate.core.periods.Window.runs_from_start`
    keeps it (others drop it, so they plan, dedupe and cache as before). Every period of
    this budget is :meth:`period_at`: admission, seeding, crossings and the entity views.
    ``main``: the scope's main window (``max_budget`` + ``budget_duration``, as
    :func:`scope_limits` builds it), the only window of a key that a spend set by
    ``/key/update`` moves (:mod:`spendgate.ledger.adjustments`); a key's other windows
    (``budget_limits``) count real spend only, in counters of their own (:class:`KeySpace`).
    """

    scope: Scope
    window: Window
    max_nanos: int | None
    soft_nanos: int | None = None
    tz: str | None = None
    temp_increase_nanos: int = 0
    temp_expiry: datetime | None = None
    alert_thresholds: tuple[Decimal, ...] = ()
    anchor: datetime | None = None
    main: bool = False

    def __post_init__(self) -> None:
        if self.anchor is not None and not self.window.runs_from_start:
            object.__setattr__(self, "anchor", None)

    @property
    def counts_adjustments(self) -> bool:
        """Whether this window's spend counts its key's spend adjustments: a key's main
        window only (every other window, of a key or of any other scope, counts real spend)."""
        return self.main and self.scope.type == "key"

    def period_at(self, at: datetime) -> Period:
        """The period of this budget's window that holds ``at`` (in its zone, from its anchor)."""
        return period_for(self.window, at, self.tz, self.anchor)

    @classmethod
    def of(
        cls,
        scope: Scope,
        window: str | Window,
        max_nanos: int | None,
        *,
        soft_nanos: int | None = None,
        tz: str | None = None,
        fiscal_start_month: int = 1,
        temp_increase_nanos: int = 0,
        temp_expiry: datetime | None = None,
        anchor: datetime | None = None,
        main: bool = False,
    ) -> BudgetLimit:
        """Build from a duration or window string (``"24h"``, ``"1mo"``, ``"quarter"``, ``"rolling:7d"``)."""
        if isinstance(window, str):
            window = parse_window(window, fiscal_start_month=fiscal_start_month)
        return cls(
            scope,
            window,
            max_nanos,
            soft_nanos,
            tz,
            temp_increase_nanos,
            temp_expiry,
            anchor=anchor,
            main=main,
        )

    def effective_max(self, now: datetime) -> int | None:
        """The limit at ``now``: ``max`` plus a temporary increase that has not expired."""
        if self.max_nanos is None:
            return None
        if self.temp_increase_nanos and (self.temp_expiry is None or now < self.temp_expiry):
            return self.max_nanos + self.temp_increase_nanos
        return self.max_nanos

    def effective_max_ms(self, now_ms: int) -> int | None:
        if self.max_nanos is None:
            return None
        if self.temp_increase_nanos and (
            self.temp_expiry is None or now_ms < int(self.temp_expiry.timestamp() * 1000)
        ):
            return self.max_nanos + self.temp_increase_nanos
        return self.max_nanos


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit`` requests or tokens per sliding ``window_seconds``, or ``limit`` parallel requests.

    ``limit=None`` is unlimited; ``0`` allows nothing. ``window_seconds`` is ignored for
    ``parallel`` (a slot is held until release, or until its lease runs out).
    """

    scope: Scope
    kind: RateKind
    limit: int | None
    window_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.kind not in ("requests", "tokens", "parallel"):
            raise ValueError(f"unknown rate limit kind {self.kind!r}")
        if self.kind != "parallel" and self.window_seconds * 1000 < 1:
            raise ValueError("a rate limit window must be at least 1 ms")

    @property
    def window_ms(self) -> int:
        return 0 if self.kind == "parallel" else round(self.window_seconds * 1000)


def scope_limits(
    scope: Scope,
    *,
    max_budget_nanos: int | None = None,
    budget_duration: str | None = None,
    budget_windows: Iterable[tuple[str, int | None]] = (),
    soft_budget_nanos: int | None = None,
    tz: str | None = None,
    fiscal_start_month: int = 1,
    temp_increase_nanos: int = 0,
    temp_expiry: datetime | None = None,
    alert_thresholds: tuple[Decimal, ...] = (),
    anchor: datetime | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    rpd_limit: int | None = None,
    tpd_limit: int | None = None,
    max_parallel_requests: int | None = None,
    rate_window_seconds: float = 60.0,
) -> tuple[list[BudgetLimit], list[RateLimit]]:
    """The budgets and rate limits of one scope from LiteLLM's entity fields (money in nanos).

    * ``max_budget`` + ``budget_duration`` is the main window (no duration: lifetime,
      :attr:`BudgetLimit.main`); the soft budget, a temporary increase, ``alert_thresholds``
      and ``anchor`` (the budget's start) apply to it. A soft budget without a max is a
      soft-only window (never blocks).
    * ``budget_windows`` are LiteLLM's ``budget_limits``: ``(budget_duration, max)`` pairs.
    * ``rpm_limit`` / ``tpm_limit``: per ``rate_window_seconds`` (default 60 s, sliding);
      ``rpd_limit`` / ``tpd_limit``: per sliding 24 h; ``max_parallel_requests``: slots.

    ``None`` means unlimited (the limit is left out); ``0`` allows nothing.
    """
    budgets: list[BudgetLimit] = []
    if max_budget_nanos is not None or soft_budget_nanos is not None:
        window = parse_window(budget_duration or "lifetime", fiscal_start_month=fiscal_start_month)
        budgets.append(
            BudgetLimit(
                scope,
                window,
                max_budget_nanos,
                soft_budget_nanos,
                tz,
                temp_increase_nanos,
                temp_expiry,
                alert_thresholds,
                anchor,
                main=True,
            )
        )
    for duration, max_nanos in budget_windows:
        budgets.append(
            BudgetLimit.of(scope, duration, max_nanos, tz=tz, fiscal_start_month=fiscal_start_month)
        )
    rates: list[RateLimit] = []
    for kind, limit, seconds in (
        ("requests", rpm_limit, rate_window_seconds),
        ("tokens", tpm_limit, rate_window_seconds),
        ("requests", rpd_limit, 86_400.0),
        ("tokens", tpd_limit, 86_400.0),
    ):
        if limit is not None:
            rates.append(RateLimit(scope, kind, limit, seconds))  # type: ignore[arg-type]
    if max_parallel_requests is not None:
        rates.append(RateLimit(scope, "parallel", max_parallel_requests))
    return budgets, rates


def _escape(part: str) -> str:
    # Keys are ':'-separated; ids may contain ':' (team:user), so escape it and '%'.
    if "%" in part or ":" in part:
        return part.replace("%", "%25").replace(":", "%3A")
    return part


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Builds storage keys. Every key starts with the hash tag ``{prefix}``.

    Layout (all under ``{prefix}:``):

    * ``b:<scope>:<window>:<period key>`` — a budget counter (hash: ``s`` spend, ``r``
      reserved, ``q<request id>`` per open reservation; rolling windows use ``b<bucket>`` fields);
      a key's window other than its main one is ``b:<scope>:limits:<window>:<period key>``:
      it does not count the key's spend adjustments, so it never shares the main window's
      counter, even with the same duration;
    * ``l:<scope>:<window>:<period key>`` — its reservation leases (zset, score = expiry ms);
    * ``rl:<scope>:<kind>:<window ms>`` — a sliding-window counter (hash ``w``, ``p``, ``c``);
    * ``pl:<scope>`` — parallel slots (zset, member = request id, score = lease expiry ms);
    * ``q:<request id>`` — the request's terminal state (``s`` settled, ``x`` released).
    """

    prefix: str = "sg"
    _tag: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "{}"):
            raise ValueError(f"a key prefix must be non-empty and free of braces, got {self.prefix!r}")
        object.__setattr__(self, "_tag", f"{{{self.prefix}}}:")

    def _scope(self, scope: Scope) -> str:
        return f"{scope.type}:{_escape(scope.id)}"

    def budget(self, scope: Scope, window: Window, period_key: str, *, main: bool = True) -> tuple[str, str]:
        """The counter key and its lease key (``main``: see :attr:`BudgetLimit.main`)."""
        apart = "limits:" if not main and scope.type == "key" else ""  # see BudgetLimit.counts_adjustments
        tail = f"{self._scope(scope)}:{apart}{window.name}:{_escape(period_key)}"
        return f"{self._tag}b:{tail}", f"{self._tag}l:{tail}"

    def rate(self, limit: RateLimit) -> str:
        if limit.kind == "parallel":
            return f"{self._tag}pl:{self._scope(limit.scope)}"
        return f"{self._tag}rl:{self._scope(limit.scope)}:{limit.kind}:{limit.window_ms}"

    def request(self, request_id: str) -> str:
        if "%" in request_id or ":" in request_id:
            request_id = _escape(request_id)
        return self._tag + "q:" + request_id


def utc_from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
