"""The mock provider for the metrics tests (the gateway helpers are shared with tests/gateway)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))

from spendgate.providers.mock import MockServer, run_mock_provider


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server
