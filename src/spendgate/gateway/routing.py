"""Model groups, deployments, and how a call finds the deployment that serves it.

A model group is every ``model_list`` entry with the same ``model_name``; each entry is a
:class:`Deployment`. :meth:`Router.run` picks a deployment by the configured strategy:

* ``simple-shuffle``: random, weighted by ``weight`` (else ``rpm``, else ``tpm``, else even);
* ``lowest-cost``: the deployment whose price (1k input + 1k output tokens, per-deployment
  prices and discounts included) is lowest; ties shuffled;
* ``least-busy``: the fewest calls in flight (streams count until they end).

An attempt that fails with a retryable error (429, 408, 409, 5xx, timeout, connection
error) is retried up to ``num_retries`` times, on another deployment of the group when
there is one, after an exponential back-off (or the upstream's ``Retry-After``, capped).
When the group is exhausted, the fallback groups are tried in order, each with the same
retries. A non-retryable error (a 400 from the upstream) ends the call at once.

Before each attempt the call's :class:`AttemptGate` (from the admission) admits the
attempt at its deployment: the limits that depend on where the call is served (the
deployment's ``rpm`` / ``tpm`` and budget, its provider's budget, the key's and team's
budgets for that model group). A deployment that refuses is skipped (no retry used, no
back-off) for the next one in strategy order, then the fallback groups. When every
deployment refuses, the call fails: with :class:`~spendgate.errors.RateLimited` (429, the
smallest retry-after) when any was only saturated, else with the first
:class:`~spendgate.errors.BudgetExceeded`.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from spendgate.catalogue.litellm_format import litellm_to_catalogue
from spendgate.config import DeploymentConfig, GatewayConfig
from spendgate.core.money import to_nano
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.pricing.calculator import Adjustment
from spendgate.core.pricing.catalogue import Catalogue, PriceBook, canonical_provider
from spendgate.core.pricing.spec import SERVICE_TIERS
from spendgate.core.usage.model import Usage
from spendgate.costs import price
from spendgate.errors import (
    ConfigurationError,
    LimitExceeded,
    RateLimited,
    UpstreamError,
    UpstreamStatusError,
)
from spendgate.providers.base import Target

__all__ = ["AttemptGate", "Deployment", "Router", "billed_tier", "build_deployments", "target_of"]

T = TypeVar("T")

# OpenAI-compatible providers and their default base URLs (the OpenAI SDK's base_url).
OPENAI_COMPATIBLE: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "text-completion-openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "together_ai": "https://api.together.xyz/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "xai": "https://api.x.ai/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "mistral": "https://api.mistral.ai/v1",
    "perplexity": "https://api.perplexity.ai",
    "ollama": "http://localhost:11434/v1",
    "ollama_chat": "http://localhost:11434/v1",
    "hosted_vllm": None,
    "openai_like": None,
    "custom_openai": None,
    "lm_studio": "http://localhost:1234/v1",
}


@dataclass(slots=True, eq=False)
class Deployment:
    """One upstream that serves a model group, with its prices."""

    id: str
    group: str
    target: Target
    price_model: str
    """The model name the price is looked up by (``model_info.base_model`` when given)."""
    price_provider: str
    book: PriceBook
    adjustment: Adjustment | None = None
    weight: float = 1.0
    in_flight: int = 0
    rpm: int | None = None
    """Requests per window this deployment accepts (``litellm_params.rpm``); None: unlimited."""
    tpm: int | None = None
    """Tokens per window (``litellm_params.tpm``); None: unlimited."""
    max_budget_nanos: int | None = None
    """The deployment's budget (``litellm_params.max_budget``); None: unlimited."""
    budget_duration: str | None = None
    """The window of ``max_budget_nanos``; None: lifetime."""

    @property
    def provider(self) -> str:
        return self.target.provider

    def price(
        self,
        usage: Usage,
        at: datetime | None = None,
        *,
        served_tier: str | None = None,
        requested_tier: str | None = None,
    ) -> CostBreakdown:
        """Price a call this deployment served, at the service tier :func:`billed_tier`
        picks from the one the answer reported and the one the request asked for."""
        return price(
            self.price_model,
            usage,
            provider=self.price_provider,
            service_tier=billed_tier(served_tier, requested_tier),
            at=at,
            book=self.book,
            adjustment=self.adjustment,
        )

    def unit_cost(self) -> Decimal:
        """Cost of 1k input + 1k output tokens (for ``lowest-cost``); infinite if unpriced."""
        breakdown = self.price(Usage(input_tokens=1000, output_tokens=1000))
        return breakdown.total if breakdown.priced else Decimal("Infinity")


_SURCHARGED_TIERS = frozenset({"priority"})
"""Tiers dearer than standard: billed as requested even when the answer does not say."""


