"""The posting job: crontab validation, a persistent job store, pause, and missed runs."""

from __future__ import annotations

import asyncio
import datetime as dtm

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.i18n import texts_for
from bot.leader import LeaderJobStore, ProcessLock
from bot.schedule import Schedule
from bot.settings import RuntimeSettings
from common.crontab import CrontabError, parse_crontab
from common.db import Database, open_database
from harness import pg

EN = texts_for("en")

TZ = "Europe/Moscow"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("* * *", "5 fields"),
        ("61 * * * *", r"minute field '61': .*maximum value \(59\)"),
        ("0 */0 * * *", "hour field '[*]/0': Increment must be higher than 0"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 * * 9", "weekday 9"),
        ("every day", "5 fields"),
    ],
)
def test_bad_crontab_lines_are_refused_with_the_reason(line, message):
    with pytest.raises(CrontabError, match=message):
        parse_crontab(line, TZ)


def test_crontab_weekdays_count_from_sunday_like_cron():
    start = dtm.datetime(2026, 11, 21, tzinfo=dtm.UTC)  # a Saturday
    for line in ("0 12 * * 0", "0 12 * * 7", "0 12 * * sun"):
        fire = parse_crontab(line, "UTC").get_next_fire_time(None, start)
        assert fire.strftime("%A %H:%M") == "Sunday 12:00", line
    fire = parse_crontab("30 9 * * 1-5", "UTC").get_next_fire_time(None, start)
    assert fire.strftime("%A %H:%M") == "Monday 09:30"


def _schedule(tmp_path, calls: list) -> Schedule:
    scheduler = AsyncIOScheduler(timezone=TZ)
    db_path = tmp_path / "jobs.sqlite3"
    engine = sa.create_engine(f"sqlite:///{db_path}")
    schedule = Schedule(scheduler, engine, TZ, 3600, key=str(db_path),
                        leadership=ProcessLock(Database(engine), "schedule"))

    async def post() -> None:
        calls.append(dtm.datetime.now(dtm.UTC))

    schedule.bind(post)
    schedule.add_store()
    return schedule


def test_job_survives_restarts_with_its_time_and_paused_state(tmp_path):
    async def body():
        first = _schedule(tmp_path, [])
        first.scheduler.start()
        first.install("0 */4 * * *")
        next_run = first.job().next_run_time
        assert next_run.hour % 4 == 0 and next_run.minute == 0
        first.scheduler.shutdown(wait=False)

        second = _schedule(tmp_path, [])
        second.scheduler.start()
        second.install("0 */4 * * *")  # same line: the stored job is kept as it is
        assert second.job().next_run_time == next_run
        assert second.pause() is True and second.pause() is False
        assert "paused" in second.describe(EN)
        second.scheduler.shutdown(wait=False)

        third = _schedule(tmp_path, [])
        third.scheduler.start()
        third.install("0 */4 * * *")
        assert third.job().next_run_time is None  # still paused after a restart
        third.set_cron("15 10 * * *")  # a new line keeps the job paused
        assert third.job().next_run_time is None and "15 10 * * *" in third.describe(EN)
        assert third.resume() is True and third.resume() is False
        assert third.job().next_run_time.strftime("%H:%M") == "10:15"
        with pytest.raises(CrontabError):
            third.set_cron("99 * * * *")
        assert "15 10 * * *" in third.describe(EN)  # a bad line changes nothing
        third.scheduler.shutdown(wait=False)

    asyncio.run(body())


