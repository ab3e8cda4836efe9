"""The operational-alert settings (alerting_args): defaults, and bad values refused at start
with the key named."""

from __future__ import annotations

from typing import Any

import pytest

from spendgate.config import parse_config
from spendgate.errors import ConfigurationError


def _args(**values: Any) -> Any:
    return parse_config(
        {"general_settings": {"alerting_args": values}}, environ={}
    ).general_settings.alerting_args


def test_defaults() -> None:
    args = _args()
    assert (args.operational_check_interval_seconds, args.storage_unreachable_after_seconds) == (30, 60)
    assert (args.journal_backlog_events, args.journal_backlog_bytes, args.journal_stalled_seconds) == (
        50_000,
        256 << 20,
        300,
    )
    assert args.retention_days == 90


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("operational_check_interval_seconds", 0),
        ("operational_check_interval_seconds", float("inf")),
        ("storage_unreachable_after_seconds", -1),
        ("storage_unreachable_after_seconds", float("nan")),
        ("journal_backlog_events", 0),
        ("journal_backlog_bytes", 0),
        ("journal_stalled_seconds", 1e300),
        ("retention_days", 0),
        ("retention_days", "forever"),
    ],
)
def test_bad_values_are_refused_naming_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"general_settings.alerting_args.{key}"):
        _args(**{key: value})
