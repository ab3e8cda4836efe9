"""The BudgetManager's ``client_type="local"`` store: one JSON file that several processes
share without losing an update.

LiteLLM writes ``user_cost.json`` from a background thread with a plain ``open(..., "w")``:
two processes (or two quick updates) overwrite each other, and a crash mid-write leaves a
truncated file. Here every change is a read-modify-write under an exclusive lock on a
sibling ``<file>.lock`` (the ``filelock`` package: ``fcntl``/``msvcrt`` locks, released by
the OS if the process dies), and the new content is written to a temporary file in the
same directory, flushed to disk and moved over the old one with ``os.replace``, so a
reader only ever sees a whole file, and the lock is held across the whole
read-modify-write, so no update is lost. Reads take no lock.

The file holds every project: ``{"format": "spendgate.budget_manager/1", "projects":
{project: {user: record}}}``; amounts are integer nano-USD, times ISO 8601.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout

from spendgate.errors import ConfigurationError, StorageError
from spendgate.sdk.budget_store import BudgetRecord, Held, ReserveOutcome, prepare

__all__ = ["FORMAT", "LocalBudgetStore"]

T = TypeVar("T")

FORMAT = "spendgate.budget_manager/1"


class LocalBudgetStore:
    """Budgets of one project in a JSON file (see the module doc).

    Args:
        path: the file; made absolute at construction, so a later ``chdir`` does not move it.
        project: the project whose users this store reads and writes.
        lock_timeout: seconds to wait for the file lock before raising :class:`StorageError`.
    """

    def __init__(self, path: str | os.PathLike[str], project: str, *, lock_timeout: float = 60.0) -> None:
        self.path = Path(path).expanduser().resolve()
        self.project = project
        # A waiter polls the lock: every 2 ms, not filelock's 50 ms (a file op takes ~1-10 ms).
        self._file_lock = FileLock(f"{self.path}.lock", timeout=lock_timeout, poll_interval=0.002)
        self._thread_lock = threading.Lock()

    # -- the file ----------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"format": FORMAT, "projects": {}}
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{self.path}: not a BudgetManager file ({exc})") from None
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or not isinstance(data.get("projects"), dict)
        ):
            raise ConfigurationError(f"{self.path}: not a spendgate BudgetManager file (format {FORMAT!r})")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The project's users, read under the lock; written back when the block ends
        without an error."""
        with self._thread_lock:
            try:
                self._file_lock.acquire()
            except Timeout:
                raise StorageError(f"{self.path}: could not lock {self._file_lock.lock_file}") from None
            try:
                data = self._read()
                users: dict[str, dict[str, Any]] = data["projects"].setdefault(self.project, {})
                before = json.dumps(users, sort_keys=True)
                yield users
                if json.dumps(users, sort_keys=True) != before:
                    self._write(data)
            finally:
                self._file_lock.release()

    def _users(self) -> dict[str, Any]:
        users = self._read()["projects"].get(self.project, {})
        return users if isinstance(users, dict) else {}

    # -- BudgetStore -------------------------------------------------------------------------

    def get(self, user: str, now: datetime) -> BudgetRecord | None:
        """The user's record as of ``now`` (its calendar period rolled, not written)."""
        data = self._users().get(user)
        if data is None:
            return None
        record = BudgetRecord.from_json(data)
        prepare(record, now)
        return record

    def all(self, now: datetime) -> dict[str, BudgetRecord]:
        """Every user's record as of ``now``."""
        out = {}
        for user, data in self._users().items():
            record = BudgetRecord.from_json(data)
            prepare(record, now)
            out[user] = record
        return out

    def create(self, user: str, record: BudgetRecord, *, replace: bool) -> BudgetRecord:
        """Store a new budget; an existing one is kept unless ``replace``."""
        with self._locked() as users:
            if user in users and not replace:
                return BudgetRecord.from_json(users[user])
            users[user] = record.to_json()
            return record

    def mutate(self, user: str, now: datetime, change: Callable[[BudgetRecord], T]) -> T:
        """Lock, roll and sweep, apply ``change``, write (see :class:`BudgetStore`)."""
        with self._locked() as users:
            if user not in users:
                raise KeyError(user)
            record = BudgetRecord.from_json(users[user])
            prepare(record, now)
            result = change(record)
            users[user] = record.to_json()
            return result

    def reserve(self, user: str, reservation_id: str, held: Held, now: datetime) -> ReserveOutcome:
        """Reserve if it fits, under the file lock (see :class:`BudgetStore`)."""

        def change(record: BudgetRecord) -> ReserveOutcome:
            if (
                record.current_cost_nanos + record.reserved_nanos + held.amount_nanos
                > record.total_budget_nanos
            ):
                return ReserveOutcome(False, record)
            record.reserved_nanos += held.amount_nanos
            record.reservations[reservation_id] = held
            return ReserveOutcome(True, record)

        return self.mutate(user, now, change)

    def close(self) -> None:
        """Nothing is held between calls."""
