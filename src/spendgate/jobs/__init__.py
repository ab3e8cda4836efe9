"""Background jobs (batch poller, alert sender, report scheduler): run once across instances.

``server`` starts a :class:`JobRunner` in the lifespan; each :class:`Job` runs under a
lease-based :class:`LeaderLock` chosen by :func:`lock_for` (Redis, PostgreSQL advisory lock,
or the process on SQLite). See DESIGN §5.11 and the ``runner`` and ``locks`` modules.
"""

from __future__ import annotations

from spendgate.jobs.locks import LeaderLock, LocalLock, PostgresLock, lock_for
from spendgate.jobs.runner import MIN_LEASE, Job, JobRunner

__all__ = [
    "MIN_LEASE",
    "Job",
    "JobRunner",
    "LeaderLock",
    "LocalLock",
    "PostgresLock",
    "lock_for",
]
