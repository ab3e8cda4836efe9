"""Request models of /key/*."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from spendgate.admin.schemas.fields import (
    USD,
    ExpiryDuration,
    LimitFields,
    Metadata,
    Names,
    Ref,
    Search,
    StrictModel,
    Timestamp,
    either_of,
)

__all__ = [
    "CustomKey",
    "KeyDelete",
    "KeyGenerate",
    "KeyInfoQuery",
    "KeyListQuery",
    "KeyRef",
    "KeyRegenerate",
    "KeyRegenerateByPath",
    "KeyUpdate",
]


_TEMP_FIELDS = ("temp_budget_increase", "temp_budget_expiry")

_TEMP_TOGETHER: JsonDict = {
    "dependentRequired": {
        "temp_budget_increase": ["temp_budget_expiry"],
        "temp_budget_expiry": ["temp_budget_increase"],
    }
}


class _KeyFields(LimitFields):
    model_config = ConfigDict(json_schema_extra=_TEMP_TOGETHER)
    key_alias: Ref | None = None
    duration: ExpiryDuration | None = None
    models: Names | None = None
    user_id: Ref | None = None
    team_id: Ref | None = None
    organization_id: Ref | None = None
    end_user_id: Ref | None = Field(
        default=None, description="Bind the key to this customer: its requests are billed to it."
    )
    budget_id: Ref | None = None
    metadata: Metadata | None = None
    tags: Names | None = None
    blocked: bool | None = None
    temp_budget_increase: USD | None = None
    temp_budget_expiry: Timestamp | None = None

    @model_validator(mode="before")
    @classmethod
    def _temp_budget_in_metadata(cls, data: Any) -> Any:
        """LiteLLM documents the temporary increase inside ``metadata``: there it means
        exactly what the top-level fields mean (moved out, then checked as they are)."""
        if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
            return data
        metadata = data["metadata"]
        moved = [name for name in _TEMP_FIELDS if name in metadata]
        if not moved:
            return data
        for name in moved:
            if name in data:
                raise ValueError(f"give {name} at the top level or in metadata, not both")
        rest = {k: v for k, v in metadata.items() if k not in _TEMP_FIELDS}
        out = {k: v for k, v in data.items() if k != "metadata" or rest}  # only those: metadata untouched
        if rest:
            out["metadata"] = rest
        out.update({name: metadata[name] for name in moved})
        return out

    @model_validator(mode="after")
    def _temp_budget_together(self) -> _KeyFields:
        given = {"temp_budget_increase", "temp_budget_expiry"} & self.model_fields_set
        if len(given) == 1:
            missing = ({"temp_budget_increase", "temp_budget_expiry"} - given).pop()
            raise ValueError(f"temp_budget_increase and temp_budget_expiry must be set together ({missing})")
        return self


_CUSTOM_KEY = r"^sk-[!-~]{20,}$"


def _custom_key(value: Any) -> Any:
    """The rule of :data:`CustomKey`, with a message that says it (before the schema's)."""
    if isinstance(value, str) and re.fullmatch(_CUSTOM_KEY, value) is None:
        raise ValueError(
            "a custom key must be 'sk-' and at least 20 more visible ASCII characters "
            "(no spaces): a short key can be guessed"
        )
    return value


CustomKey = Annotated[
    str,
    Field(
        min_length=23,
        max_length=255,
        pattern=_CUSTOM_KEY,
        description="A custom raw key: 'sk-' and at least 20 more visible ASCII characters.",
    ),
    BeforeValidator(_custom_key),  # after the Field: runs first, and the pattern stays in the schema
]
"""A custom raw key (``key``, ``new_key``); docs/admin-api.md "Custom keys"."""


class KeyGenerate(_KeyFields):
    key: CustomKey | None = None


class KeyUpdate(_KeyFields):
    """Names the key by ``key`` or ``key_alias`` (the handler's 422 otherwise)."""

    model_config = ConfigDict(json_schema_extra={**_TEMP_TOGETHER, **either_of("key", "key_alias")})
    key: Ref | None = Field(default=None, description="The raw key or its hash (token).")
    spend: USD | None = Field(
        default=None,
        description=(
            "Set the key's current spend (its budget_duration window's, else its lifetime's) to "
            "this USD amount, e.g. 0 to reset it. proxy_admin only. Recorded in the ledger as an "
            "adjustment event of the key (docs/admin-api.md)."
        ),
    )


class KeyRegenerate(KeyUpdate):
    new_key: CustomKey | None = None


class KeyRegenerateByPath(KeyRegenerate):
    """``/key/{key}/regenerate``: the key is the path's, so the body need not name it."""

    model_config = ConfigDict(json_schema_extra=_TEMP_TOGETHER)


class KeyRef(StrictModel):
    key: Ref


class KeyInfoQuery(StrictModel):
    key: Ref | None = None


class KeyListQuery(StrictModel):
    page: int = Field(default=1, ge=1, le=1_000_000)
    size: int = Field(default=10, ge=1, le=1000)
    user_id: Ref | None = None
    team_id: Ref | None = None
    organization_id: Ref | None = None
    key_alias: Ref | None = None
    search: Search | None = None
    return_full_object: bool = False


class KeyDelete(StrictModel):
    model_config = ConfigDict(json_schema_extra=either_of("keys", "key_aliases", kind={"minItems": 1}))
    keys: Names | None = None
    key_aliases: Names | None = None

    @model_validator(mode="after")
    def _something(self) -> KeyDelete:
        if not self.keys and not self.key_aliases:
            raise ValueError("give keys or key_aliases")
        return self
