"""The sign-in form's CSRF protection (issue #18: CSRF protection on every form): a POST to
``/ui/login`` must echo the token of the cookie set with the form, so a page of another
site cannot sign a visitor's browser in under the attacker's key (login CSRF)."""

from __future__ import annotations

import re

import httpx
from gateway_helpers import MASTER_KEY, GatewayServer

SESSION = "spendgate_session"


def _form_token(client: httpx.Client) -> str:
    page = client.get("/ui/login")
    assert page.status_code == 200 and "spendgate_login" in client.cookies
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def test_a_sign_in_from_the_form_is_accepted(gateway: GatewayServer) -> None:
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        token = _form_token(client)
        answer = client.post("/ui/login", data={"key": MASTER_KEY, "csrf_token": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/overview"
        assert SESSION in client.cookies
        assert client.get("/ui/overview").status_code == 200


def test_a_sign_in_without_the_forms_token_is_refused(gateway: GatewayServer) -> None:
    # Another site's page posts the attacker's key: the browser sends no cookie of ours.
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        answer = client.post("/ui/login", data={"key": MASTER_KEY})
        assert answer.status_code == 403 and SESSION not in client.cookies
        assert "did not come from this page" in answer.text
    # A token that is not the cookie's (an attacker's own form) is refused too.
    with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
        _form_token(client)
        with httpx.Client(base_url=gateway.base_url, timeout=30) as attacker:
            foreign = _form_token(attacker)
        answer = client.post("/ui/login", data={"key": MASTER_KEY, "csrf_token": foreign})
        assert answer.status_code == 403 and SESSION not in client.cookies
