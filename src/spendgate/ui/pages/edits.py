"""Editing budgets and limits (and a key's allowed models and tags), and creating teams,
users and customers, through the API's own ``/…/update`` and ``/…/new`` (as the signed-in
key, so its role rules decide).

An edit form carries each field's current value beside the new one and sends only what
changed: a field left as it was is not sent (so a team admin's form does not touch what
their role may not change), and a field emptied is sent as ``null``, which the API reads as
"no limit". Amounts go as decimal text (the API reads them exactly); counts as integers.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response

from spendgate.ui.api import ApiError
from spendgate.ui.context import PageContext

__all__ = [
    "DURATIONS",
    "LIMITS",
    "TARGETS",
    "Field",
    "create_entity",
    "limit_changes",
    "list_changes",
    "update_entity",
    "update_key",
    "update_key_lists",
]


@dataclass(frozen=True, slots=True)
class Field:
    """One budget or limit field of the forms."""

    name: str
    label: str
    kind: str  # "usd", "count" or "duration"


LIMITS = (
    Field("max_budget", "Budget (USD)", "usd"),
    Field("soft_budget", "Soft budget (USD)", "usd"),
    Field("budget_duration", "Resets every", "duration"),
    Field("tpm_limit", "Tokens per minute", "count"),
    Field("rpm_limit", "Requests per minute", "count"),
    Field("max_parallel_requests", "Parallel requests", "count"),
)
DURATIONS = {"": "never (lifetime)", "1h": "hour", "24h": "day", "7d": "week", "1mo": "month"}


def _value(field: Field, text: str) -> Any:
    if text == "":
        return None  # unlimited (a budget), lifetime (a duration)
    if field.kind == "count":
        if not (text.isascii() and text.isdigit()):  # "²".isdigit() is true; int() refuses it
            raise ApiError(422, f"{field.name}: a whole number, or empty for no limit")
        return int(text)
    return text  # USD as exact decimal text; durations as the API spells them


def limit_changes(form: Mapping[str, str], *, editing: bool) -> dict[str, Any]:
    """The fields to send: on an edit, those whose value differs from ``was_<name>``; on a
    creation, those filled in."""
    body: dict[str, Any] = {}
    for field in LIMITS:
        text = str(form.get(field.name) or "").strip()
        if editing:
            if text == str(form.get(f"was_{field.name}") or "").strip():
                continue
        elif text == "":
            continue
        body[field.name] = _value(field, text)
    return body


@dataclass(frozen=True, slots=True)
class Target:
    """How one kind of entity is created and updated, and where its page is."""

    new_path: str
    update_path: str
    id_field: str  # the field naming it in /…/update and in /…/new's answer
    text_fields: tuple[str, ...]  # created from the form as given (when filled in)


TARGETS = {
    "teams": Target("/team/new", "/team/update", "team_id", ("team_id", "team_alias", "organization_id")),
    "users": Target("/user/new", "/user/update", "user_id", ("user_id", "user_email", "user_role")),
    "customers": Target("/customer/new", "/customer/update", "user_id", ("user_id", "alias", "team_id")),
}


def _back(section: str, ident: str, note: str) -> Response:
    return RedirectResponse(f"/ui/{section}/{quote(ident, safe='')}?{note}=1", status_code=303)


def _ident(ctx: PageContext, name: str) -> str:
    ident = str(ctx.form.get(name) or "").strip()
    if not ident:
        raise ApiError(422, f"{name}: say which one")
    return ident


async def update_key(ctx: PageContext) -> Response:
    """``POST /ui/keys/update`` → ``/key/update`` with what changed, back to the key's page."""
    token = _ident(ctx, "key")
    changes = limit_changes(ctx.form, editing=True)
    if changes:
        await ctx.api.post("/key/update", {"key": token, **changes})
    return _back("keys", token, "saved" if changes else "unchanged")


_KEY_LISTS = ("models", "tags")
"""A key's lists edited on its page: allowed models (empty: every model) and tags."""


def _names(text: str | None) -> list[str]:
    """Comma- or line-separated names, trimmed, each once, in order."""
    return list(dict.fromkeys(p.strip() for p in re.split(r"[,\n]", text or "") if p.strip()))


def list_changes(form: Mapping[str, str]) -> dict[str, list[str]]:
    """The lists whose names differ from ``was_<name>``, whole (the API replaces a list)."""
    return {
        name: names
        for name in _KEY_LISTS
        if (names := _names(form.get(name))) != _names(form.get(f"was_{name}"))
    }


async def update_key_lists(ctx: PageContext) -> Response:
    """``POST /ui/keys/lists`` → ``/key/update`` with the changed lists, back to the key."""
    token = _ident(ctx, "key")
    changes = list_changes(ctx.form)
    if changes:
        await ctx.api.post("/key/update", {"key": token, **changes})
    return _back("keys", token, "saved" if changes else "unchanged")


def update_entity(section: str) -> Callable[[PageContext], Awaitable[Response]]:
    target = TARGETS[section]

    async def handler(ctx: PageContext) -> Response:
        ident = _ident(ctx, target.id_field)
        changes = limit_changes(ctx.form, editing=True)
        if changes:
            await ctx.api.post(target.update_path, {target.id_field: ident, **changes})
        return _back(section, ident, "saved" if changes else "unchanged")

    return handler


def create_entity(section: str) -> Callable[[PageContext], Awaitable[Response]]:
    target = TARGETS[section]

    async def handler(ctx: PageContext) -> Response:
        body: dict[str, Any] = {
            name: value for name in target.text_fields if (value := str(ctx.form.get(name) or "").strip())
        }
        if section == "users":
            body["auto_create_key"] = False  # keys are made on the Keys page, shown once there
        body.update(limit_changes(ctx.form, editing=False))
        created = await ctx.api.post(target.new_path, body)
        ident = str(created.get(target.id_field) or body.get(target.id_field) or "")
        return _back(section, ident, "created")

    return handler
