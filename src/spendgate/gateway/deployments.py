"""Deployments: the upstreams that serve each model group, with their prices.

A model group is every ``model_list`` entry with the same ``model_name``; each entry is a
:class:`Deployment` that knows where to send a call (its :class:`~spendgate.providers.base.Target`),
how to price what it served (its price layer, discounts and margins, the service tier
billed), and the most a call can cost there (the worst case a budget reserves).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from spendgate.catalogue.litellm_format import litellm_to_catalogue
from spendgate.config import DeploymentConfig, GatewayConfig
from spendgate.core.money import to_nano
from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.core.pricing.calculator import Adjustment
from spendgate.core.pricing.catalogue import Catalogue, PriceBook
from spendgate.core.usage.model import Usage
from spendgate.costs import price
from spendgate.enforcement.estimate import target_worst_case
from spendgate.errors import ConfigurationError
from spendgate.providers.base import Target
from spendgate.providers.metering import billed_tier
from spendgate.providers.targets import OPENAI_COMPATIBLE, resolve_target

__all__ = ["OPENAI_COMPATIBLE", "Deployment", "InFlightSlot", "billed_tier", "build_deployments", "target_of"]


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

    def worst_case(self, prompt: int, output: int, tier: str | None = None) -> int:
        """The most a call of ``prompt`` + ``output`` tokens can cost here, in nano-USD (at
        service tier ``tier``, as :func:`billed_tier` names it; discounts and margins
        applied). 0 when the model has no price: it is recorded unpriced, nothing to reserve."""
        return target_worst_case(self, prompt, output, service_tier=tier)

    def serving(self) -> InFlightSlot:
        """Count one call in flight here until the slot is closed (least-busy reads it)."""
        return InFlightSlot(self)

    def max_output_tokens(self) -> int | None:
        """The catalogue's output cap for this deployment's model (None: not known)."""
        entry = self.book.find(self.price_model, self.price_provider)
        return entry.max_output_tokens if entry is not None and entry.max_output_tokens else None


class InFlightSlot:
    """One call in flight at a deployment: counted from creation until closed (once, however
    the call ends; a stream, when it ends). A context manager."""

    __slots__ = ("_deployment",)

    def __init__(self, deployment: Deployment) -> None:
        deployment.in_flight += 1
        self._deployment: Deployment | None = deployment

    def close(self) -> None:
        if self._deployment is not None:
            self._deployment.in_flight -= 1
            self._deployment = None

    def __enter__(self) -> InFlightSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def target_of(entry: DeploymentConfig, where: str, timeout: float) -> Target:
    """The connection settings of a ``model_list`` entry (the rule: :func:`resolve_target`)."""
    params = entry.litellm_params
    return resolve_target(
        params.model,
        api_base=params.api_base,
        api_key=params.api_key,
        api_version=params.api_version,
        timeout=params.timeout or timeout,
        stream_timeout=params.stream_timeout,
        where=f"{where}.litellm_params",
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
