"""The package as a whole: public names, import time, no network."""

from __future__ import annotations

import subprocess
import sys

import pytest

import spendgate


def test_public_names_are_exported_and_sorted() -> None:
    assert spendgate.__all__ == sorted(spendgate.__all__)
    for name in spendgate.__all__:
        assert getattr(spendgate, name) is not None
    assert set(spendgate.__all__) <= set(dir(spendgate))


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        spendgate.no_such_name  # noqa: B018


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


def test_import_is_fast() -> None:
    # Best of five fresh interpreters, timed inside the child so interpreter start-up is
    # not counted: the import itself must stay under 150 ms.
    code = "import time; t = time.perf_counter(); import spendgate; print(time.perf_counter() - t)"
    best = min(float(_run(code)) for _ in range(5))
    assert best < 0.150, f"import spendgate took {best * 1000:.0f} ms"


def test_import_loads_no_price_data_and_no_heavy_dependency() -> None:
    code = (
        "import sys, spendgate; "
        "heavy = {'sqlalchemy', 'httpx', 'orjson', 'typer', 'rich', 'pydantic', 'yaml'} & set(sys.modules); "
        "loaded = 'spendgate.catalogue.bundled' in sys.modules; spendgate.price; "
        "loaded = loaded or 'spendgate.catalogue.bundled' in sys.modules; print(sorted(heavy), loaded)"
    )
    assert _run(code) == "[] False"


def test_no_network_on_import_or_first_price() -> None:
    code = """
import socket
class NoNetwork(socket.socket):
    def connect(self, *a, **k): raise SystemExit("network used: connect")
    def connect_ex(self, *a, **k): raise SystemExit("network used: connect_ex")
    def sendto(self, *a, **k): raise SystemExit("network used: sendto")
def refuse(*a, **k): raise SystemExit("network used: resolve")
socket.socket = NoNetwork
socket.create_connection = refuse
socket.getaddrinfo = refuse
import spendgate
print(spendgate.cost_per_token("gpt-4o", 1000, 500))
"""
    assert _run(code) == "(Decimal('0.0025'), Decimal('0.005'))"


def test_lazy_export_table_matches_all() -> None:
    assert set(spendgate._EXPORTS) == set(spendgate.__all__)
