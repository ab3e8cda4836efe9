"""Step 3 of the request path: whom a call is attributed to, and every limit of those scopes.

Resolved once per request (:meth:`ScopeResolver.resolve`), then handed to the admission:
the attribution (:class:`Scopes`, written on the spend event) and the request's own
limits, deduplicated (one per counter: strictest wins)::

    global       litellm_settings.max_budget + budget_duration
    key          the key's max_budget, budget_duration, budget_limits, soft_budget,
                 temp_budget_increase, rpm/tpm/rpd/tpd_limit, max_parallel_requests
    user         the key owner's limits (skipped for team keys unless
                 general_settings.apply_user_budget_to_team_keys, as LiteLLM)
    team         the team's limits
    team_member  the member's budget inside the team (team/member_add's max_budget_in_team)
    organization the organization of the key (or of its team)
    end_user     the request's customer; an unknown one gets litellm_settings.max_end_user_budget;
                 one that belongs to a team or organization may be named only by its keys
                 (:class:`~spendgate.entities.CustomerOwners`: 403 naming the field otherwise)
    tag          every tag of the key and of the request with a budget profile

The limits that depend on where the call is served (``model_max_budget`` /
``model_rpm_limit`` / ``model_tpm_limit`` for a model group) come from the same resolved
entities, for the same scopes as above: the key's, its owner's (when the user's limits
apply), its team's, its organization's and the request's customer's
(:meth:`ResolvedScopes.model_limits`: ``key_model``, ``user_model``, ``team_model``,
``organization_model``, ``end_user_model``).

Entities are cached per key for ``general_settings.key_cache_ttl_seconds`` (dropped at once
when the management API changes the key) and honoured past it through a database outage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from spendgate.core.scopes import Scope
from spendgate.enforcement import BudgetLimit, RateLimit
from spendgate.entities import CustomerOwners, EntityReader, KeyEntities, LimitSpec
from spendgate.gateway.auth import Principal
from spendgate.gateway.lookups import LookupCache, database_health
from spendgate.http.credentials import END_USER_HEADER
from spendgate.http.errors import CustomerNotAllowed, PermissionDenied
from spendgate.providers.base import ClientCall

__all__ = ["ResolvedScopes", "ScopeResolver", "Scopes"]

Limits = tuple[list[BudgetLimit], list[RateLimit]]


@dataclass(frozen=True, slots=True)
class Scopes:
    """Everything a request is attributed to (and may be limited by)."""

    api_key: str | None
    """The key's stable id (``virtual_keys.key_id``)."""
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    end_user: str | None = None
    tags: tuple[str, ...] = ()
    model_group: str = ""


@dataclass(slots=True)
class ResolvedScopes:
    """A request's scopes with their limits, resolved once (:meth:`ScopeResolver.resolve`)."""

    scopes: Scopes
    key_id: str | None = None
    """The key whose limits apply (None for the master key: only global and customer limits)."""
    entities: KeyEntities | None = None
    budgets: list[BudgetLimit] = field(default_factory=list)
    rates: list[RateLimit] = field(default_factory=list)
    tz: str = "UTC"
    rate_window: float = 60.0
    owners: tuple[tuple[Scope, LimitSpec], ...] = ()
    """Every scope whose limits apply to the request and that may have per-model limits,
    with its limits (set by :meth:`ScopeResolver.resolve`): the key, its owner (when the
    user's limits apply to it), its team, its organization, the customer."""

    def model_limits(self, model: str) -> Limits:
        """Every applicable scope's limits for one model group (a fallback is checked at
        its own group): ``<owner>_model:<owner id>:<model>``."""
        budgets: list[BudgetLimit] = []
        rates: list[RateLimit] = []
        for owner, spec in self.owners:
            b, r = spec.model_limits(
                Scope.per_model(owner, model), model, tz=self.tz, rate_window=self.rate_window
            )
            budgets += b
            rates += r
        return budgets, rates


