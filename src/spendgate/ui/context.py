"""What a page handler gets: the request, the session, the API client and the renderer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from spendgate.ui.api import ApiClient
from spendgate.ui.formatting import FILTERS
from spendgate.ui.session import Session

__all__ = ["TEMPLATES", "PageContext", "render"]

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters.update(FILTERS)


def render(
    request: Request, template: str, session: Session | None, status_code: int = 200, **values: Any
) -> HTMLResponse:
    """A full page, or only its ``main`` block for an htmx request that asks for it."""
    page = TEMPLATES.get_template(template)
    html = page.render(
        request=request,
        session=session,
        path=request.url.path,
        partial=request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "main",
        **values,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


@dataclass(slots=True)
class PageContext:
    """One signed-in request: ``api`` calls the API as the signed-in key."""

    request: Request
    session: Session
    api: ApiClient
    form: Mapping[str, str]
    timezone: str

    def render(self, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        return render(self.request, template, self.session, status_code, timezone=self.timezone, **values)

    def query(self, name: str, default: str = "") -> str:
        return self.request.query_params.get(name, default).strip()

    def page_number(self) -> int:
        """``?page=`` (1 when absent or not a positive number)."""
        page = self.query("page")
        return int(page) if page.isascii() and page.isdigit() and int(page) > 0 else 1

    async def visible_keys(self, page: int = 1, size: int = 100) -> list[dict[str, Any]]:
        """The keys the caller may read, as full objects: one page of /key/list (a bounded
        read; each key's spend is computed by the API, ~10 ms a key on a large ledger), or
        the caller's own key when it has no user (/key/list is 403 then)."""
        if self.session.role == "key":
            return [(await self.api.get("/key/info"))["info"]] if page == 1 else []
        listing = await self.api.get("/key/list", {"return_full_object": "true", "page": page, "size": size})
        return list(listing["keys"])