def billed_tier(served: str | None, requested: str | None = None) -> str | None:
    """The service tier a call is priced at (None: standard), from normalized names
    (:mod:`spendgate.core.usage.tier`).

    The tier the answer says served the call wins (OpenAI reports it on every answer, and
    a ``priority`` request over its ramp limit is served and billed at standard). When the
    answer does not say, the requested tier counts if it is dearer than standard
    (``priority``); a discount (``flex``) needs the upstream to confirm it, since a server
    that ignores the field serves, and charges, the standard tier. A tier without rates of
    its own in the catalogue prices at the standard rates.
    """
    tier = served if served is not None else (requested if requested in _SURCHARGED_TIERS else None)
    return tier if tier in SERVICE_TIERS else None


def target_of(entry: DeploymentConfig, where: str, timeout: float) -> Target:
    """The connection settings of a ``model_list`` entry."""
    params = entry.litellm_params
    prefix, sep, rest = params.model.partition("/")
    provider, model = (prefix.lower(), rest) if sep else ("openai", params.model)
    limit = params.timeout or timeout
    stream_limit = params.stream_timeout
    if provider in ("azure", "azure_openai"):
        if not params.api_base:
            raise ConfigurationError(f"{where}.litellm_params.api_base: required for azure/ deployments")
        return Target(
            "azure", "azure", model, params.api_base, params.api_key, params.api_version, limit, stream_limit
        )
    if provider == "anthropic":
        base = params.api_base or "https://api.anthropic.com"
        return Target("anthropic", "anthropic", model, base, params.api_key, None, limit, stream_limit)
    if provider in OPENAI_COMPATIBLE or params.api_base:
        found = params.api_base or OPENAI_COMPATIBLE.get(provider)
        if found is None:
            raise ConfigurationError(f"{where}.litellm_params.api_base: required for {provider}/ deployments")
        if provider not in OPENAI_COMPATIBLE:
            model = params.model  # "org/model" on a custom server: the slash is part of the name
        return Target(
            "openai", canonical_provider(provider), model, found, params.api_key, None, limit, stream_limit
        )
    raise ConfigurationError(
        f"{where}.litellm_params.model: provider {provider!r} is not supported by the gateway "
        "(use openai/, azure/, anthropic/ or an OpenAI-compatible provider with api_base)"
    )


def build_deployments(
    config: GatewayConfig,
    book: PriceBook,
    adjustment_for: Callable[[str, str], Adjustment | None] = lambda provider, model: None,
) -> list[Deployment]:
    """Deployments for every ``model_list`` entry, each with its own price layer if it has one."""
    out: list[Deployment] = []
    counts: dict[str, int] = {}
    for i, entry in enumerate(config.model_list):
        where = f"model_list[{i}]"
        target = target_of(entry, where, config.timeout)
        n = counts[entry.model_name] = counts.get(entry.model_name, 0) + 1
        ident = entry.model_info.id or f"{entry.model_name}#{n}"
        price_model = entry.model_info.base_model or entry.litellm_params.base_model or target.model
        price_provider = target.provider
        costs = {**entry.litellm_params.cost_fields(), **entry.model_info.cost_fields()}
        deployment_book = book
        if costs:
            raw = {
                price_model: {
                    **costs,
                    "litellm_provider": price_provider,
                    "mode": entry.model_info.mode or "chat",
                }
            }
            try:
                layer = litellm_to_catalogue(
                    raw, name=f"deployment:{ident}", version=ident, prices_checked=None
                )
                deployment_book = book.with_layer(Catalogue.from_dict(layer, name=f"deployment:{ident}"))
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"{where}: per-deployment prices: {exc}") from None
        params = entry.litellm_params
        weight = params.weight or params.rpm or params.tpm or 1
        budget = None if params.max_budget is None else to_nano(params.max_budget)
        out.append(
            Deployment(
                id=ident,
                group=entry.model_name,
                target=target,
                price_model=price_model,
                price_provider=price_provider,
                book=deployment_book,
                adjustment=adjustment_for(price_provider, price_model),
                weight=float(weight),
                rpm=params.rpm,
                tpm=params.tpm,
                max_budget_nanos=budget,
                budget_duration=params.budget_duration,
            )
        )
    return out


class AttemptGate(Protocol):
    """Admits one call's attempts at the deployments routing picks."""

    async def take(self, deployment: Deployment) -> object | None:
        """Admit an attempt at ``deployment``: a hold (None when nothing limits it there), or
        raise :class:`~spendgate.errors.LimitExceeded` to have the deployment skipped."""
        ...

    async def release(self, hold: object) -> None:
        """Give a hold back (the attempt failed or was cancelled)."""
        ...


