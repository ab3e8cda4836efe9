"""Reading a /metrics answer: samples by name, promtool, and the ledger's sums."""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples(text: str, name: str) -> list[Sample]:
    """Every sample whose name is ``name`` (a sample name: ``…_total``, ``…_bucket``)."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def total(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    found = samples(text, name)
    return sum(s.value for s in found if all(s.labels.get(k) == v for k, v in labels.items()))


_WORDS = ("team", "api_key", "user", "org", "customer")


def promtool_check(text: str) -> None:
    """``promtool check metrics`` on ``text``: it must pass (lint warnings included).

    Without promtool the test fails in CI (``.ci/run`` installs it) and is skipped locally.
    """
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed (.ci/run installs Debian's prometheus package)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60, check=False
    )
    output = (result.stdout + result.stderr).decode()
    # The one lint finding allowed: LiteLLM's hours-until-reset gauges keep LiteLLM's names
    # (dashboards query them), which promtool's unit lint would have in seconds. Exit code 3
    # is "lint problems only"; a format error is 1.
    findings = [line for line in output.splitlines() if line.strip()]
    allowed = {
        f'litellm_{word}_budget_remaining_hours_metric use base unit "seconds" instead of "hours"'
        for word in _WORDS
    }
    unexpected = [line for line in findings if line not in allowed]
    assert not unexpected, output
    assert result.returncode == (3 if findings else 0), output


def assert_finite(text: str) -> None:
    """No sample is +Inf, -Inf or NaN; ``+Inf`` appears only as a histogram's ``le`` bound."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert math.isfinite(s.value), f"{s.name}{s.labels} = {s.value}"
            for label, value in s.labels.items():
                if value == "+Inf":
                    assert label == "le" and s.name.endswith("_bucket"), f"{s.name}{s.labels}"
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        assert "Inf" not in line.replace('le="+Inf"', ""), line
        assert "NaN" not in line, line


def ledger_sums(db: Path) -> tuple[int, int, int, int]:
    """(events billed, cost in nano-USD, input tokens, output tokens) of the ledger; failed
    attempts (``error`` rows, cost 0) are not calls that were billed."""
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*), coalesce(sum(cost_nanos), 0), coalesce(sum(input_tokens), 0), "
            "coalesce(sum(output_tokens), 0) FROM spend_events WHERE status != 'error'"
        ).fetchone()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])
