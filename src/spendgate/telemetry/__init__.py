"""OpenTelemetry (issue #15): optional, off by default, and nothing loaded while off.

* :func:`otel_settings` — whether the config turns it on (``general_settings.otel``, or
  LiteLLM's ``litellm_settings.callbacks: ["otel"]``; ``OTEL_SDK_DISABLED=true`` wins);
* :func:`start_telemetry` — the exporter, importing the SDK (:mod:`spendgate.telemetry.otel`)
  only then;
* :class:`ObservedSink` — the recorder, with each spend event also handed to telemetry;
* :mod:`~spendgate.telemetry.attributes` — a spend event in the GenAI conventions' names.

Beside the metrics in the layers: the server composes it; it imports no gateway. See
``docs/metrics.md`` ("OpenTelemetry").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from spendgate.config import GatewayConfig, OtelSettings
from spendgate.errors import ConfigurationError
from spendgate.telemetry.sink import ObservedSink

if TYPE_CHECKING:
    from spendgate.telemetry.otel import OtelTelemetry

__all__ = ["ObservedSink", "otel_settings", "start_telemetry"]


def otel_settings(config: GatewayConfig, environ: Mapping[str, str] | None = None) -> OtelSettings | None:
    """The OpenTelemetry settings in force, or None when it is off."""
    settings = config.general_settings.otel
    if settings is None and "otel" in config.litellm_settings.callbacks:
        settings = OtelSettings()
    if settings is None or not settings.enabled or not (settings.traces or settings.metrics):
        return None
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return settings


def start_telemetry(config: GatewayConfig) -> OtelTelemetry | None:
    """The process's OpenTelemetry exporter when the config turns it on, else None (and the
    SDK is not imported).

    Raises:
        ConfigurationError: it is turned on but the SDK is not installed.
    """
    settings = otel_settings(config)
    if settings is None:
        return None
    try:
        from spendgate.telemetry.otel import OtelTelemetry
    except ImportError as exc:
        raise ConfigurationError(
            f"OpenTelemetry is turned on but its SDK is missing ({exc.name}): pip install 'spendgate[otel]'"
        ) from None

    return OtelTelemetry(settings)
