"""Block and unblock keys, teams and customers through the API's own ``/…/block`` and
``/…/unblock`` (as the signed-in key, so its role rules decide: a refusal is the API's 403
page and nothing changes). Users have no block: LiteLLM has no ``/user/block``.

The buttons ask for confirmation in the browser (``data-confirm``, static/ui.js); the POST
carries the session's CSRF token like every form."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response

from spendgate.ui.api import ApiError
from spendgate.ui.context import PageContext

__all__ = ["BLOCKABLE", "Blockable", "block"]


@dataclass(frozen=True, slots=True)
class Blockable:
    """How one kind is blocked: the API's paths and the body naming one of them."""

    block_path: str
    unblock_path: str
    body: Callable[[str], dict[str, Any]]


BLOCKABLE = {
    "keys": Blockable("/key/block", "/key/unblock", lambda ident: {"key": ident}),
    "teams": Blockable("/team/block", "/team/unblock", lambda ident: {"team_id": ident}),
    "customers": Blockable("/customer/block", "/customer/unblock", lambda ident: {"user_ids": [ident]}),
}


def block(section: str) -> Callable[[PageContext], Awaitable[Response]]:
    """``POST /ui/<section>/block`` with ``id`` and ``action`` (``block`` or ``unblock``),
    then back to the page it came from (``back``, a /ui/ path) or the list."""
    kind = BLOCKABLE[section]

    async def handler(ctx: PageContext) -> Response:
        ident = str(ctx.form.get("id") or "").strip()
        if not ident:
            raise ApiError(422, "id: say which one to block or unblock")
        action = ctx.form.get("action")
        if action not in ("block", "unblock"):
            raise ApiError(422, "action: block or unblock")
        await ctx.api.post(kind.block_path if action == "block" else kind.unblock_path, kind.body(ident))
        back = str(ctx.form.get("back") or "")
        target = back if back.startswith("/ui/") and not back.startswith("//") else f"/ui/{section}"
        separator = "&" if "?" in target else "?"
        return RedirectResponse(f"{target}{separator}{action}ed={quote(ident, safe='')}", status_code=303)

    return handler
