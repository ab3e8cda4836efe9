"""The job runner: background work run once across instances, under a leader lock per job.

``server`` builds one :class:`JobRunner` with a lock from :func:`~spendgate.jobs.locks.lock_for`,
adds the jobs (batch poller, alert sender, report scheduler …), starts it in the lifespan
and closes it on the way out::

    runner = JobRunner(lock_for(engine, redis_url))
    runner.add(Job("batch-poller", 30.0, poller.poll_once))
    await runner.start()
    ...
    await runner.close()

Each job is a loop: be leader for the job's name (acquire the lease, or renew the one held),
run once if leader, sleep ``interval`` seconds, repeat. A run that raises is logged (logger
``spendgate.jobs``) and the loop goes on; so does a lock that cannot be reached (the job is
then not leader). A lost lease stops the runs until the lease is acquired again. The lease
lasts ``lease`` seconds (default: three intervals, at least :data:`MIN_LEASE`), renewed
before every run, so a crashed leader's jobs move to another instance within one lease.
Effects must be idempotent anyway (DESIGN §5.11): a slow run may outlive its lease.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from spendgate.jobs.locks import LeaderLock

__all__ = ["MIN_LEASE", "Job", "JobRunner"]

logger = logging.getLogger("spendgate.jobs")

MIN_LEASE = 10.0
_RELEASE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Job:
    """A named piece of periodic work: ``run()`` every ``interval`` seconds, on one instance."""

    name: str
    interval: float
    run: Callable[[], Awaitable[None]]
    lease: float | None = None  # seconds; None: max(3 × interval, MIN_LEASE)
    jitter: float = 0.0
    """Up to this many seconds added to each wait at random, so instances started together
    do not all ask their providers at the same moment."""
    everywhere: bool = False
    """Run on every instance, without the leader lock: for checks of the process's own state
    (its journal) or of the stores the lock lives in (a Redis or database outage would
    leave no leader). Its effects must dedupe themselves (an alert's unique row)."""

    @property
    def ttl(self) -> float:
        return self.lease if self.lease is not None else max(3 * self.interval, MIN_LEASE)


class JobRunner:
    """Runs every added job in its own task; owns ``lock`` and closes it on :meth:`close`."""

    def __init__(self, lock: LeaderLock):
        self.lock = lock
        self._jobs: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False

    @property
    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def add(self, job: Job) -> None:
        """Register a job (names are unique); started at once if the runner is running."""
        if job.name in self._jobs:
            raise ValueError(f"a job named {job.name!r} is already registered")
        if job.interval <= 0:
            raise ValueError(f"job {job.name!r}: interval must be positive")
        self._jobs[job.name] = job
        if self._started:
            self._spawn(job)

    async def start(self) -> None:
        """Start a loop per registered job (idempotent)."""
        if self._started:
            return
        self._started = True
        for job in self._jobs.values():
            self._spawn(job)

    async def close(self) -> None:
        """Cancel every loop, wait for them (each releases its lease), then close the lock."""
        self._started = False
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.lock.close()

    def _spawn(self, job: Job) -> None:
        self._tasks[job.name] = asyncio.create_task(self._loop(job), name=f"spendgate-job-{job.name}")

    async def _loop(self, job: Job) -> None:
        leader = False
        try:
            while True:
                leader = True if job.everywhere else await self._lead(job, leader)
                if leader:
                    try:
                        await job.run()
                    except Exception:
                        logger.exception("job %s failed; it runs again in %ss", job.name, job.interval)
                await asyncio.sleep(job.interval + (random.uniform(0, job.jitter) if job.jitter > 0 else 0.0))
        finally:
            if leader and not job.everywhere:
                try:
                    await asyncio.wait_for(self.lock.release(job.name), _RELEASE_TIMEOUT)
                except Exception:
                    logger.warning("job %s: could not release its lease", job.name, exc_info=True)

    async def _lead(self, job: Job, leader: bool) -> bool:
        """Whether this runner is (still) leader for ``job``, logging every change."""
        try:
            if leader:
                now = await self.lock.renew(job.name, job.ttl)
            else:
                now = await self.lock.acquire(job.name, job.ttl)
        except Exception:
            logger.warning("job %s: the leader lock is unreachable", job.name, exc_info=True)
            now = False
        if now and not leader:
            logger.info("job %s: leader on this instance", job.name)
        elif leader and not now:
            logger.warning("job %s: lease lost; not running until it is acquired again", job.name)
        return now
