"""``storage_unreachable``: the database or Redis cannot be reached from this instance.

:class:`StorageMonitor` runs on every instance (a job without the leader lock: the lock
lives in the very stores it checks), probing each store with a bounded round trip. An
outage counts once it has lasted ``after_seconds`` (a single slow answer is not one).

- **Redis** (or any store other than the database) is alerted while it lasts: once per UTC
  hour (the alert's period), saying since when. Alerts are written to the database, which
  is up.
- **The database** cannot take an alert about itself. Its outage is logged at once (ERROR)
  and alerted **when it is back**, saying when it began and ended; the alert's period is the
  hour it began in. So is a Redis outage that could not be written while it lasted (the
  database was down too). Such alerts wait in memory (the newest 32): an instance that
  stops during an outage does not report it (another instance that saw it does).

Instances see the same outage at slightly different times; they agree on one alert per
period, except when the outage began within one check interval of an hour's end (then
two may be written, each with its own times).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from spendgate.alerts.model import Alert
from spendgate.alerts.operational import OperationalAlerts, hour_of, when

__all__ = ["DATABASE", "StorageMonitor"]

log = logging.getLogger("spendgate.alerts")

DATABASE = "database"
_NAMES = {"database": "the database", "redis": "Redis"}
_MAX_WAITING = 32

Probe = Callable[[], Awaitable[object]]
"""A bounded round trip to a store (``SELECT 1``, ``PING``); raises when it fails."""


@dataclass
class _Outage:
    since: datetime
    error: str
    reported_hour: datetime | None = None
    logged: bool = False


def _error(exc: BaseException) -> str:
    # The exception's first line (a connection error names a host and port, never a
    # password), short: it goes into the alert.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:200]


def _seconds(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


class StorageMonitor:
    """Probes the stores and alerts their outages (see the module docstring).

    Args:
        alerts: records the alerts.
        probes: store name (``database``, ``redis``) → its probe.
        after_seconds: how long a store must be unreachable to count as an outage.
        timeout_seconds: the longest one probe may take.
    """

    def __init__(
        self,
        alerts: OperationalAlerts,
        probes: Mapping[str, Probe],
        *,
        after_seconds: float = 60.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.alerts = alerts
        self.probes = dict(probes)
        self.after_seconds = after_seconds
        self.timeout_seconds = timeout_seconds
        self._outages: dict[str, _Outage] = {}
        self._waiting: list[Alert] = []

    @property
    def waiting(self) -> tuple[Alert, ...]:
        """Alerts of outages that ended, not yet recorded (the database was down)."""
        return tuple(self._waiting)

    async def run_once(self) -> None:
        """Probe every store once, then record what can be recorded."""
        results = await asyncio.gather(*(self._probe(p) for p in self.probes.values()))
        now = self.alerts.clock()
        for name, error in zip(self.probes, results, strict=True):
            if error is None:
                self._ended(name, now)
            else:
                await self._down(name, error, now)
        await self._record_waiting()

    async def _probe(self, probe: Probe) -> str | None:
        try:
            await asyncio.wait_for(probe(), self.timeout_seconds)
        except Exception as exc:  # TimeoutError included: unreachable, for this purpose
            return _error(exc)
        return None

    async def _down(self, name: str, error: str, now: datetime) -> None:
        outage = self._outages.get(name)
        if outage is None:
            self._outages[name] = outage = _Outage(now, error)
        outage.error = error
        if (now - outage.since).total_seconds() < self.after_seconds:
            return
        wanted = self.alerts.wanted("storage_unreachable")
        if name == DATABASE or not wanted:
            if not outage.logged:
                outage.logged = True
                log.error(
                    "%s is unreachable since %s (%s)%s",
                    _NAMES.get(name, name),
                    when(outage.since),
                    error,
                    "; the alert is recorded when it is back" if wanted else "",
                )
            return
        hour, _ = hour_of(now)
        if outage.reported_hour == hour or DATABASE in self._outages:
            return  # alerted this hour; or it cannot be written now (on recovery then)
        try:
            await self.alerts.record(self._alert(name, outage, now, ended=None))
        except Exception as exc:  # the database too: reported when both are back
            log.warning("%s outage alert not recorded yet: %s", _NAMES.get(name, name), _error(exc))
            return
        outage.reported_hour = hour

    def _ended(self, name: str, now: datetime) -> None:
        outage = self._outages.pop(name, None)
        if outage is None:
            return
        lasted = (now - outage.since).total_seconds()
        if lasted < self.after_seconds:
            return
        log.warning("%s is reachable again after %s", _NAMES.get(name, name), _seconds(lasted))
        if outage.reported_hour is None:
            self._waiting = [*self._waiting, self._alert(name, outage, now, ended=now)][-_MAX_WAITING:]

    async def _record_waiting(self) -> None:
        if DATABASE in self._outages:  # known down: no connect timeout per check
            return
        while self._waiting:
            try:
                await self.alerts.record(self._waiting[0])
            except Exception as exc:
                log.warning("an outage alert is not recorded yet: %s", _error(exc))
                return
            self._waiting.pop(0)

    def _alert(self, name: str, outage: _Outage, now: datetime, ended: datetime | None) -> Alert:
        store = _NAMES.get(name, name)
        instance = self.alerts.instance_id
        if ended is None:
            text = (
                f"{store} is unreachable from {instance} since {when(outage.since)} "
                f"({_seconds((now - outage.since).total_seconds())} so far): {outage.error}"
            )
            start, end = hour_of(now)
        else:
            text = (
                f"{store} was unreachable from {instance} from {when(outage.since)} to {when(ended)} "
                f"({_seconds((ended - outage.since).total_seconds())}): {outage.error}"
            )
            start, end = hour_of(outage.since)
        return Alert(
            kind="storage_unreachable",
            scope_type="storage",
            scope_id=name,
            message=text,
            window="1h",
            period_start=start,
            period_end=end,
            extra={
                "store": name,
                "instance": instance,
                "since": outage.since.isoformat(),
                "until": None if ended is None else ended.isoformat(),
                "error": outage.error,
            },
        )
