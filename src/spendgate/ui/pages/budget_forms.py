"""Editing budget windows (``budget_limits``), per-model budgets (``model_max_budget``),
per-model rate limits (``model_rpm_limit``, ``model_tpm_limit``: keys and teams, the scopes
the gateway enforces them on) and a key's temporary increase (``temp_budget_increase`` +
``temp_budget_expiry``) from an entity's page, through the API's own ``/…/update``.

The form shows one row per window, per model budget and per model's rate limits, plus empty
rows to add more; a row with every field emptied is removed. Each part carries its current
value (``was_…``, canonical JSON) and is sent only when it changed, as a whole (the API
replaces ``budget_limits``, ``model_max_budget`` and the two rate maps as given). Amounts go
as decimal text, read exactly by the API. When the API refuses (422), the page comes back
with what was typed and the API's message beside the field it names (its ``param`` leads
the message).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from spendgate.ui.api import ApiError

__all__ = [
    "BLANK_ROWS",
    "RATED",
    "BudgetForm",
    "budget_changes",
    "form_from_entity",
    "form_from_post",
    "refused",
]

BLANK_ROWS = 2
"""Empty rows offered under the existing windows and model budgets, to add new ones."""
_MODEL_FIELDS = ("amount", "duration", "tpm", "rpm")
RATED = frozenset({"keys", "teams"})
"""The sections whose form edits per-model rate limits: the gateway enforces them on keys
and teams only (the API also stores them on users and customers, where nothing reads them)."""
_RATE_FIELDS = ("model", "rpm", "tpm")
_RATE_MAPS = {"rpm": "model_rpm_limit", "tpm": "model_tpm_limit"}
_MAX_ROWS = 200  # more than the API takes (32 windows, 100 models): it names the excess


@dataclass(slots=True)
class BudgetForm:
    """What the form shows: its rows (text as typed), the current values as sent back with
    it, and the API's refusal (its message and the input it names)."""

    limits: list[dict[str, str]]
    models: list[dict[str, str]]
    temp_increase: str
    temp_expiry: str
    was: dict[str, str]
    rates: list[dict[str, str]] | None = None
    """Per-model rate-limit rows; None where the form has no such part."""
    error: str | None = None
    invalid: set[str] = field(default_factory=set)


def _text(value: Any) -> str:
    """A value as the form shows it: amounts as plain decimals (``10``, not ``1E+1``)."""
    if value is None:
        return ""
    if isinstance(value, Decimal | int | float):
        return format(Decimal(str(value)).normalize(), "f")
    return str(value)


def _local(moment: Any, timezone: str) -> str:
    """An ISO date-time as a ``datetime-local`` value in ``timezone``."""
    if not moment:
        return ""
    try:
        return datetime.fromisoformat(str(moment)).astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%dT%H:%M")
    except ValueError:
        return str(moment)


def _padded(rows: list[dict[str, str]], names: tuple[str, ...]) -> list[dict[str, str]]:
    return [*rows, *({name: "" for name in names} for _ in range(BLANK_ROWS))]


def _rate_rows(entity: Mapping[str, Any]) -> list[dict[str, str]]:
    """One row per model named by ``model_rpm_limit`` or ``model_tpm_limit``."""
    maps = {short: entity.get(name) or {} for short, name in _RATE_MAPS.items()}
    models = dict.fromkeys([*maps["rpm"], *maps["tpm"]])
    return [{"model": str(m), **{short: _text(maps[short].get(m)) for short in maps}} for m in models]


