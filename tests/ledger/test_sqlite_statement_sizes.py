"""SQLite ledger writes use a few statement sizes, so the driver's statement cache stays small.

``sqlite3`` keeps a prepared statement per distinct SQL text on every pooled connection,
and a prepared multi-row ``INSERT`` takes memory in proportion to its rows: one size per
possible remainder made each connection hold about 12 MB (issue #10, item 8).
"""

from __future__ import annotations

from typing import Any

from spendgate.ledger.sqlite_batch import CHUNK_ROWS, MAX_ROWS, chunks


def test_every_batch_size_uses_a_handful_of_statement_sizes() -> None:
    sizes: set[int] = set()
    for n in range(1, 5 * CHUNK_ROWS):
        events: list[Any] = list(range(n))  # stand-ins: chunks only counts and slices
        parts = chunks(events)
        assert [e for part in parts for e in part] == events  # every event, once, in order
        assert all(len(part) <= CHUNK_ROWS for part in parts)
        sizes.update(len(part) for part in parts)
    assert sizes == {CHUNK_ROWS >> i for i in range(CHUNK_ROWS.bit_length())}  # 64, 32, … 1


def test_statements_stay_within_sqlites_bound() -> None:
    parts = chunks(list(range(3 * MAX_ROWS + 7)), size=10**6)  # type: ignore[arg-type]
    assert all(len(part) <= MAX_ROWS for part in parts)
    assert sum(len(part) for part in parts) == 3 * MAX_ROWS + 7
