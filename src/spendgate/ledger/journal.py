"""A local, append-only journal of spend events that are not yet in the database.

Layout: a directory holding ``segment-<n>.log`` files and a ``LOCK`` file (one process
per journal, enforced with ``flock``). Each record is one line::

    <crc32 of payload, 8 hex digits> <payload JSON>\\n

:meth:`Journal.append` writes the line with one ``write(2)``, so once it returns the
record survives the death of the process (kill -9). :meth:`Journal.sync` fsyncs, and is
called in groups by the recorder, which bounds what an OS crash or power loss can take.
On open, a torn or corrupt tail (from a crash mid-write) is detected by its CRC and
ignored; it was never acknowledged.

Records are confirmed in order once the database has them (:meth:`Journal.confirm`);
segments whose records are all confirmed are deleted, so the journal only ever holds
what the database does not. Its size is capped: past ``max_bytes`` :meth:`append` raises
:class:`JournalFullError` (back-pressure) instead of dropping anything.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

from spendgate.errors import SpendgateError

__all__ = ["Journal", "JournalError", "JournalFullError", "JournalLockedError"]

log = logging.getLogger("spendgate.ledger")


class JournalError(SpendgateError):
    """The spend journal cannot be used."""


class JournalFullError(JournalError):
    """Back-pressure: the journal holds ``max_bytes`` of events the database has not taken.

    Nothing was dropped; the event that raised this was not recorded.
    """


class JournalLockedError(JournalError):
    """Another process has this journal open."""


@dataclass(slots=True)
class _Segment:
    path: Path
    last_seq: int
    size: int


class Journal:
    """An append-only, segmented, CRC-checked local journal."""

    def __init__(
        self, directory: str | os.PathLike[str], *, max_bytes: int = 1 << 30, segment_bytes: int = 16 << 20
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._seq = 0
        self._confirmed = 0
        self._next_segment = 1
        self._bytes = 0
        self._dirty = False

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> list[tuple[int, bytes]]:
        """Lock the directory and return the unconfirmed records left by a previous run,
        as ``(seq, payload)`` in append order."""
        self.directory.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise JournalLockedError(f"spend journal {self.directory} is in use by another process") from None
        self._lock_fd = lock_fd
        records: list[tuple[int, bytes]] = []
        paths = sorted(self.directory.glob("segment-*.log"), key=lambda p: int(p.stem.split("-")[1]))
        for path in paths:
            data = path.read_bytes()
            for line in data.split(b"\n"):
                if not line:
                    continue
                payload = _decode(line)
                if payload is None:
                    log.warning(
                        "spend journal %s: ignoring a torn or corrupt record (never acknowledged)", path
                    )
                    continue
                self._seq += 1
                records.append((self._seq, payload))
            self._segments.append(_Segment(path, self._seq, len(data)))
            self._bytes += len(data)
            self._next_segment = int(path.stem.split("-")[1]) + 1
        return records

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
            self._delete_confirmed(keep_active=False)
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- writing -----------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Bytes held (all segments)."""
        return self._bytes

    @property
    def last_seq(self) -> int:
        return self._seq

    def append(self, payload: bytes) -> int:
        """Append one record; returns its sequence number once it is written.

        Raises:
            JournalFullError: the journal already holds ``max_bytes``.
        """
        line = b"%08x %s\n" % (zlib.crc32(payload), payload)
        with self._lock:
            if self._lock_fd is None:
                raise JournalError("the spend journal is not open")
            if self._bytes + len(line) > self.max_bytes:
                raise JournalFullError(
                    f"spend journal {self.directory} is full ({self._bytes} of {self.max_bytes} bytes "
                    "waiting for the database); the event was NOT recorded. Check the database connection, "
                    "or raise the journal size limit."
                )
            if self._fd is None or self._segments[-1].size + len(line) > self.segment_bytes:
                self._rotate()
            assert self._fd is not None
            written = os.write(self._fd, line)
            if written != len(line):  # pragma: no cover - regular files write fully
                raise JournalError(f"short write to the spend journal ({written} of {len(line)} bytes)")
            self._seq += 1
            segment = self._segments[-1]
            segment.last_seq = self._seq
            segment.size += len(line)
            self._bytes += len(line)
            self._dirty = True
            return self._seq

    def sync(self) -> int:
        """fsync what has been appended; returns the last seq that is now durable."""
        with self._lock:
            if self._fd is None or not self._dirty:
                return self._seq
            fd, seq = os.dup(self._fd), self._seq
            self._dirty = False
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return seq

    def confirm(self, seq: int) -> None:
        """Records up to ``seq`` are in the database: drop the segments that hold only those."""
        with self._lock:
            self._confirmed = max(self._confirmed, seq)
            self._delete_confirmed(keep_active=True)

    # -- internals (lock held) ----------------------------------------------------------

    def _rotate(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
        path = self.directory / f"segment-{self._next_segment:012d}.log"
        self._next_segment += 1
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._segments.append(_Segment(path, self._seq, 0))

    def _delete_confirmed(self, *, keep_active: bool) -> None:
        kept = []
        active = self._segments[-1] if (keep_active and self._fd is not None and self._segments) else None
        for segment in self._segments:
            if segment.last_seq <= self._confirmed and segment is not active:
                segment.path.unlink(missing_ok=True)
                self._bytes -= segment.size
            else:
                kept.append(segment)
        self._segments = kept
        # Everything confirmed: start a fresh segment at the next append, so the active
        # one does not grow forever under a steady trickle.
        if keep_active and active is not None and active.last_seq <= self._confirmed and active.size:
            assert self._fd is not None
            os.close(self._fd)
            self._fd = None
            active.path.unlink(missing_ok=True)
            self._bytes -= active.size
            self._segments.remove(active)


def _decode(line: bytes) -> bytes | None:
    if len(line) < 10 or line[8:9] != b" ":
        return None
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return None
    payload = line[9:]
    return payload if zlib.crc32(payload) == crc else None
