"""Every answer belongs to its request: 64 concurrent official clients, streamed and
non-streamed calls mixed, through the gateway on a real port to the mock provider.

The upstream client once returned a streamed answer's connection to its pool twice, so two
requests shared one socket and clients received each other's answers or hung (issue #10).
The longer run is ``reliability/answers.py``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from answers_helpers import hammer, ledger_problems
from gateway_helpers import MASTER_KEY, GatewayServer, Ledger, make_config

from spendgate.providers.mock import MockServer


async def test_concurrent_clients_each_get_their_own_answer_and_are_billed_once(
    mock_server: MockServer, tmp_path: Path
) -> None:
    mock_server.reset()
    config = make_config(mock_server.base_url, tmp_path / "spendgate.db", tmp_path / "journal")
    with GatewayServer(config) as gateway:
        tally = await hammer(gateway.url, MASTER_KEY, clients=64, duration=3.0, timeout=20.0, min_each=60)
    assert tally.wrong == [] and tally.hangs == 0 and not tally.errors, tally.summary()
    assert tally.streamed > 50 and tally.calls - tally.streamed > 50, tally.summary()
    assert len(set(tally.answered)) == len(tally.answered) == tally.calls
    # The gateway has stopped: its recorder flushed every event on the way out.
    rows = Ledger(tmp_path / "spendgate.db").rows()
    per_event = Counter(row["event_id"] for row in rows)
    assert ledger_problems(tally.answered, per_event) == {"missing": 0, "doubled": 0}
    assert {row["status"] for row in rows if row["event_id"] in set(tally.answered)} == {"success"}
