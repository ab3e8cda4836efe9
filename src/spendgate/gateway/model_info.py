"""``GET /model/info`` (also ``/v1/model/info``) and ``GET /model_group/info``: LiteLLM's
model info, with the prices the gateway bills.

``/model/info`` lists one object per deployment (``model_list`` entry): ``model_name``,
its ``litellm_params`` without credentials, and ``model_info`` with LiteLLM's fields
(``id``, ``db_model``, ``key``, ``mode``, ``litellm_provider``, token limits and the
``*_cost_*`` rates of :func:`~spendgate.catalogue.litellm_fields.litellm_price_fields`,
exact JSON numbers made from the Decimal rates of the deployment's price book, so its own
prices win over the catalogue's) plus a ``spendgate`` object (catalogue version, price
source, the declared spec as decimal strings, discount and margin). ``/model_group/info``
sums each model group up in LiteLLM's ``ModelGroupInfo`` shape.

Who sees what: a key sees the deployments of the model groups it may call (the rule of
``GET /v1/models``); only the master key sees ``api_base`` (without user info or query
string). ``api_key`` and every parameter whose name says it is a credential (``…_key``,
``…secret…``, ``…token``, ``…password…``, ``…credentials``, ``…headers``) are never shown,
nor any nested value, nor any value that contains one of those secrets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response

from spendgate.catalogue.litellm_fields import litellm_price_fields
from spendgate.config import DeploymentConfig, GatewayConfig, is_cost_field
from spendgate.core.pricing.catalogue import PriceBook
from spendgate.core.pricing.spec import spec_to_dict
from spendgate.gateway.auth import Authenticator, Principal
from spendgate.gateway.deployments import Deployment
from spendgate.http.errors import NotFound, PermissionDenied

__all__ = ["ModelDirectory", "ModelInfoApi", "json_response", "public_params"]

_SECRET_WORDS = frozenset(
    {"key", "secret", "token", "password", "passwd", "credential", "credentials", "auth"}
    | {"authorization", "header", "headers", "cookie", "cookies", "signature", "private"}
)
_WORDS = re.compile(r"[a-z0-9]+")
_CORE_PRICES = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "input_cost_per_token_batches",
    "output_cost_per_token_batches",
)
"""Always present in ``model_info`` (null when the model has no such price)."""
_GROUP_FLAGS = (
    "supports_parallel_function_calling",
    "supports_vision",
    "supports_function_calling",
    "supports_web_search",
    "supports_reasoning",
    "supports_url_context",
)
"""``ModelGroupInfo``'s capability booleans: true when a deployment's ``model_info`` says so."""


@dataclass(frozen=True, slots=True)
class ModelDirectory:
    """The deployments with their config entries, and the price book of catalogue models."""

    entries: tuple[tuple[DeploymentConfig, Deployment], ...]
    book: PriceBook

    @classmethod
    def build(
        cls, config: GatewayConfig, deployments: Iterable[Deployment], book: PriceBook
    ) -> ModelDirectory:
        """Pair each ``model_list`` entry with its deployment (built in the same order)."""
        return cls(tuple(zip(config.model_list, deployments, strict=True)), book)

    def group(self, name: str) -> list[Deployment]:
        return [d for _, d in self.entries if d.group == name]

    def visible(self, principal: Principal) -> list[tuple[DeploymentConfig, Deployment]]:
        return [(c, d) for c, d in self.entries if principal.may_use(d.group)]

    def check_group(self, principal: Principal, group: str, param: str) -> list[Deployment]:
        """The deployments of ``group``: 404 when there is none, 403 when the key may not use it."""
        found = self.group(group)
        if not found:
            raise NotFound(f"model group {group!r} does not exist on this gateway", param=param)
        if not principal.may_use(group):
            raise PermissionDenied(f"this key may not use model {group!r}", param=param)
        return found


class ModelInfoApi:
    """The two routes' handlers (see the module docstring)."""

    def __init__(self, directory: ModelDirectory, auth_of: Callable[[], Authenticator]) -> None:
        self.directory = directory
        self._auth_of = auth_of

    async def model_info(self, request: Request) -> Response:
        principal = await self._auth_of().authenticate(request.headers)
        wanted = request.query_params.get("litellm_model_id")
        entries = self.directory.visible(principal)
        if wanted is not None:
            match = [(c, d) for c, d in self.directory.entries if d.id == wanted]
            if not match:
                raise NotFound(f"no deployment has id {wanted!r}", param="litellm_model_id")
            self.directory.check_group(principal, match[0][1].group, "litellm_model_id")
            entries = match
        data = [_deployment_info(c, d, show_api_base=principal.is_master) for c, d in entries]
        return json_response({"data": data})

    async def model_group_info(self, request: Request) -> Response:
        principal = await self._auth_of().authenticate(request.headers)
        wanted = request.query_params.get("model_group")
        groups: dict[str, list[tuple[DeploymentConfig, Deployment]]] = {}
        for config, deployment in self.directory.visible(principal):
            groups.setdefault(deployment.group, []).append((config, deployment))
        if wanted is not None:
            self.directory.check_group(principal, wanted, "model_group")
            groups = {wanted: groups[wanted]}
        return json_response({"data": [_group_info(name, members) for name, members in groups.items()]})


def _deployment_info(
    config: DeploymentConfig, deployment: Deployment, *, show_api_base: bool
) -> dict[str, Any]:
    return {
        "model_name": deployment.group,
        "litellm_params": public_params(config, show_api_base=show_api_base),
        "model_info": _model_info(config, deployment),
    }


