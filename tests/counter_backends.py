"""The counter storage backends the enforcement and counter tests run on (limits' ALL_STORAGES shape).

Apply ``@all_storages`` to a test class: each test then runs once per backend, with the
``storage`` fixture (tests/enforcement/conftest.py) built for it. Shared by tests/enforcement
and tests/stores/counters, so it lives at the tests root (like netfaults.py). Redis runs are marked
``redis`` so CI can select them; they fail (never skip) when Redis is unreachable, unless
``SPENDGATE_TEST_SKIP_REDIS=1``.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

import pytest

REDIS_URL = os.environ.get("SPENDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SKIP_REDIS = os.environ.get("SPENDGATE_TEST_SKIP_REDIS") == "1"
RUN_ID = f"sgt-{os.getpid()}-{uuid.uuid4().hex[:8]}"

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]

all_storages = pytest.mark.parametrize("backend", BACKENDS, indirect=True)

USD = 1_000_000_000
CENT = USD // 100


class FakeClock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, at: datetime | float | None = None) -> None:
        if at is None:
            at = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
        self.t = at.timestamp() if isinstance(at, datetime) else float(at)

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set(self, at: datetime) -> None:
        self.t = at.timestamp()


def unique_prefix() -> str:
    return f"{RUN_ID}-{uuid.uuid4().hex[:8]}-{int(time.time() * 1000) % 100000}"
