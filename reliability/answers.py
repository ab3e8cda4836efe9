"""Every answer belongs to its request: many concurrent clients, streamed and non-streamed mixed.

Starts the mock provider and one gateway (``spendgate serve``, SQLite ledger), then runs
``--clients`` official ``openai.AsyncOpenAI`` clients for ``--duration`` seconds, each
alternating streamed and non-streamed chat calls with a unique marker in every prompt and
its own number of tokens; the check is ``tests/gateway/answers_helpers.py``'s (the same
as ``tests/gateway/test_gateway_answers.py``, which runs it for 3 s). Then stops the
gateway gracefully and reads the ledger.

Criterion: 0 wrong answers, 0 hangs (every call ends within ``--timeout``), 0 errors, and
every answered request id (``x-spendgate-request-id``) in ``spend_events`` exactly once.

    python reliability/answers.py [--duration 20] [--clients 64] [--timeout 30]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "gateway"))

from _harness import MASTER_KEY, Stack, finish, ledger_counts  # noqa: E402
from answers_helpers import hammer, ledger_problems  # noqa: E402

__all__ = ["main"]


async def answers(args: argparse.Namespace) -> int:
    with Stack("answers") as stack:
        stack.mock()
        gateway = stack.gateway()
        tally = await hammer(
            f"{gateway.url}/v1",
            MASTER_KEY,
            clients=args.clients,
            duration=args.duration,
            timeout=args.timeout,
        )
        code = gateway.stop()  # graceful: the recorder flushes
        ledger = ledger_problems(tally.answered, await ledger_counts(stack.database_url()))
        summary = {
            "clients": args.clients,
            "duration_s": args.duration,
            **tally.summary(),
            "calls_per_s": round(tally.calls / args.duration, 1),
            "ledger": ledger,
            "gateway_exit": code,
        }
        failures = []
        if tally.wrong:
            failures.append(f"{len(tally.wrong)} wrong answers")
        if tally.hangs:
            failures.append(f"{tally.hangs} hangs")
        if tally.errors:
            failures.append(f"{sum(tally.errors.values())} errors")
        if ledger["missing"] or ledger["doubled"]:
            failures.append(f"ledger: {ledger['missing']} missing, {ledger['doubled']} more than once")
        if not tally.answered:
            failures.append("nothing was answered")
        return finish("answers", summary, failures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (default 20)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default 64)")
    parser.add_argument("--timeout", type=float, default=30.0, help="a call longer than this is a hang")
    return asyncio.run(answers(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
