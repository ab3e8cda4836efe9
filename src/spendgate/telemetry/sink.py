"""The recorder seen through an observer: every spend event recorded is also observed.

Every billed outcome (a call, a stream however it ended, a failed attempt, a cancelled call,
a settled batch) already reaches the ledger as one spend event, from the pipeline's billing
step or the batch poller. Wrapping the recorder they write to gives telemetry all of them,
with everything the event knows, without a second hook on the request path; when telemetry
is off the recorder is not wrapped, so nothing runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from spendgate.ledger.events import SpendEvent

__all__ = ["ObservedSink"]

log = logging.getLogger("spendgate.telemetry")


class ObservedSink:
    """A recorder (``record``, and ``record_durable`` when it has it) that calls ``observe``
    with each event once the recorder has accepted it. An observer that fails is logged and
    never fails the recording: the ledger is the truth, telemetry a view of it.

    Args:
        recorder: the ledger's recorder (or anything with its ``record``).
        observe: called with each recorded event.
    """

    __slots__ = ("_observe", "_recorder")

    def __init__(self, recorder: Any, observe: Callable[[SpendEvent], None]) -> None:
        self._recorder = recorder
        self._observe = observe

    def record(self, event: SpendEvent) -> object:
        result = self._recorder.record(event)
        self._observed(event)
        return result

    async def record_durable(self, event: SpendEvent) -> None:
        await self._recorder.record_durable(event)
        self._observed(event)

    def _observed(self, event: SpendEvent) -> None:
        try:
            self._observe(event)
        except Exception:
            log.warning("telemetry: could not observe spend event %s", event.event_id, exc_info=True)
