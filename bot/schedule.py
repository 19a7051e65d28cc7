"""Scheduled posting: one persistent APScheduler cron job on the scheduler of PTB's JobQueue.

The job lives in a SQLAlchemy job store (the bot's database, or schedule.jobstore_url),
so its next run time and its paused state survive restarts. It has a fixed id; `coalesce` and
`misfire_grace_time` make a bot that was down over several run times post once on start (if the
last missed time is within the grace period), never once per missed time.

Several bot processes on one PostgreSQL share the store; only the leading one runs the job
(bot/leader.py), and a process installs the job when it takes the lead.

A stored job must name its function by an importable reference and carry only picklable
arguments, so it names `run_scheduled_post` with a key; the live callback for that key is
registered here by the running bot (the one module-level table in the bot, for that reason).
"""

from __future__ import annotations

import datetime as dtm
import logging
from collections.abc import Awaitable, Callable

from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.engine import Engine

from bot.i18n import Texts
from bot.leader import LeaderJobStore, ProcessLock
from common.crontab import parse_crontab
from common.db import create_table

log = logging.getLogger(__name__)

JOB_ID = "neurobugurt-post"
JOBSTORE = "neurobugurt"
_CALLBACKS: dict[str, Callable[[], Awaitable[None]]] = {}


async def run_scheduled_post(key: str) -> None:
    """The stored job's function: runs the post callback of the bot that owns `key`."""
    callback = _CALLBACKS.get(key)
    if callback is None:
        log.error("scheduled post for %s: no running bot registered it", key)
        return
    await callback()


class Schedule:
    """The posting job on `scheduler`: install on start, change, pause, resume, inspect."""

    def __init__(
        self,
        scheduler: BaseScheduler,
        jobstore_engine: Engine,
        timezone: str,
        misfire_grace_seconds: int,
        key: str,
        leadership: ProcessLock,
    ) -> None:
        self.scheduler = scheduler
        self.jobstore_engine = jobstore_engine
        self.timezone = timezone
        self.misfire_grace_seconds = misfire_grace_seconds
        self.key = key
        self.leadership = leadership
        self._led = False  # led at the last `lead`: the job was installed then

    def bind(self, post: Callable[[], Awaitable[None]]) -> None:
        """Make `post` what the stored job runs in this process."""
        _CALLBACKS[self.key] = post

    def add_store(self) -> None:
        """Attach the persistent job store; call before the scheduler starts. Its table is made
        here, one process at a time: bots starting together on one PostgreSQL would otherwise
        race to create it when their schedulers start."""
        if JOBSTORE not in self.scheduler._jobstores:  # noqa: SLF001 (no public lookup)
            store = LeaderJobStore(self.leadership, engine=self.jobstore_engine)
            create_table(self.jobstore_engine, store.jobs_t)
            self.scheduler.add_jobstore(store, JOBSTORE)

    def lead(self, cron: Callable[[], str]) -> bool:
        """Take the lead if it is free (at start, then every LEAD_SECONDS); on taking it,
        install the job for `cron()` and wake the scheduler, so that a run missed while no
        process led fires now, once. Whether this process leads."""
        was, self._led = self._led, self.leadership.try_take()
        if self._led and not was:
            self.install(cron())
            self.scheduler.wakeup()
        return self._led

    def install(self, cron: str) -> None:
        """Keep the stored job if made for this crontab (missed runs then fire), else replace."""
        job = self.job()
        same = job is not None and job.name == self._name(cron) and job.args == (self.key,)
        if same and str(job.trigger.timezone) == self.timezone:
            log.info("schedule kept: %s, next run %s", cron, job.next_run_time)
            return
        paused = job is not None and job.next_run_time is None
        self._add(cron, paused)

    def set_cron(self, cron: str) -> Job:
        """Replace the job with a new crontab line (validated), keeping its paused state."""
        parse_crontab(cron, self.timezone)
        job = self.job()
        return self._add(cron, paused=job is not None and job.next_run_time is None)

    def _add(self, cron: str, paused: bool) -> Job:
        job = self.scheduler.add_job(
            "bot.schedule:run_scheduled_post",
            trigger=parse_crontab(cron, self.timezone),
            args=[self.key],
            id=JOB_ID,
            name=self._name(cron),
            jobstore=JOBSTORE,
            replace_existing=True,
            coalesce=True,
            misfire_grace_time=self.misfire_grace_seconds,
            max_instances=1,
        )
        if paused:
            job.pause()
        log.info("schedule set: %s (%s)%s", cron, self.timezone, ", paused" if paused else "")
        return job

    def job(self) -> Job | None:
        return self.scheduler.get_job(JOB_ID, jobstore=JOBSTORE)

    def pause(self) -> bool:
        """Pause; False if it was already paused."""
        job = self.job()
        if job is None or job.next_run_time is None:
            return False
        job.pause()
        return True

    def resume(self) -> bool:
        """Resume; False if it was not paused."""
        job = self.job()
        if job is None or job.next_run_time is not None:
            return False
        job.resume()
        return True

    def run_now(self) -> None:
        """Make the stored job due now, as if its time had come (tests use it; no command does)."""
        job = self.job()
        if job is None:
            raise JobLookupError(JOB_ID)
        job.modify(next_run_time=dtm.datetime.now(dtm.UTC))

    def describe(self, tr: Texts) -> str:
        """'0 */4 * * * (Europe/Moscow), next 2026-01-01 04:00 MSK' in the reader's language."""
        job = self.job()
        if job is None:
            return tr.t("schedule.not_installed")
        cron = job.name.removeprefix("post ")
        if job.next_run_time is None:
            return tr.t("schedule.paused", cron=cron, timezone=self.timezone)
        return tr.t("schedule.next", cron=cron, timezone=self.timezone, next=job.next_run_time)

    def close(self) -> None:
        _CALLBACKS.pop(self.key, None)
        self.leadership.release()

    @staticmethod
    def _name(cron: str) -> str:
        return "post " + " ".join(cron.split())
