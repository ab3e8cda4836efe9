"""Channel URLs are redacted from httpx's request log in every shape httpx logs them."""

from __future__ import annotations

import logging

import httpx
import pytest

from spendgate.alerts.redact import redact_urls

_URLS = [
    "https://hooks.slack.com/services/T0/B0/SECRETTOKEN1",
    "https://Hooks.Slack.com/services/T0/B0/SECRETTOKEN2",
    "https://hooks.slack.com:443/services/T0/B0/SECRETTOKEN3",
    "https://hooks.slack.com/services/T0/B0/SECRET TOKEN4",
    "https://example.com/hook?token=SECRETTOKEN5&x=é",
]


async def test_normalised_urls_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    redact_urls(_URLS)
    caplog.set_level(logging.INFO, logger="httpx")
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    async with httpx.AsyncClient(transport=transport) as client:
        for url in _URLS:
            await client.post(url, json={})
    text = caplog.text
    assert text.count("HTTP Request") == len(_URLS)
    assert "SECRET" not in text
    assert "https://hooks.slack.com/…" in text
