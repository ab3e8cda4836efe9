"""Keep channel URLs out of the logs: httpx logs every request's full URL at INFO
(logger ``httpx``), and a Slack or webhook URL carries its token.

:func:`redact_urls` installs (once per URL) a filter on that logger which replaces a
configured channel URL in a record's arguments by its scheme and host only.

httpx logs its *normalised* URL (lower-case host, ``%20``, percent-encoded non-ASCII, an
explicit port kept), so a logged URL is matched on its host, port and path as httpx parses
them, not on the configured text: any request to a channel's host and path is redacted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx

__all__ = ["redact_urls", "redacted"]


def redacted(url: str) -> str:
    """``https://hooks.slack.com/services/T/B/x`` → ``https://hooks.slack.com/…``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def _key(url: object) -> tuple[str, int | None, str] | None:
    """Host (lower-case), port (default filled in) and decoded path, as httpx reads ``url``."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(str(url))
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    if not parsed.host:
        return None
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    return parsed.host.lower(), port, parsed.path


class _ChannelUrlFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__("spendgate-alert-urls")
        self.urls: set[str] = set()
        self.keys: set[tuple[str, int | None, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls and isinstance(record.args, tuple):
            args: list[object] = []
            for arg in record.args:
                text = str(arg) if type(arg).__name__ == "URL" or isinstance(arg, str) else None
                if text is not None and (
                    any(text.startswith(url) for url in self.urls) or _key(arg) in self.keys
                ):
                    args.append(redacted(text))
                else:
                    args.append(arg)
            record.args = tuple(args)
        return True


_FILTER = _ChannelUrlFilter()


def redact_urls(urls: Iterable[str]) -> None:
    """Redact these URLs from the ``httpx`` logger's records from now on."""
    new = set(urls)
    if not new:
        return
    _FILTER.urls |= new
    _FILTER.keys |= {key for key in map(_key, new) if key is not None}
    logger = logging.getLogger("httpx")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
