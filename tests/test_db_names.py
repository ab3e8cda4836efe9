"""The suite's PostgreSQL database names take ``$SPENDGATE_TEST_DB_PREFIX`` (issue #17 item 7),
so several runs can share one server and each clean up its own."""

from __future__ import annotations

import pytest

from db_helpers import DB_PREFIX_ENV, database_name


def test_names_take_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DB_PREFIX_ENV, raising=False)
    assert database_name("test").startswith("spendgate_test_")
    monkeypatch.setenv(DB_PREFIX_ENV, "ci_job_42")
    names = {database_name("mig") for _ in range(3)}
    assert len(names) == 3 and all(n.startswith("ci_job_42_mig_") for n in names)
    assert max(len(database_name("sdk_unmigrated")) for _ in range(3)) <= 63  # PostgreSQL's limit


@pytest.mark.parametrize("prefix", ["Bad-Prefix", "x" * 32, "1abc", 'a"; DROP'])
def test_a_prefix_that_is_no_plain_identifier_is_refused(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    monkeypatch.setenv(DB_PREFIX_ENV, prefix)
    with pytest.raises(ValueError, match=DB_PREFIX_ENV):
        database_name("test")