def _model_info(config: DeploymentConfig, deployment: Deployment) -> dict[str, Any]:
    """LiteLLM's ``model_info`` of one deployment, priced by its own price book."""
    resolved = deployment.book.resolve(deployment.price_model, deployment.price_provider)
    entry = resolved.entry if resolved is not None else deployment.book.find(deployment.price_model)
    max_output = entry.max_output_tokens if entry is not None else None
    info: dict[str, Any] = {
        "id": deployment.id,
        "db_model": False,
        "key": entry.id if entry is not None else deployment.price_model,
        "mode": config.model_info.mode or (entry.mode if entry is not None else "chat"),
        "litellm_provider": deployment.provider,
        "max_tokens": max_output,
        "max_input_tokens": entry.max_input_tokens if entry is not None else None,
        "max_output_tokens": max_output,
        **dict.fromkeys(_CORE_PRICES),
        **(litellm_price_fields(resolved.spec) if resolved is not None else {}),
        "tpm": deployment.tpm,
        "rpm": deployment.rpm,
    }
    extras = config.model_info.model_extra or {}
    info.update(_public({k: v for k, v in extras.items() if not is_cost_field(k)}))
    if config.model_info.base_model:
        info["base_model"] = config.model_info.base_model
    adjustment = deployment.adjustment
    info["spendgate"] = {
        "priced": resolved is not None,
        "resolved_model": resolved.entry.id if resolved is not None else None,
        "catalogue_version": resolved.catalogue_version if resolved is not None else None,
        "price_source": resolved.source if resolved is not None else None,
        "free": resolved.entry.free if resolved is not None else False,
        "prices": spec_to_dict(resolved.spec) if resolved is not None else None,
        "discount": None if adjustment is None else str(adjustment.discount),
        "margin": None if adjustment is None else str(adjustment.margin),
        "margin_fixed": None if adjustment is None else str(adjustment.margin_fixed),
    }
    return info


def _group_info(name: str, members: list[tuple[DeploymentConfig, Deployment]]) -> dict[str, Any]:
    """LiteLLM's ``ModelGroupInfo``: prices are the highest of the group's deployments (what
    a call may cost), token limits the lowest (what every deployment accepts), ``tpm`` and
    ``rpm`` the sums (None when a deployment is unlimited)."""
    infos = [_model_info(c, d) for c, d in members]

    def highest(field: str) -> Decimal | None:
        values = [i[field] for i in infos if i[field] is not None]
        return max(values) if values else None

    def lowest(field: str) -> int | None:
        values = [i[field] for i in infos if i[field] is not None]
        return min(values) if values else None

    def total(field: str) -> int | None:
        values = [i[field] for i in infos]
        return None if any(v is None for v in values) else sum(values)

    out: dict[str, Any] = {
        "model_group": name,
        "providers": sorted({d.provider for _, d in members}),
        "max_input_tokens": lowest("max_input_tokens"),
        "max_output_tokens": lowest("max_output_tokens"),
        "input_cost_per_token": highest("input_cost_per_token"),
        "output_cost_per_token": highest("output_cost_per_token"),
        "mode": infos[0]["mode"],
        "tpm": total("tpm"),
        "rpm": total("rpm"),
    }
    for flag in _GROUP_FLAGS:
        out[flag] = any(i.get(flag) is True for i in infos)
    out["spendgate"] = {
        "deployments": [d.id for _, d in members],
        "priced": all(i["spendgate"]["priced"] for i in infos),
        "cache_read_input_token_cost": highest("cache_read_input_token_cost"),
        "cache_creation_input_token_cost": highest("cache_creation_input_token_cost"),
    }
    return out


def public_params(config: DeploymentConfig, *, show_api_base: bool) -> dict[str, Any]:
    """A deployment's ``litellm_params`` safe to show: no credential, no nested value, no
    value containing a secret; ``api_base`` only when ``show_api_base``, without user info,
    query or fragment."""
    params = config.litellm_params.model_dump(exclude_none=True)
    params.pop("api_key", None)
    base = params.pop("api_base", None)
    shown = _public(params)
    if show_api_base and base is not None:
        parts = urlsplit(str(base))
        host = parts.netloc.rpartition("@")[2]  # user info dropped: it is a credential
        shown["api_base"] = urlunsplit((parts.scheme, host, parts.path, "", ""))
    secrets = _secrets(config)
    return {k: v for k, v in shown.items() if not (isinstance(v, str) and any(s in v for s in secrets))}


def _public(values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries whose name is not a credential's and whose value is a scalar (a price
    field may be an object: LiteLLM's tiered pricing)."""
    return {
        k: v
        for k, v in values.items()
        if not _is_secret_name(k)
        and (is_cost_field(k) or v is None or isinstance(v, str | int | float | Decimal))
    }


def _is_secret_name(name: str) -> bool:
    return not is_cost_field(name) and any(w in _SECRET_WORDS for w in _WORDS.findall(name.lower()))


def _secrets(config: DeploymentConfig) -> list[str]:
    """The credential values of a deployment (8 characters or more), to hide wherever they appear."""
    params = config.litellm_params
    found = [params.api_key or ""]
    found += [
        str(v) for k, v in (params.model_extra or {}).items() if _is_secret_name(k) and isinstance(v, str)
    ]
    return [s for s in found if len(s) >= 8]


def _exact(value: object) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(f"{value.normalize():f}".encode())
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def json_response(body: object, status: int = 200) -> Response:
    """A JSON answer in which every Decimal is an exact JSON number (no float involved)."""
    return Response(orjson.dumps(body, default=_exact), status_code=status, media_type="application/json")
