"""Benchmark: this tree's SDK instrumentation against another tree's, in one process (#14).

Separate runs of ``bench/sdk_overhead.py`` move by 10–35 µs on this shared 2-core machine,
as much as a change to the metered path is worth, so a change is measured here instead:
**A**, the plain client; **B other**, ``instrument(A)`` of another tree's ``spendgate/sdk``
package (loaded under another name, ``spendgate_sdk_other``, over this tree's ``core/``
and ``providers/``); **B this**, ``spendgate.instrument(A)``. The order of the three is
rotated every call; per call this thread's CPU time is kept. Reported per case: the CPU
time added by each B (median minus A's median) and its range over the rounds.

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/sdk_overhead_ab.py --other /tmp/before/src --upstream replay

Only ``sdk/`` is compared: a change to shared code (``core/``, ``providers/``) shows in
neither B. Rotating three arms keeps every cache colder than the two of
``sdk_overhead.py``, so the figures are higher than its own; compare the two B's.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import sdk_overhead as base
import spendgate

OTHER = "spendgate_sdk_other"


def load_other(src: Path, into: Path) -> ModuleType:
    """``src/spendgate/sdk`` of another tree, importable as :data:`OTHER`."""
    package = into / OTHER
    shutil.copytree(src / "spendgate" / "sdk", package)
    for module in package.glob("*.py"):
        module.write_text(re.sub(r"\bspendgate\.sdk\b", OTHER, module.read_text()))
    sys.path.insert(0, str(into))
    return importlib.import_module(OTHER)


def _noop_callback(kwargs: Any, response: Any, start: Any, end: Any) -> None:
    return None


@contextlib.contextmanager
def settings(case: str, other: ModuleType) -> Iterator[None]:
    """The case's budget and callback, set in both trees."""
    if case != "chat-budget-callback":
        yield
        return
    budget, callbacks = (
        importlib.import_module(f"{OTHER}.budget"),
        importlib.import_module(f"{OTHER}.callbacks"),
    )
    spendgate.max_budget = 1_000_000.0
    spendgate.success_callback = [_noop_callback]
    budget.BUDGET.max_budget = 1_000_000.0
    callbacks.success_callback[:] = [_noop_callback]
    try:
        yield
    finally:
        spendgate.max_budget = None
        spendgate.success_callback = []
        budget.BUDGET.max_budget = None
        callbacks.success_callback[:] = []


def run(case: str, arms: list[tuple[str, Callable[[], Any]]], calls: int, rounds: int) -> dict[str, Any]:
    cpu: dict[str, list[int]] = {name: [] for name, _ in arms}
    per_round: dict[str, list[float]] = {name: [] for name, _ in arms}
    for _ in range(200):
        for _, fn in arms:
            fn()
    for _ in range(rounds):
        start = {name: len(v) for name, v in cpu.items()}
        for i in range(calls // rounds):
            for name, fn in arms[i % 3 :] + arms[: i % 3]:
                t = time.thread_time_ns()
                fn()
                cpu[name].append(time.thread_time_ns() - t)
        for name in cpu:
            per_round[name].append(statistics.median(cpu[name][start[name] :]) / 1e3)
    plain = statistics.median(cpu["A"]) / 1e3
    out: dict[str, Any] = {"case": case, "plain": plain}
    for name in ("other", "this"):
        added = [b - a for a, b in zip(per_round["A"], per_round[name], strict=True)]
        out[name] = (statistics.median(cpu[name]) / 1e3 - plain, min(added), max(added))
    return out


def other_arm(case: str, openai_client: Any, anthropic_client: Any) -> Callable[[], Any]:
    """The case's call with the other tree's instrumented clients."""
    if case == "messages":
        return lambda: base._messages(anthropic_client)
    call = base._chat_stream if case == "chat-stream" else base._chat
    return lambda: call(openai_client)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--other", type=Path, required=True, help="another tree's src directory")
    parser.add_argument("--upstream", choices=("mock", "replay"), default="replay")
    parser.add_argument("--case", action="append", choices=base.CASES, help="repeatable; default: all")
    parser.add_argument("--calls", type=int, default=6000, help="measured calls per arm per case")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        other = load_other(args.other.resolve(), Path(tmp))
        instrument_other = importlib.import_module(f"{OTHER}.instrument").instrument
        print(f"machine: {base._machine()}; other tree: {args.other}; {args.calls} calls per arm per case")
        print("| upstream | case | A plain | B other | B this | rounds, other | rounds, this |")
        print("|---|---|---:|---:|---:|---:|---:|")
        with base.mock_provider() as url:
            clients = base.build_clients(url, args.upstream)
            openai_other = instrument_other(clients.openai_a)
            anthropic_other = instrument_other(clients.anthropic_a)
            try:
                for case in args.case or base.CASES:
                    plain, this = base.arms(case, clients)
                    theirs = other_arm(case, openai_other, anthropic_other)
                    arms = [("A", plain), ("other", theirs), ("this", this)]
                    with settings(case, other):
                        r = run(case, arms, args.calls, args.rounds)
                    (o, olo, ohi), (t, tlo, thi) = r["other"], r["this"]
                    print(
                        f"| {args.upstream} | {case} | {r['plain']:,.0f} | {o:.1f} | **{t:.1f}** "
                        f"| {olo:.0f} – {ohi:.0f} | {tlo:.0f} – {thi:.0f} |",
                        flush=True,
                    )
            finally:
                clients.close()


if __name__ == "__main__":
    main()
