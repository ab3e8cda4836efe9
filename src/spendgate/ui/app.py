"""The dashboard's routes: sign-in, the session and CSRF checks, error pages, static files.

Every page is a handler ``(PageContext) -> Response`` wrapped by :func:`_page`, which opens
the session (else: back to the sign-in page), refuses a POST whose CSRF token does not match
the session's (a 403 page; the sign-in form, before there is a session, echoes the token of a
cookie set with the form), and turns an API refusal into an error page with the API's
status and message: a 403 from the API is a 403 page, never data.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from spendgate.ui.api import ApiClient, ApiError
from spendgate.ui.context import TEMPLATES, PageContext, render
from spendgate.ui.pages import MENU, PAGES
from spendgate.ui.session import COOKIE, SESSION_SECONDS, Session, SessionCodec

__all__ = ["UiSettings", "ui_routes"]

STATIC = Path(__file__).parent / "static"
LOGIN_COOKIE = "spendgate_login"
"""The sign-in form's CSRF token (double-submit: the form carries it, this cookie too)."""
Handler = Callable[[PageContext], Awaitable[Response]]

_ADVICE = {
    401: "Your key is no longer accepted (deleted, expired or blocked). Sign in again.",
    403: "Your key's role does not allow this page. Ask a proxy admin, or sign in with another key.",
    404: "It does not exist (any more). Go back to the list and pick another.",
    422: "A value in the form or the address is not valid: the message says which.",
    503: "The database is unreachable right now. Try again in a moment.",
}


@dataclass(frozen=True, slots=True)
class UiSettings:
    """What the dashboard needs from the gateway's config."""

    master_key: str | None
    timezone: str = "UTC"
    """The default zone of the spend pages (``litellm_settings.timezone``)."""


def ui_routes(settings: UiSettings) -> list[BaseRoute]:
    """The ``/ui`` routes (and ``/``, a link to them), mounted by the server."""
    codec = SessionCodec(settings.master_key)
    TEMPLATES.globals["menu"] = MENU
    routes: list[BaseRoute] = [
        Route("/", _root, methods=["GET"]),
        Route("/ui", _home, methods=["GET"]),
        Route("/ui/", _home, methods=["GET"]),
        Route("/ui/login", _login(codec, settings), methods=["GET", "POST"]),
        Route("/ui/logout", _page(codec, settings, _logout), methods=["POST"]),
        Mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static"),
    ]
    for path, handler, methods in PAGES:
        routes.append(Route(f"/ui{path}", _page(codec, settings, handler), methods=list(methods)))
    return routes


async def _root(request: Request) -> Response:
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>spendgate</title></head>'
        '<body><h1>spendgate</h1><p>The gateway is running. <a href="/ui">Open the dashboard</a>.</p>'
        "</body></html>"
    )


async def _home(request: Request) -> Response:
    return RedirectResponse("/ui/overview", status_code=303)


def _error(request: Request, session: Session | None, status: int, message: str) -> Response:
    advice = _ADVICE.get(status, "Try again; if it keeps failing, the gateway's log says why.")
    return render(request, "error.html", session, status, status=status, message=message, advice=advice)


def _page(
    codec: SessionCodec, settings: UiSettings, handler: Handler
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        session = codec.open(request.cookies.get(COOKIE))
        if session is None:
            if request.method != "GET":
                return _error(request, None, 403, "You are not signed in (or your session expired).")
            return RedirectResponse(f"/ui/login?next={request.url.path}", status_code=303)
        form: dict[str, str] = {}
        if request.method == "POST":
            raw = await request.form()
            form = {k: v for k, v in raw.items() if isinstance(v, str)}
            token = request.headers.get("X-CSRF-Token") or form.get("csrf_token")
            if not session.csrf_ok(token):
                return _error(request, session, 403, "The form's security token is missing or wrong.")
        timezone = request.query_params.get("timezone") or settings.timezone
        async with ApiClient(request.app, session.key) as api:
            try:
                return await handler(PageContext(request, session, api, form, timezone))
            except ApiError as exc:
                return _error(request, session, exc.status, exc.message)

    return endpoint


async def _logout(ctx: PageContext) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


def _login(codec: SessionCodec, settings: UiSettings) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        target = request.query_params.get("next", "/ui/overview")
        if not target.startswith("/ui/") or target.startswith("//"):
            target = "/ui/overview"  # never an open redirect
        if request.method == "GET":
            return _login_form(request, target, None)
        form = await request.form()
        # Login CSRF: the form's token must equal the cookie the form came with (a page of
        # another site can neither read this cookie nor make the browser send it).
        sent, expected = str(form.get("csrf_token") or ""), request.cookies.get(LOGIN_COOKIE) or ""
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            message = "The sign-in form expired or did not come from this page: sign in again."
            return _login_form(request, target, message, 403)
        key = str(form.get("key") or "").strip()
        try:
            role, label, user_id = await _identify(request, settings, key)
        except ApiError as exc:
            message = "That key is not accepted." if exc.status in (400, 401) else exc.message
            return _login_form(request, target, message, 401)
        cookie, _ = codec.seal(key, role=role, label=label, user_id=user_id)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            cookie,
            max_age=SESSION_SECONDS,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return response

    return endpoint


def _login_form(request: Request, target: str, error: str | None, status: int = 200) -> Response:
    """The sign-in page with a fresh CSRF token, also set as a cookie for the POST to echo."""
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", None, status, next=target, error=error, csrf_token=token)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/ui/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def _identify(request: Request, settings: UiSettings, key: str) -> tuple[str, str, str | None]:
    """The key's role, a label for the menu and its owner, asked of the API (401 for an
    unknown key)."""
    if not key:
        raise ApiError(401, "no key")
    if settings.master_key and hmac.compare_digest(key.encode(), settings.master_key.encode()):
        return "proxy_admin", "master key", None
    async with ApiClient(request.app, key) as api:
        info = (await api.get("/key/info"))["info"]
        label = str(info.get("key_alias") or info.get("key_name") or "key")
        user_id = info.get("user_id")
        if not user_id:
            return "key", label, None
        user = (await api.get("/user/info", {"user_id": user_id}))["user_info"]
        return str(user.get("user_role") or "internal_user_viewer"), f"{label} ({user_id})", str(user_id)
