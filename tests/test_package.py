"""The package as a whole: public names, import time, no network."""

from __future__ import annotations

import subprocess
import sys

import spendgate


def test_public_names_are_exported_and_sorted() -> None:
    names = [n for n in dir(spendgate) if not n.startswith("_")]
    public = {n for n in names if not isinstance(getattr(spendgate, n), type(spendgate))}
    assert set(spendgate.__all__) == public - {"annotations"}
    assert spendgate.__all__ == sorted(spendgate.__all__, key=str.lower) or spendgate.__all__ == sorted(
        spendgate.__all__
    )


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
        "loaded = 'spendgate.catalogue.bundled' in sys.modules; print(sorted(heavy), loaded)"
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
