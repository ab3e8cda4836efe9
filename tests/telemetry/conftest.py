"""The mock provider and a real OTLP/HTTP receiver for the OpenTelemetry tests (the gateway
helpers are shared with tests/gateway)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))

from otlp_receiver import OtlpReceiver

from spendgate.providers.mock import MockServer, run_mock_provider


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockServer]:
    with run_mock_provider() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running
