"""Every SDK test starts and ends with the process-wide SDK state at its defaults: no
global budget, no callbacks, no remembered prices."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from spendgate.sdk import callbacks, results
from spendgate.sdk.budget import BUDGET


@pytest.fixture(autouse=True)
def fresh_sdk_state() -> Iterator[None]:
    BUDGET.reset()
    callbacks.reset()
    results.reset()
    yield
    BUDGET.reset()
    callbacks.reset()
    results.reset()
