from __future__ import annotations

from pathlib import Path

import pytest

from spendgate.ledger.journal import Journal, JournalFullError, JournalLockedError


def test_records_survive_reopen_until_confirmed(journal_dir: Path) -> None:
    journal = Journal(journal_dir)
    assert journal.open() == []
    seqs = [journal.append(b'{"n":%d}' % i) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    journal.sync()
    # A crashed process never closes: simulate by opening the files again after unlocking.
    journal.close()
    again = Journal(journal_dir)
    assert [p for _, p in again.open()] == [b'{"n":%d}' % i for i in range(5)]
    again.confirm(5)
    again.close()
    assert Journal(journal_dir).open() == []


def test_confirm_drops_only_confirmed_segments(journal_dir: Path) -> None:
    journal = Journal(journal_dir, segment_bytes=64)
    journal.open()
    for i in range(10):
        journal.append(b"x" * 30 + b"%d" % i)
    assert len(list(journal_dir.glob("segment-*.log"))) >= 5
    journal.confirm(4)
    journal.close()
    remaining = [p for _, p in Journal(journal_dir).open()]
    assert remaining[-6:] == [b"x" * 30 + b"%d" % i for i in range(4, 10)]
    assert b"x" * 30 + b"3" not in remaining


def test_torn_tail_is_ignored(journal_dir: Path) -> None:
    journal = Journal(journal_dir)
    journal.open()
    journal.append(b'{"ok":1}')
    journal.close()
    segment = next(journal_dir.glob("segment-*.log"))
    with open(segment, "ab") as fh:
        fh.write(b'deadbeef {"torn')
    assert [p for _, p in Journal(journal_dir).open()] == [b'{"ok":1}']


def test_size_limit_is_backpressure_not_loss(journal_dir: Path) -> None:
    journal = Journal(journal_dir, max_bytes=100)
    journal.open()
    journal.append(b"a" * 40)
    journal.append(b"b" * 40)
    with pytest.raises(JournalFullError, match="was NOT recorded"):
        journal.append(b"c" * 40)
    journal.confirm(2)
    journal.append(b"c" * 40)
    journal.close()


def test_one_process_per_journal(journal_dir: Path) -> None:
    first = Journal(journal_dir)
    first.open()
    with pytest.raises(JournalLockedError):
        Journal(journal_dir).open()
    first.close()