class ScopeResolver:
    """Attributes requests and loads their scopes' limits (see the module docstring)."""

    def __init__(
        self,
        reader: EntityReader,
        engine: AsyncEngine,
        *,
        tz: str = "UTC",
        rate_window: float = 60.0,
        user_on_team_keys: bool = False,
        trust_end_user_field: bool = True,
        global_spec: LimitSpec | None = None,
        end_user_default_nanos: int | None = None,
        ttl_seconds: float = 60.0,
        stale_seconds: float = 3600.0,
        wait_seconds: float = 5.0,
    ) -> None:
        self.reader = reader
        self.tz = tz
        self.rate_window = rate_window
        self.user_on_team_keys = user_on_team_keys
        self.trust_end_user_field = trust_end_user_field
        self.end_user_default = end_user_default_nanos
        # Fixed by the config: built once, not per request.
        self._global = (global_spec or LimitSpec()).limits(Scope("global"), tz=tz, rate_window=rate_window)
        health = database_health(engine)

        def cache(what: str) -> Any:
            return LookupCache(
                ttl_seconds, stale_seconds=stale_seconds, wait=wait_seconds, what=what, health=health
            )

        self._keys: LookupCache[KeyEntities | None] = cache("key's limits")
        self._customers: LookupCache[LimitSpec | None] = cache("customer")
        self._tags: LookupCache[LimitSpec | None] = cache("tag")
        self._owners: LookupCache[CustomerOwners] = cache("customer's owner")

    # -- attribution --------------------------------------------------------------------------

    def attribute(self, principal: Principal, call: ClientCall, header_end_user: str | None = None) -> Scopes:
        """Whom the call is attributed to. The end customer: a key bound to one wins; then a
        trusted proxy's header; then the body's ``user`` (or Anthropic's
        ``metadata.user_id``) when ``trust_end_user_field``."""
        end_user = principal.end_user_id or header_end_user
        payload = call.payload
        if end_user is None and self.trust_end_user_field:
            user = payload.get("user")
            if user is None and isinstance(payload.get("metadata"), dict):
                user = payload["metadata"].get("user_id")  # Anthropic clients
            end_user = user if isinstance(user, str) and user else None
        tags = list(principal.tags)
        metadata = payload.get("metadata")
        if isinstance(metadata, dict) and isinstance(metadata.get("tags"), list):
            tags += [t for t in metadata["tags"] if isinstance(t, str)]
        return Scopes(
            api_key=principal.key_id,
            user_id=principal.user_id,
            team_id=principal.team_id,
            organization_id=principal.organization_id,
            end_user=end_user,
            tags=tuple(dict.fromkeys(tags)),
            model_group=call.model,
        )

    # -- limits -------------------------------------------------------------------------------

    async def resolve(
        self, principal: Principal, scopes: Scopes, payload: Mapping[str, Any]
    ) -> ResolvedScopes:
        """The request's scopes with every limit of its own scopes (deduplicated)."""
        key_id = None if principal.is_master else scopes.api_key
        named_by = None if principal.is_master else _named_customer_param(principal, scopes, payload)
        resolved = ResolvedScopes(scopes, key_id=key_id, tz=self.tz, rate_window=self.rate_window)
        await self._load(resolved, end_user=scopes.end_user, tags=scopes.tags, named_by=named_by)
        return resolved

    async def explain_limits(
        self, *, key_id: str, end_user: str | None, tags: Sequence[str], model: str | None
    ) -> list[BudgetLimit]:
        """Every budget window a request of this key (customer, model) is checked against,
        from the same builder as :meth:`resolve` (an unknown customer is not created)."""
        resolved = ResolvedScopes(Scopes(key_id), key_id=key_id, tz=self.tz, rate_window=self.rate_window)
        await self._load(resolved, end_user=end_user, tags=tags, create_customer=False)
        budgets = resolved.budgets
        if model:
            budgets += resolved.model_limits(model)[0]
        return budgets

    def forget(self, key_id: str | None = None) -> None:
        """Drop the cached entities of one key (or everything)."""
        self._keys.forget(key_id)
        self._owners.forget()  # a key's binding names its customer's owners
        if key_id is None:
            self._customers.forget()
            self._tags.forget()

    async def _load(
        self,
        resolved: ResolvedScopes,
        *,
        end_user: str | None,
        tags: Iterable[str],
        create_customer: bool = True,
        named_by: str | None = None,
    ) -> None:
        budgets: list[BudgetLimit] = [*self._global[0]]
        rates: list[RateLimit] = [*self._global[1]]

        def add(pair: Limits) -> None:
            budgets.extend(pair[0])
            rates.extend(pair[1])

        tz, window = self.tz, self.rate_window
        # The scopes whose model_max_budget / model_rpm_limit / model_tpm_limit apply too.
        owners: list[tuple[Scope, LimitSpec]] = []

        def own(scope: Scope, spec: LimitSpec) -> None:
            add(spec.limits(scope, tz=tz, rate_window=window))
            owners.append((scope, spec))

        tag_names = list(tags)
        ents: KeyEntities | None = None
        key_id = resolved.key_id
        if key_id is not None:
            ents = await self._keys.get(key_id, lambda: self.reader.key_entities(key_id))
            if ents is not None:
                own(Scope("key", key_id), ents.key)
                if (
                    ents.user is not None
                    and ents.user_id
                    and (ents.team_id is None or self.user_on_team_keys)
                ):
                    own(Scope("user", ents.user_id), ents.user)
                if ents.team is not None and ents.team_id:
                    own(Scope("team", ents.team_id), ents.team)
                    if ents.member is not None and ents.user_id:
                        member = Scope.team_member(ents.team_id, ents.user_id)
                        add(ents.member.limits(member, tz=tz, rate_window=window))
                if ents.organization is not None and ents.organization_id:
                    own(Scope("organization", ents.organization_id), ents.organization)
                tag_names = [*ents.tags, *tag_names]
        if end_user:
            if named_by is not None:
                await self._check_owner(end_user, ents, named_by)
            customer = await self._customer(end_user, create=create_customer)
            if customer is not None:
                if customer.blocked:
                    raise PermissionDenied(f"customer {end_user!r} is blocked", code="customer_blocked")
                own(Scope("end_user", end_user), customer)
        for tag in dict.fromkeys(tag_names):
            spec = await self._tags.get(tag, lambda t=tag: self.reader.tag_limits(t))  # type: ignore[misc]
            if spec is not None:
                add(spec.limits(Scope("tag", tag), tz=tz, rate_window=window))
        resolved.entities = ents
        resolved.owners = tuple(owners)
        resolved.budgets = _strictest_budgets(budgets)
        resolved.rates = _strictest_rates(rates)

    async def _check_owner(self, customer_id: str, ents: KeyEntities | None, param: str) -> None:
        """403 unless the key may bill ``customer_id`` (before an unknown one is created:
        an unknown customer has no owner)."""
        owners = await self._owners.get(customer_id, lambda: self.reader.customer_owners(customer_id))
        if not owners.allow(ents):
            raise CustomerNotAllowed(
                f"customer {customer_id!r} (named by {param!r}) belongs to another team or "
                "organization: this key may not bill it",
                param=param,
            )

    async def _customer(self, customer_id: str, *, create: bool) -> LimitSpec | None:
        spec = await self._customers.get(customer_id, lambda: self.reader.customer_limits(customer_id))
        if spec is None and create and self.end_user_default is not None:
            self._customers.forget(customer_id)
            spec = await self._customers.get(customer_id, lambda: self._create_customer(customer_id))
        return spec

    async def _create_customer(self, customer_id: str) -> LimitSpec | None:
        """Insert the customer with the default budget unless it exists (insert-or-ignore:
        any number of concurrent first requests, in any number of processes, create it once)."""
        await self.reader.create_customer(customer_id, self.end_user_default)
        return await self.reader.customer_limits(customer_id)