def test_a_bot_down_over_several_run_times_posts_once(tmp_path):
    async def body():
        calls: list = []
        now = dtm.datetime.now(dtm.UTC)
        # Every minute but this one and the next two: 5 run times were missed in the last 5
        # minutes, and no regular run can fall inside the test's second (a plain "* * * * *"
        # made a second post whenever the test crossed a minute boundary). TZ is a whole number
        # of hours from UTC, so its minutes are these.
        quiet = {(now.minute + k) % 60 for k in range(3)}
        cron = ",".join(str(m) for m in range(60) if m not in quiet) + " * * * *"
        before = _schedule(tmp_path, calls)
        before.scheduler.start(paused=True)  # store the job without running it
        before.install(cron)
        # The bot went down 5 minutes ago: 5 run times were missed.
        before.job().modify(next_run_time=now - dtm.timedelta(minutes=5, seconds=1))
        before.scheduler.shutdown(wait=False)

        after = _schedule(tmp_path, calls)
        after.scheduler.start()
        after.install(cron)
        await asyncio.sleep(1.0)
        assert len(calls) == 1  # coalesced: one post, not five
        assert after.job().next_run_time > dtm.datetime.now(dtm.UTC)
        after.scheduler.shutdown(wait=False)

    asyncio.run(body())


def test_run_now_fires_the_stored_job(tmp_path):
    async def body():
        calls: list = []
        schedule = _schedule(tmp_path, calls)
        schedule.scheduler.start()
        schedule.install("0 3 * * *")
        schedule.run_now()
        for _ in range(50):
            if calls:
                break
            await asyncio.sleep(0.05)
        assert len(calls) == 1
        assert schedule.job().next_run_time.strftime("%H:%M") == "03:00"
        schedule.scheduler.shutdown(wait=False)

    asyncio.run(body())


def test_runtime_changes_hold_until_the_config_itself_changes(database, tmp_path):
    state = RuntimeSettings(database)
    assert state.schedule_cron("0 */4 * * *") == "0 */4 * * *"
    state.set_schedule_cron("0 */4 * * *", "30 9 * * 1")  # an admin's /schedule
    assert state.schedule_cron("0 */4 * * *") == "30 9 * * 1"
    assert state.schedule_cron("0 8 * * *") == "0 8 * * *"  # the operator edited the config

    served, previous = tmp_path / "new", tmp_path / "old"
    served.mkdir()
    previous.mkdir()
    state.swap_model("bundled", str(served), str(previous))
    assert state.served_model("bundled") == str(served)
    assert state.previous_model("bundled") == str(previous)
    assert state.served_model("other") == "other" and state.previous_model("other") is None
    served.rmdir()  # the swapped-in model was deleted: fall back to the config
    assert state.served_model("bundled") == "bundled"


def test_one_process_leads_on_postgresql_and_another_takes_over_when_it_dies():
    async def body(first, second):
        leader, follower = ProcessLock(first, "schedule"), ProcessLock(second, "schedule")
        assert leader.try_take() and leader.held()
        assert not follower.try_take() and not follower.held()
        assert leader.try_take()  # leading already: still the leader
        scheduler = AsyncIOScheduler(timezone=TZ)
        schedule = Schedule(scheduler, first.engine, TZ, 3600, key="k", leadership=leader)
        schedule.add_store()
        scheduler.start(paused=True)  # nothing runs: the stores are only looked at
        schedule.install("0 3 * * *")
        schedule.run_now()  # due now, in the shared store
        now = dtm.datetime.now(dtm.UTC) + dtm.timedelta(seconds=1)
        theirs = LeaderJobStore(follower, engine=second.engine)
        theirs.start(None, "jobs")
        assert [job.id for job in scheduler._jobstores["neurobugurt"].get_due_jobs(now)]
        assert theirs.get_due_jobs(now) == [] and theirs.get_next_run_time() is None
        leader.release()  # its process died: PostgreSQL frees the lock with the session
        assert not leader.held() and follower.try_take()
        assert [job.id for job in theirs.get_due_jobs(now)]  # the new leader runs it
        scheduler.shutdown(wait=False)

    with pg.fresh_schema() as url:
        first, second = open_database(url), open_database(url)
        try:
            asyncio.run(body(first, second))
        finally:
            first.close()
            second.close()