def form_from_entity(
    entity: Mapping[str, Any], timezone: str, *, with_temp: bool, with_rates: bool = False
) -> BudgetForm:
    """The form filled with an entity's current windows, model budgets, rate limits and
    increase."""
    limits = [
        {"duration": _text(w.get("budget_duration")), "amount": _text(w.get("max_budget"))}
        for w in entity.get("budget_limits") or ()
    ]
    models = [
        {
            "model": str(model),
            "amount": _text(cfg.get("max_budget")),
            "duration": _text(cfg.get("budget_duration")),
            "tpm": _text(cfg.get("tpm_limit")),
            "rpm": _text(cfg.get("rpm_limit")),
        }
        for model, cfg in (entity.get("model_max_budget") or {}).items()
    ]
    increase = _text(entity.get("temp_budget_increase")) if with_temp else ""
    expiry = _local(entity.get("temp_budget_expiry"), timezone) if with_temp else ""
    rates = _rate_rows(entity) if with_rates else None
    was = {
        "budget_limits": _canonical(_limits_of(limits)),
        "model_max_budget": _canonical(_models_of(models)),
        "temp": _canonical([increase, expiry] if increase or expiry else []),
    }
    if rates is not None:
        was |= {name: _canonical(value) for name, value in _rates_of(rates).items()}
    return BudgetForm(
        limits=_padded(limits, ("duration", "amount")),
        models=_padded(models, ("model", *_MODEL_FIELDS)),
        temp_increase=increase,
        temp_expiry=expiry,
        was=was,
        rates=None if rates is None else _padded(rates, _RATE_FIELDS),
    )


def _rows(form: Mapping[str, str], prefix: str, names: tuple[str, ...]) -> list[dict[str, str]]:
    """The posted rows ``<prefix>_<name>_<i>``, in order of ``i``."""
    pattern = re.compile(rf"^{prefix}_[a-z]+_(\d+)$")
    indices = sorted({int(m.group(1)) for k in form if (m := pattern.match(k))})
    if len(indices) > _MAX_ROWS:
        raise ApiError(422, f"{prefix}: at most {_MAX_ROWS} rows")
    return [{name: str(form.get(f"{prefix}_{name}_{i}") or "").strip() for name in names} for i in indices]


