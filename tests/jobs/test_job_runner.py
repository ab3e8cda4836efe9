"""The job runner: a job runs once per interval across runners, survives its own errors,
moves to another runner when its leader stops, and stops with close()."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from spendgate.jobs import Job, JobRunner, LeaderLock, LocalLock

MakeLock = Callable[[], LeaderLock]
INTERVAL = 0.1


def _recording_job(name: str, runs: list[str], runner_id: str) -> Job:
    async def run() -> None:
        runs.append(runner_id)

    return Job(name, INTERVAL, run)


async def test_two_runners_run_a_job_once_per_interval_and_hand_over(
    make_lock: MakeLock, lock_name: str
) -> None:
    runs: list[str] = []
    runners = {rid: JobRunner(make_lock()) for rid in ("a", "b")}
    for rid, runner in runners.items():
        runner.add(_recording_job(lock_name, runs, rid))
    try:
        for runner in runners.values():
            await runner.start()
        await asyncio.sleep(0.8)
        # One leader, once per interval: at most 9 runs in 0.8 s between the two (a loaded
        # machine sleeps longer, never shorter; both running would give ~18).
        assert 4 <= len(runs) <= 10, runs
        assert len(set(runs)) == 1, runs
        leader, other = runs[0], "b" if runs[0] == "a" else "a"

        await runners[leader].close()
        closed_at = len(runs)
        await asyncio.sleep(0.3)
        taken_over = runs[closed_at:]
        assert leader not in taken_over
        assert taken_over.count(other) >= 2, runs
    finally:
        for runner in runners.values():
            await runner.close()


async def test_a_failing_job_keeps_being_scheduled(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def explode() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError(f"boom {calls}")

    runner = JobRunner(LocalLock())
    runner.add(Job("sgt-explode", 0.02, explode))
    with caplog.at_level(logging.ERROR, logger="spendgate.jobs"):
        await runner.start()
        await asyncio.sleep(0.2)
        await runner.close()
    assert calls >= 3
    failures = [r for r in caplog.records if r.name == "spendgate.jobs" and r.levelno == logging.ERROR]
    assert len(failures) == calls
    assert failures[0].exc_info is not None and "boom 1" in str(failures[0].exc_info[1])


async def test_close_stops_everything_and_frees_the_leases(lock_name: str) -> None:
    started = asyncio.Event()
    quick: list[str] = []

    async def slow() -> None:
        started.set()
        await asyncio.sleep(60)

    runner = JobRunner(LocalLock())
    runner.add(_recording_job(lock_name, quick, "a"))
    runner.add(Job(lock_name + "-slow", INTERVAL, slow))
    await runner.start()
    await asyncio.wait_for(started.wait(), 2)
    await asyncio.wait_for(runner.close(), 1)  # a run in progress is cancelled, not awaited
    count = len(quick)
    assert count >= 1
    await asyncio.sleep(2 * INTERVAL)
    assert len(quick) == count
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("spendgate-job-")]
    other = LocalLock()
    assert await other.acquire(lock_name, 1) and await other.acquire(lock_name + "-slow", 1)
    await other.close()


class _ScriptedLock:
    """A lock whose answers are given in advance (True, False, or an exception to raise)."""

    def __init__(self, answers: list[bool | Exception]):
        self.answers = answers
        self.calls: list[str] = []

    async def _answer(self, call: str) -> bool:
        self.calls.append(call)
        answer = self.answers.pop(0) if self.answers else False
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def acquire(self, name: str, ttl: float) -> bool:
        return await self._answer("acquire")

    async def renew(self, name: str, ttl: float) -> bool:
        return await self._answer("renew")

    async def release(self, name: str) -> None:
        self.calls.append("release")

    async def close(self) -> None:
        self.calls.append("close")


async def test_a_lost_lease_stops_runs_until_acquired_again() -> None:
    # leader, renewed, lost, not re-acquired, lock unreachable, re-acquired, then never again
    lock = _ScriptedLock([True, True, False, False, ConnectionError("down"), True])
    runs = 0
    done = asyncio.Event()

    async def run() -> None:
        nonlocal runs
        runs += 1

    async def watch() -> None:
        while len(lock.calls) < 7:
            await asyncio.sleep(0.005)
        done.set()

    runner = JobRunner(lock)
    runner.add(Job("sgt-scripted", 0.01, run))
    await runner.start()
    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(done.wait(), 2)
    await runner.close()
    await watcher
    assert lock.calls[:7] == ["acquire", "renew", "renew", "acquire", "acquire", "acquire", "renew"]
    assert runs == 3  # after the first acquire, its renewal, and the re-acquire
    assert lock.calls[-1] == "close"


def test_job_names_are_unique_and_intervals_positive() -> None:
    async def run() -> None:
        return None

    runner = JobRunner(LocalLock())
    runner.add(Job("sgt-one", 1.0, run))
    with pytest.raises(ValueError, match="already registered"):
        runner.add(Job("sgt-one", 2.0, run))
    with pytest.raises(ValueError, match="positive"):
        runner.add(Job("sgt-two", 0, run))
    assert [job.name for job in runner.jobs] == ["sgt-one"]
    assert Job("x", 1.0, run).ttl == 10.0 and Job("x", 60.0, run).ttl == 180.0
    assert Job("x", 1.0, run, lease=2.5).ttl == 2.5
