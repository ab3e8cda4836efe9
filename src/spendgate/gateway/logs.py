"""Raw keys never reach the access log.

A raw key is shown once and stored only as its hash (DESIGN §1.9), but the management API
takes keys in URLs LiteLLM clients already use (``GET /key/info?key=sk-…``,
``POST /key/sk-…/regenerate``), and uvicorn's access log writes every URL. The
:class:`RedactKeys` filter on the ``uvicorn.access`` logger rewrites each record's
arguments before any handler formats them:

* anything that looks like a key (``sk-`` and what follows, up to a ``/``, ``?``, ``&``,
  ``#``, quote or space) becomes ``sk-[redacted]``;
* the value of a ``key``, ``new_key`` or ``api_key`` query parameter becomes
  ``[redacted]`` (a custom key need not look like one, and a hash is not worth logging);
* the path segment of ``/key/<key>/regenerate`` becomes ``[redacted]``.

:func:`install_access_log_redaction` adds it once per process; ``spendgate serve`` calls it
in each worker's app factory, after uvicorn has configured logging.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "RedactKeys", "install_access_log_redaction", "redact_keys"]

REDACTED = "[redacted]"

_QUERY = re.compile(r"(?i)([?&](?:key|new_key|api_key)=)[^&#\s\"']*")
_REGENERATE = re.compile(r"(/key/)[^/?#\s\"']+(/regenerate)")
_KEY_LIKE = re.compile(r"sk-[^/?&#\s\"']+")


def redact_keys(text: str) -> str:
    """``text`` with every raw key in it replaced (see the module docstring)."""
    if "key" not in text and "sk-" not in text:
        return text  # the common access-log line: nothing to look at
    text = _QUERY.sub(lambda m: m.group(1) + REDACTED, text)
    text = _REGENERATE.sub(lambda m: m.group(1) + REDACTED + m.group(2), text)
    return _KEY_LIKE.sub("sk-" + REDACTED, text)


def _clean(value: Any) -> Any:
    return redact_keys(value) if isinstance(value, str) else value


class RedactKeys(logging.Filter):
    """Redacts raw keys in a record's message and arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_keys(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_clean(a) for a in args)
        elif isinstance(args, Mapping):
            record.args = {k: _clean(v) for k, v in args.items()}
        return True


def install_access_log_redaction(logger_name: str = "uvicorn.access") -> None:
    """Add :class:`RedactKeys` to ``logger_name`` (once: calling again changes nothing)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactKeys) for f in logger.filters):
        logger.addFilter(RedactKeys())
