"""Work one bot process at a time does: the schedule (its leader) and /retrain, each under a
PostgreSQL advisory lock (`ProcessLock`); each process's sign of life (`ProcessLife`) is one too.

APScheduler 3 does not support several schedulers on one job store: each would run every due
job. So every process keeps the posting job's store (admins' /schedule, /pause and /resume work
in any of them), but only the leader's scheduler is shown its due jobs (`LeaderJobStore`).

A lock is a session-level advisory lock held on a connection of its own. When its process
dies, PostgreSQL ends the session and frees the lock. For the schedule, the others try to take
it every `LEAD_SECONDS` (the bot's periodic job), and the new leader then runs what came due
meanwhile once (the job coalesces missed run times). A leader checks that its lock connection still
answers before it runs a job: one cut by a database restart has lost the lock. On SQLite (one
process) a lock is always this process's.
"""

from __future__ import annotations

import datetime as dtm
import logging
import os
import socket
import time
import uuid
import zlib

import sqlalchemy as sa
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy.exc import DBAPIError

from common.db import Database

log = logging.getLogger(__name__)
LEAD_SECONDS = 10.0  # how often a follower tries to take the lead: well within a minute
# After a database restart cut every session, a process that took its sign of life back judges
# no other dead for this long: each takes its own back at its next inbox pass (every 10 s).
REGAIN_GRACE_SECONDS = 30.0


def lock_key(conn: sa.Connection, name: str) -> int:
    """The advisory lock number of `name`, keyed by schema: bots in separate schemas of one
    database lock separately."""
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    return zlib.crc32(f"neurobugurt-{name}:{schema}".encode())


class ProcessLock:
    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name  # 'schedule', 'retrain', 'life-OWNER'
        self._conn: sa.Connection | None = None  # holds the lock while this process has it
        self._key = 0  # the lock's number (by name and schema), known once taken
        self.takes = 0  # how many times this process has taken it (again after a lost one)

    def held(self) -> bool:
        if not self.db.postgres:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.exec_driver_sql("SELECT 1")
        except DBAPIError:
            log.warning("%s: lost the lock (database connection cut)", self.name)
            self._drop()
            return False
        return True

    def try_take(self) -> bool:
        """Take the lock if no live process holds it; whether this process holds it now."""
        if self.held():
            return True
        conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            key = lock_key(conn, self.name)
            taken = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"),
                                 {"key": key}).scalar_one()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not taken:
            conn.close()
            return False
        log.info("%s: this process holds the lock", self.name)
        self._conn, self._key = conn, key
        self.takes += 1
        return True

    def release(self) -> None:
        """Unlock at once (closing the connection alone frees it only once the server has
        noticed), then close the lock's connection."""
        if self._conn is None:
            return
        try:
            self._conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        except DBAPIError:
            log.warning("%s: the lock's connection was already cut", self.name)
        self._drop()

    def _drop(self) -> None:
        """Close the lock's connection for good (not back to the pool, where it would keep
        the lock): the lock is free for another process at once."""
        conn, self._conn = self._conn, None
        conn.invalidate()
        conn.close()


class LeaderJobStore(SQLAlchemyJobStore):
    """APScheduler's SQLAlchemy job store whose due jobs only the leading process sees.

    While the database is out of reach no job is handed out: APScheduler starts a due job
    before it stores the job's next run time, and a run whose next time was never stored would
    run again once the database is back. A next run time the database could not take is kept
    and stored before due jobs are read again."""

    def __init__(self, leadership: ProcessLock, **options) -> None:
        super().__init__(**options)
        self.leadership = leadership
        self._unsaved: dict[str, Job] = {}

    def get_due_jobs(self, now):
        if not self.leadership.held() or not self._saved():
            return []
        return super().get_due_jobs(now)

    def get_next_run_time(self):
        if not self.leadership.held():
            return None  # a follower's scheduler must not wake for the job: not due for it
        if self._unsaved or self.leadership.db.outage is not None:  # look again meanwhile
            return dtm.datetime.now(dtm.UTC) + dtm.timedelta(seconds=LEAD_SECONDS)
        return super().get_next_run_time()

    def update_job(self, job: Job) -> None:
        try:
            super().update_job(job)
        except DBAPIError as exc:
            if not self.leadership.db.failed(exc):
                raise
            self._unsaved[job.id] = job

    def _saved(self) -> bool:
        """Whether the database is within reach and every kept next run time is stored."""
        try:
            for job_id, job in list(self._unsaved.items()):
                super().update_job(job)
                del self._unsaved[job_id]
        except DBAPIError as exc:
            if not self.leadership.db.failed(exc):
                raise
        return not self._unsaved and self.leadership.db.outage is None


class ProcessLife:
    """This process's name in the rows it claims (the inbox's updates, the outbox's deliveries)
    and its sign of life: a lock held while it lives, which PostgreSQL frees when the process
    dies, so another process tells a dead owner's claims from a live one's at once. On SQLite
    (one process) every other owner is a previous run of the bot: dead."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Unique even for a pid reused in another container.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = ProcessLock(db, self._lock_name(self.owner))
        self._regained = -REGAIN_GRACE_SECONDS  # monotonic time this process last took it again

    @staticmethod
    def _lock_name(owner: str) -> str:
        return f"life-{owner}"

    def keep(self) -> None:
        """Hold the sign of life: take it, or take it again after a database restart cut it."""
        takes = self._lock.takes
        self._lock.try_take()
        if takes and self._lock.takes > takes:  # a restart cut every process's sign of life
            self._regained = time.monotonic()

    def end(self) -> None:
        self._lock.release()

    def dead(self, owner: str) -> bool:
        """Whether the process named `owner` has died (its sign of life is free)."""
        if owner == self.owner:
            return False
        if not self.db.postgres:
            return True
        if time.monotonic() - self._regained < REGAIN_GRACE_SECONDS:
            return False  # the others are taking theirs back too: not dead, only cut off
        with self.db.engine.connect() as conn:  # take the lock and let it go at once, to tell
            key = lock_key(conn, self._lock_name(owner))
            free = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"),
                                {"key": key}).scalar_one()
            if free:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            conn.commit()
        return bool(free)
