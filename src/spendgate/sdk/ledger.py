"""``spendgate.configure(database_url=...)``: the SDK's calls written to spendgate's ledger
(issue #14 item 6), so ``spendgate spend report`` and the spend endpoints cover them.

Off by default. Once configured, every metered call (instrumented clients, ready classes,
``spendgate.completion()`` and friends) becomes one spend event, written through the
gateway's own :class:`~spendgate.ledger.recorder.Recorder`: journaled on local disk before
the call returns to its caller, then inserted in batches by a background writer
(idempotently: ``event_id`` is the call's id, the ``litellm_call_id`` the callbacks see).
Nothing on the call's path waits for SQL. The event is the gateway's:

* the exact cost (nano-USD, per item), usage, catalogue version and price source, model
  and provider as priced, the endpoint (its canonical path, as the gateway records it),
  start time and latency;
* the outcome: ``success``, ``partial`` (a stream cut short), ``cancelled`` (closed early)
  or ``error`` (nothing billed: cost 0, as the gateway records a failed attempt);
* attribution from the call's metadata where given: ``user_id`` (``metadata["user_id"]``
  or ``metadata["user"]``), ``team_id``, ``organization_id``, ``tags`` (``request_tags``)
  and ``end_user`` (the request's ``user``, else ``metadata["end_user"]``).

The recorder runs on a background thread with its own event loop. :func:`flush` waits until
everything recorded is in the database; the process's exit flushes too, and
events still unwritten then (the database is down) stay in the journal and are replayed by
the next :func:`configure` on the same ``journal_dir``. Each process takes its own journal
slot (``sdk-<n>``) under ``journal_dir``.

The database must be spendgate's, migrated (``spendgate db upgrade``): :func:`configure`
checks its schema revision first and refuses another one with a
:class:`~spendgate.errors.ConfigurationError` that says how to migrate it (otherwise every
event would wait in the journal for tables that are not there).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures.thread  # noqa: F401 - imported before the exit flush is registered (see there)
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from spendgate.core.pricing.breakdown import CostBreakdown
from spendgate.errors import ConfigurationError, StorageError
from spendgate.ledger.events import EventStatus, SpendEvent
from spendgate.ledger.journal import JournalLockedError
from spendgate.ledger.recorder import Recorder
from spendgate.providers.base import ENDPOINT_PATHS
from spendgate.sdk import sink
from spendgate.sdk.callbacks import CallRecord

__all__ = ["LedgerSink", "configure", "event_of", "flush", "is_configured"]

log = logging.getLogger("spendgate.sdk")

DEFAULT_JOURNAL_DIR = "spendgate-journal"
_SLOTS = 256
_CHECK_SECONDS = 30.0
"""How long :func:`configure` waits for the database to tell its schema revision."""


def _text(metadata: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = metadata.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def event_of(record: CallRecord) -> SpendEvent:
    """The spend event of a call that has ended (as the gateway writes it)."""
    breakdown = record.breakdown
    if breakdown is None:  # nothing billed (an error status, a transport error)
        breakdown = CostBreakdown(model=record.model, priced=True, provider=record.provider)
    end = record.end_time or record.start_time
    metadata = record.metadata
    return SpendEvent.from_breakdown(
        breakdown,
        event_id=record.call_id,
        occurred_at=end,
        status=EventStatus(record.outcome),
        estimated=record.estimated,
        started_at=record.start_time,
        latency_ms=max(0, round((end - record.start_time).total_seconds() * 1000)),
        user_id=_text(metadata, "user_id", "user"),
        team_id=_text(metadata, "team_id"),
        organization_id=_text(metadata, "organization_id", "org_id"),
        end_user=record.end_user,
        tags=tuple(record.tags),
        requested_model=record.model,
        endpoint=ENDPOINT_PATHS.get(record.call_type, record.call_type),
    )


class LedgerSink:
    """A started recorder on a background loop, fed from the callers' threads.

    Args:
        database_url: spendgate's database (``sqlite+aiosqlite:///…``, ``postgresql+asyncpg://…``).
        journal_dir: where the journal slots live.
        recorder_options: :class:`~spendgate.ledger.recorder.Recorder` settings
            (``flush_interval`` …).
    """

    def __init__(
        self, database_url: str, journal_dir: str | os.PathLike[str], **recorder_options: Any
    ) -> None:
        from spendgate.stores.database import create_engine

        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="spendgate-sdk-ledger", daemon=True
        )
        self._thread.start()
        self.engine = create_engine(database_url)
        base = Path(journal_dir)
        try:
            self._check_schema()
            base.mkdir(parents=True, exist_ok=True)
            self.recorder = self._run(self._start(base, recorder_options))
        except BaseException:
            self._run(self.engine.dispose())
            self._stop_loop()
            raise

    def _check_schema(self) -> None:
        """Refuse a database that is not at this spendgate's schema revision.

        Raises:
            ConfigurationError: never migrated, or at another revision.
            StorageError: the database did not answer.
        """
        from spendgate.stores.database import masked_url, schema_status

        url = masked_url(self.engine.url)
        try:
            status = self._run(schema_status(self.engine), _CHECK_SECONDS)
        except (OSError, SQLAlchemyError, TimeoutError) as exc:
            raise StorageError(f"spend ledger {url}: cannot read its schema revision: {exc}") from exc
        upgrade = f"run `spendgate db upgrade --database-url {url}`"
        if status.current is None:
            raise ConfigurationError(
                f"spend ledger {url} has no spendgate schema (it was never migrated): {upgrade} "
                "before spendgate.configure()"
            )
        if not status.up_to_date:
            raise ConfigurationError(
                f"spend ledger {url} is at schema revision {status.current}, and this spendgate writes "
                f"revision {status.head}: {upgrade} (or, if the database is the newer one, upgrade spendgate)"
            )

    async def _start(self, base: Path, options: dict[str, Any]) -> Recorder:
        for slot in range(_SLOTS):
            recorder = Recorder(self.engine, base / f"sdk-{slot}", **options)
            try:
                await recorder.start()
            except JournalLockedError:
                continue
            return recorder
        raise RuntimeError(f"{base}: no free SDK journal slot ({_SLOTS} in use)")

    def _run(self, coro: Any, timeout: float | None = None) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def record(self, record: CallRecord) -> None:
        """Journal one call's event (returns once it is on local disk)."""
        self.recorder.record(event_of(record))

    def flush(self, timeout: float | None = 30.0) -> None:
        """Wait until every event recorded so far is in the database.

        Raises:
            TimeoutError: events are still waiting after ``timeout`` seconds.
        """
        self._run(self.recorder.flush(timeout))

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush (up to ``timeout``), stop the recorder, release the journal slot."""
        try:
            self._run(self.recorder.close(timeout))
            self._run(self.engine.dispose())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


_lock = threading.Lock()
_sink: LedgerSink | None = None
_exit_registered = False


def configure(
    database_url: str | None = None,
    journal_dir: str | os.PathLike[str] | None = None,
    **recorder_options: Any,
) -> None:
    """Record every metered call to spendgate's ledger (``database_url=None``: stop).

    Args:
        database_url: spendgate's migrated database; None turns recording off (after
            flushing what was recorded).
        journal_dir: the local journal (default ``$SPENDGATE_JOURNAL_DIR`` or
            ``./spendgate-journal``); each process takes a slot ``sdk-<n>`` in it.
        **recorder_options: :class:`~spendgate.ledger.recorder.Recorder` settings.

    Raises:
        ConfigurationError: the database is not at this spendgate's schema revision (never
            migrated, or another one): run ``spendgate db upgrade --database-url URL``.
        StorageError: the database did not answer.
        SpendgateError, OSError: the journal cannot be opened.
    """
    global _sink
    with _lock:
        old, _sink = _sink, None
        sink.set_ledger(None)
        if old is not None:
            old.close()
        if database_url is None:
            return
        directory = journal_dir or os.environ.get("SPENDGATE_JOURNAL_DIR") or DEFAULT_JOURNAL_DIR
        _sink = LedgerSink(database_url, directory, **recorder_options)
        sink.set_ledger(_sink.record)
        global _exit_registered
        if not _exit_registered:
            _register_exit_flush()
            _exit_registered = True


def is_configured() -> bool:
    """Whether calls are being recorded to a ledger."""
    return _sink is not None


def flush(timeout: float | None = 30.0) -> None:
    """Wait until every call recorded so far is in the database (nothing to do when
    :func:`configure` was not called).

    Raises:
        TimeoutError: events are still waiting after ``timeout`` seconds (they stay
            journaled and are written later).
    """
    sink = _sink
    if sink is not None:
        sink.flush(timeout)


def _at_exit() -> None:
    sink = _sink
    if sink is not None:
        try:
            sink.close(10.0)
        except Exception:
            log.exception("spend ledger: flush at exit failed; unwritten events stay in the journal")


def _register_exit_flush() -> None:
    """Flush at exit, while thread pools still take work (the recorder fsyncs its journal in
    one): ``threading``'s exit hooks run before the interpreter shuts the pools down, and in
    reverse order, so one registered after ``concurrent.futures.thread`` was imported runs
    before that module's own. Plain ``atexit`` (which runs after) where there is no such hook."""
    register = getattr(threading, "_register_atexit", None)
    if register is None:
        atexit.register(_at_exit)
    else:
        register(_at_exit)
