"""Where every ended metered call goes before its callbacks: the spend ledger, once
:func:`spendgate.configure` has opened one (:mod:`spendgate.sdk.ledger`).

The metered path (:class:`~spendgate.sdk.metering.MeteredCall`) calls :func:`record` at
each end of a call (answered, stream ended, failed, cancelled), then the callbacks, so the
ledger sees exactly the calls and costs the callbacks see. This module is the only link:
importing the ledger (its recorder, database drivers) costs more than the whole SDK, so
it is imported when a ledger is configured, never by the metered path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from spendgate.sdk.callbacks import CallRecord

__all__ = ["record", "recording", "set_ledger"]

log = logging.getLogger("spendgate.sdk")

_ledger: Callable[[CallRecord], None] | None = None


def set_ledger(hook: Callable[[CallRecord], None] | None) -> None:
    """Send every ended call to ``hook`` (None: to no ledger)."""
    global _ledger
    _ledger = hook


def recording() -> bool:
    """Whether a ledger is configured (else an ended call's record need not be built for it)."""
    return _ledger is not None


def record(call: CallRecord) -> None:
    """Hand an ended call to the ledger, if one is configured. A failure to record is
    logged and never breaks the call."""
    hook = _ledger
    if hook is not None:
        try:
            hook(call)
        except Exception:
            log.exception("spend event of call %s NOT recorded", call.call_id)