def form_from_post(form: Mapping[str, str], *, with_rates: bool = False) -> BudgetForm:
    """The form as it was posted (to show it again, with the API's message)."""
    limits = [r for r in _rows(form, "limit", ("duration", "amount")) if any(r.values())]
    models = [r for r in _rows(form, "model", ("model", *_MODEL_FIELDS)) if any(r.values())]
    rates = [r for r in _rows(form, "rate", _RATE_FIELDS) if any(r.values())] if with_rates else None
    names = ("budget_limits", "model_max_budget", "temp", *(_RATE_MAPS.values() if with_rates else ()))
    return BudgetForm(
        limits=_padded(limits, ("duration", "amount")),
        models=_padded(models, ("model", *_MODEL_FIELDS)),
        temp_increase=str(form.get("temp_increase") or "").strip(),
        temp_expiry=str(form.get("temp_expiry") or "").strip(),
        was={name: str(form.get(f"was_{name}") or "") for name in names},
        rates=None if rates is None else _padded(rates, _RATE_FIELDS),
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _amount(text: str) -> str | None:
    """Decimal text as the API will read it (normalised, so ``5.0`` equals ``5``); text
    that is no number goes as typed, for the API to refuse by name."""
    if text == "":
        return None
    try:
        return _text(Decimal(text))
    except InvalidOperation:
        return text


def _count(text: str) -> int | str | None:
    if text == "":
        return None
    # ASCII digits only: "²".isdigit() is true, and int() refuses it.
    return int(text) if text.isascii() and text.isdigit() else text  # the API names a non-integer


def _limits_of(rows: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [{"budget_duration": r["duration"], "max_budget": _amount(r["amount"])} for r in rows]


def _named_rows(rows: list[dict[str, str]], field: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Each row with its model's name; a row without one, or a model named twice, is a 422
    naming ``field``."""
    seen: set[str] = set()
    for i, r in enumerate(rows):
        name = r["model"]
        if not name:
            raise ApiError(422, f"{field}: row {i + 1} needs the model's name")
        if name in seen:
            raise ApiError(422, f"{field}: {name!r} appears twice")
        seen.add(name)
        yield name, r


def _models_of(rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, r in _named_rows(rows, "model_max_budget"):
        cfg = {
            "max_budget": _amount(r["amount"]),
            "budget_duration": r["duration"] or None,
            "tpm_limit": _count(r["tpm"]),
            "rpm_limit": _count(r["rpm"]),
        }
        out[name] = {k: v for k, v in cfg.items() if v is not None}
    return out


def _rates_of(rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    """``model_rpm_limit`` and ``model_tpm_limit`` from the rate rows (a model row with
    neither is dropped)."""
    out: dict[str, dict[str, Any]] = {name: {} for name in _RATE_MAPS.values()}
    for name, r in _named_rows(rows, "model_rpm_limit"):
        for short, field_name in _RATE_MAPS.items():
            if (count := _count(r[short])) is not None:
                out[field_name][name] = count
    return out


def _expiry(text: str, timezone: str) -> str:
    """A ``datetime-local`` value read in ``timezone``, as RFC 3339 with its offset."""
    try:
        return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(timezone)).isoformat()
    except ValueError:
        return text  # the API says what it wants


def budget_changes(
    form: Mapping[str, str], timezone: str, *, with_temp: bool, with_rates: bool = False
) -> dict[str, Any]:
    """The parts of the posted form that differ from their ``was_…``, as API fields (an
    emptied rate map goes as None: no per-model limit)."""
    posted = form_from_post(form, with_rates=with_rates)
    limits = _limits_of([r for r in posted.limits if any(r.values())])
    models = _models_of([r for r in posted.models if any(r.values())])
    body: dict[str, Any] = {}
    if _canonical(limits) != posted.was["budget_limits"]:
        body["budget_limits"] = limits
    if _canonical(models) != posted.was["model_max_budget"]:
        body["model_max_budget"] = models or None
    if posted.rates is not None:
        for name, value in _rates_of([r for r in posted.rates if any(r.values())]).items():
            if _canonical(value) != posted.was[name]:
                body[name] = value or None
    if with_temp:
        temp = (
            [posted.temp_increase, posted.temp_expiry] if posted.temp_increase or posted.temp_expiry else []
        )
        if _canonical(temp) != posted.was["temp"]:
            body["temp_budget_increase"] = _amount(posted.temp_increase)
            body["temp_budget_expiry"] = _expiry(posted.temp_expiry, timezone) if posted.temp_expiry else None
    return body


def refused(form: Mapping[str, str], error: ApiError, *, with_rates: bool = False) -> BudgetForm:
    """The posted form again, with the API's message and the input it names marked."""
    shown = form_from_post(form, with_rates=with_rates)
    shown.error = error.message
    param = error.message.split(": ", 1)[0] if ": " in error.message else ""
    limits = [i for i, r in enumerate(shown.limits) if any(r.values())]
    if m := re.fullmatch(r"budget_limits\.(\d+)\.(budget_duration|max_budget)", param):
        row = int(m.group(1))
        if row < len(limits):
            shown.invalid.add(f"limit_{'duration' if m.group(2) == 'budget_duration' else 'amount'}_{row}")
    elif m := re.fullmatch(
        r"model_max_budget\.(.+)\.(max_budget|budget_limit|budget_duration|tpm_limit|rpm_limit)", param
    ):
        short = {"max_budget": "amount", "budget_limit": "amount", "budget_duration": "duration"}
        for i, r in enumerate(shown.models):
            if r["model"] == m.group(1):
                shown.invalid.add(f"model_{short.get(m.group(2), m.group(2)[:3])}_{i}")
    elif (m := re.fullmatch(r"model_(rpm|tpm)_limit\.(.+)", param)) and shown.rates is not None:
        for i, r in enumerate(shown.rates):
            if r["model"] == m.group(2):
                shown.invalid.add(f"rate_{m.group(1)}_{i}")
    elif param in ("temp_budget_increase", "temp_budget_expiry"):
        shown.invalid.add("temp_increase" if param == "temp_budget_increase" else "temp_expiry")
    return shown
