"""A job marked ``everywhere`` runs on every runner, without the leader lock: it keeps running
when the lock's store is down (the storage health check must), where a leader job stops."""

from __future__ import annotations

import asyncio
import socket

from spendgate.jobs import Job, JobRunner, LocalLock
from spendgate.jobs.redis_lock import RedisLock


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_everywhere_jobs_run_on_every_runner_even_with_the_lock_unreachable(lock_name: str) -> None:
    runs: list[str] = []

    def job(name: str, runner_id: str, *, everywhere: bool) -> Job:
        async def run() -> None:
            runs.append(f"{name}:{runner_id}")

        return Job(name, 0.05, run, everywhere=everywhere)

    # A Redis nobody listens on: every acquire fails (connection refused).
    url = f"redis://127.0.0.1:{_closed_port()}/12"
    runners = {rid: JobRunner(RedisLock.from_url(url)) for rid in ("a", "b")}
    for rid, runner in runners.items():
        runner.add(job(f"{lock_name}-check", rid, everywhere=True))
        runner.add(job(f"{lock_name}-leader", rid, everywhere=False))
    try:
        for runner in runners.values():
            await runner.start()
        await asyncio.sleep(0.5)
    finally:
        for runner in runners.values():
            await runner.close()
    assert runs.count(f"{lock_name}-check:a") >= 2 and runs.count(f"{lock_name}-check:b") >= 2, runs
    assert not [r for r in runs if "-leader:" in r], runs  # no leader without the lock


async def test_an_everywhere_job_takes_no_lease(lock_name: str) -> None:
    ran = asyncio.Event()

    async def run() -> None:
        ran.set()

    runner = JobRunner(LocalLock("everywhere"))
    runner.add(Job(lock_name, 0.05, run, everywhere=True))
    await runner.start()
    try:
        await asyncio.wait_for(ran.wait(), 5)
        # Nobody holds the name's lease: another contender takes it at once.
        assert await LocalLock("everywhere").acquire(lock_name, 10)
    finally:
        await runner.close()