def _named_customer_param(principal: Principal, scopes: Scopes, payload: Mapping[str, Any]) -> str | None:
    """The request field that named its customer (``user``, ``metadata.user_id`` or the
    trusted proxy's header), or None when there is none or the key is bound to it."""
    end_user = scopes.end_user
    if not end_user or principal.end_user_id == end_user:
        return None
    if payload.get("user") == end_user:
        return "user"
    metadata = payload.get("metadata")
    if isinstance(metadata, Mapping) and metadata.get("user_id") == end_user:
        return "metadata.user_id"
    return END_USER_HEADER


def _strictest_budgets(budgets: list[BudgetLimit]) -> list[BudgetLimit]:
    """One limit per counter (scope, window, timezone; a key's main window apart from its
    other windows: only it counts the key's spend adjustments): the strictest."""
    seen: dict[tuple[Any, ...], BudgetLimit] = {}
    for b in budgets:
        ident = (b.scope, b.window, b.tz, b.counts_adjustments)
        old = seen.get(ident)
        if old is None or (
            b.max_nanos is not None and (old.max_nanos is None or b.max_nanos < old.max_nanos)
        ):
            seen[ident] = b
    return list(seen.values())


def _strictest_rates(rates: list[RateLimit]) -> list[RateLimit]:
    seen: dict[tuple[Any, ...], RateLimit] = {}
    for r in rates:
        ident = (r.scope, r.kind, r.window_ms)
        old = seen.get(ident)
        if old is None or (r.limit is not None and (old.limit is None or r.limit < old.limit)):
            seen[ident] = r
    return list(seen.values())