class Router:
    """Picks deployments, retries and falls back (see the module docstring)."""

    def __init__(
        self,
        deployments: Iterable[Deployment],
        *,
        strategy: str = "simple-shuffle",
        num_retries: int = 2,
        fallbacks: dict[str, list[str]] | None = None,
        retry_after: float = 0.05,
        max_retry_delay: float = 2.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.groups: dict[str, list[Deployment]] = {}
        for d in deployments:
            self.groups.setdefault(d.group, []).append(d)
        self.strategy = strategy
        self.num_retries = num_retries
        self.fallbacks = fallbacks or {}
        self.retry_after = retry_after
        self.max_retry_delay = max_retry_delay
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._unit_costs = (
            {id(d): d.unit_cost() for g in self.groups.values() for d in g}
            if strategy == "lowest-cost"
            else {}
        )

    def group(self, name: str) -> list[Deployment] | None:
        return self.groups.get(name)

    def pick(self, candidates: list[Deployment]) -> Deployment:
        if len(candidates) == 1:
            return candidates[0]
        if self.strategy == "least-busy":
            low = min(d.in_flight for d in candidates)
            return self._rng.choice([d for d in candidates if d.in_flight == low])
        if self.strategy == "lowest-cost":
            low_cost = min(self._unit_costs.get(id(d), Decimal("Infinity")) for d in candidates)
            return self._rng.choice([d for d in candidates if self._unit_costs.get(id(d)) == low_cost])
        return self._rng.choices(candidates, weights=[d.weight for d in candidates])[0]

    async def run(
        self,
        group: str,
        attempt: Callable[[Deployment, int], Awaitable[T]],
        on_failure: Callable[[Deployment, int, UpstreamError], Awaitable[None]],
        *,
        gate: AttemptGate | None = None,
        holds: list[object] | None = None,
    ) -> tuple[Deployment, T]:
        """Call ``attempt(deployment, attempt_number)`` until one succeeds.

        The returned deployment has ``in_flight`` incremented: the caller calls
        ``deployment.in_flight -= 1`` when the call is over (a stream, when it ends).
        ``on_failure`` is awaited for every failed attempt, before any retry.
        With a ``gate``, each attempt is first admitted at its deployment (its hold released
        when the attempt fails); the successful attempt's hold is appended to ``holds``, for
        the caller to settle or release.
        """
        number = 0
        last: UpstreamError | None = None
        refusals: list[LimitExceeded] = []
        for name in (group, *self.fallbacks.get(group, ())):
            deployments = self.groups.get(name) or []
            tried: set[int] = set()
            saturated: set[int] = set()
            for retry in range(self.num_retries + 1):
                picked = await self._take(deployments, tried, saturated, gate, refusals)
                if picked is None:
                    break
                deployment, hold = picked
                tried.add(id(deployment))
                number += 1
                deployment.in_flight += 1
                try:
                    result = await attempt(deployment, number)
                except UpstreamError as exc:
                    deployment.in_flight -= 1
                    await _release(gate, hold)
                    await on_failure(deployment, number, exc)
                    if not exc.retryable:
                        raise
                    last = exc
                except BaseException:
                    deployment.in_flight -= 1
                    await _release(gate, hold)
                    raise
                else:
                    if hold is not None and holds is not None:
                        holds.append(hold)
                    return deployment, result
                if retry < self.num_retries:
                    await self._sleep(self._delay(retry, last))
        if last is None and refusals:
            raise _refused(group, refusals)
        assert last is not None, "a model group always has a deployment"
        raise last

    async def _take(
        self,
        deployments: list[Deployment],
        tried: set[int],
        saturated: set[int],
        gate: AttemptGate | None,
        refusals: list[LimitExceeded],
    ) -> tuple[Deployment, object | None] | None:
        """The next deployment by the strategy (untried first) that admits the attempt (and
        its hold); one that refuses is skipped and remembered. None: every one refused."""
        while True:
            open_ = [d for d in deployments if id(d) not in saturated]
            candidates = [d for d in open_ if id(d) not in tried] or open_
            if not candidates:
                return None
            deployment = self.pick(candidates)
            if gate is None:
                return deployment, None
            try:
                return deployment, await gate.take(deployment)
            except LimitExceeded as exc:
                saturated.add(id(deployment))
                refusals.append(exc)

    def _delay(self, retry: int, error: UpstreamError | None) -> float:
        if isinstance(error, UpstreamStatusError):
            hint = error.headers.get("retry-after")
            try:
                seconds = float(hint) if hint else math.nan
            except ValueError:
                seconds = math.nan
            if seconds == seconds and seconds >= 0:
                return float(min(seconds, self.max_retry_delay))
        base: float = min(self.max_retry_delay, self.retry_after * 2.0**retry)
        return base * (0.5 + self._rng.random() / 2)


async def _release(gate: AttemptGate | None, hold: object | None) -> None:
    if hold is not None and gate is not None:
        await gate.release(hold)


def _refused(group: str, refusals: list[LimitExceeded]) -> LimitExceeded:
    """The error when every deployment refused: a 429 naming the one that frees up first
    when any was only saturated (a retry can succeed soon), else the first budget refusal."""
    saturated = [r for r in refusals if isinstance(r, RateLimited)]
    if not saturated:
        return refusals[0]
    soonest = min(saturated, key=lambda r: math.inf if r.retry_after is None else r.retry_after)
    return RateLimited(
        scope=f"model group {group!r} (every deployment is saturated)",
        kind=soonest.kind,
        limit=soonest.limit,
        window_seconds=soonest.window_seconds,
        retry_after=soonest.retry_after,
    )
