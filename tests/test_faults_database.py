"""The database goes away under load: a private PostgreSQL restarted (`pg_ctl restart -m fast`)
and stopped for 20 s under two webhook bot processes, and a SQLite file whose write lock a
backup holds for 20 s.

Through each outage, while 50 users send /bugurt and a scheduled post falls due: every update
is answered exactly once (a post, or one line asking to send it again), the scheduled post goes
out once, no pooled post is handed out twice, each process logs "database unavailable" once per
outage and no traceback, and /status tells the admin while it lasts.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bot.i18n import texts_for
from harness.fakes.telegram import CHANNEL_ID
from harness.fakes.webhook import WebhookTelegram
from harness.peers import prefill, start_webhook_bot, start_webhook_peers
from harness.pipeline import (
    ADMIN,
    Child,
    bot_config,
    integrity,
    query,
    rewind_posting_job,
    wait_until,
)
from tests.pgserver import PrivateServer

pytestmark = pytest.mark.slow  # real bot processes and a real database server stopped

USERS = 50
OUTAGE_SECONDS = 20  # longer than every periodic job's interval (10-15 s): each meets it
DOWN = "database unavailable"


@pytest.fixture
def hooked():
    server = WebhookTelegram().start()
    yield server
    server.stop()


def _answers(server: WebhookTelegram, users: range) -> dict[int, list[str]]:
    """Each user's messages from the bot so far."""
    answers: dict[int, list[str]] = {user: [] for user in users}
    for call in server.calls_of("sendMessage"):
        if call.params["chat_id"] in answers:
            answers[call.params["chat_id"]].append(call.params["text"])
    return answers


def _burst(server: WebhookTelegram, users: range, outage) -> dict[int, list[str]]:
    """/bugurt from every user with `outage()` run in the middle of their delivery; each
    user's answers once all are answered and a second answer would have come."""
    before = len(server.delivered)
    for user in users:
        server.send_command("/bugurt", user_id=user)
    wait_until(lambda: len(server.delivered) >= before + len(users) // 5, 60, "a fifth delivered")
    outage()
    wait_until(lambda: all(_answers(server, users).values()), 120, "every /bugurt answered")
    time.sleep(2)  # a second answer to any of them would come within this
    return _answers(server, users)


def _answered_once(answers: dict[int, list[str]], ready: set[str], seen: set[str]) -> int:
    """Every user got one message: a pooled post never handed out before, or the outage's
    line; how many got the outage's line."""
    assert all(len(texts_) == 1 for texts_ in answers.values()), answers
    down = texts_for("en").t("storage_down")
    posts = [texts_[0] for texts_ in answers.values() if texts_[0] != down]
    assert set(posts) <= ready and len(set(posts)) == len(posts) and not seen & set(posts)
    seen |= set(posts)
    return len(answers) - len(posts)


def _status(server: WebhookTelegram) -> str:
    after = len(server.calls)
    server.send_command("/status", user_id=ADMIN)
    return server.wait_for("sendMessage", lambda p: p["chat_id"] == ADMIN, 60, after).params[
        "text"]


def _posted_once(server: WebhookTelegram, expected: int) -> None:
    wait_until(lambda: len(server.messages_in(CHANNEL_ID)) >= expected, 90, "the scheduled post")
    time.sleep(12)  # longer than a follower's try to lead: it would have posted by now
    assert len(server.messages_in(CHANNEL_ID)) == expected


def _clean_log(bot: Child, outages: int) -> None:
    """At most one "database unavailable" per outage, each followed by its end; no traceback."""
    log = bot.stderr
    assert "Traceback" not in log and "error while handling" not in log, log[-4000:]
    assert 1 <= log.count(DOWN) <= outages, log[-4000:]
    assert log.count("database available again") == log.count(DOWN), log[-4000:]


def test_two_processes_ride_out_a_postgresql_restart_and_a_20_s_stop(tmp_path, bot_model,
                                                                     hooked):
    with PrivateServer() as server:
        ready = prefill(server.url, str(bot_model), per_temperature=3 * USERS)
        bots = start_webhook_peers(tmp_path, bot_model, hooked, server.url, ("a", "b"))
        seen: set[str] = set()

        # 1. pg_ctl restart -m fast while the first burst is delivered and a post is due
        rewind_posting_job(server.url, seconds=5)
        _answered_once(_burst(hooked, range(1000, 1000 + USERS), server.restart), ready, seen)
        _posted_once(hooked, expected=1)

        # 2. stopped for 20 s: the burst and the admin's /status meet the outage
        rewind_posting_job(server.url, seconds=5)
        stopped: list[float] = []

        def stop() -> None:
            server.stop()
            stopped.append(time.monotonic())

        answers = _burst(hooked, range(2000, 2000 + USERS), stop)
        status = _status(hooked)
        assert status.startswith("Database: OUT OF REACH since "), status
        assert "Model: " in status
        assert len(hooked.messages_in(CHANNEL_ID)) == 1  # the post waits for the database
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped[0])))
        server.start()
        assert _answered_once(answers, ready, seen) > 0  # some met the outage
        _posted_once(hooked, expected=2)

        # 3. back: answers come from the pool again, none twice, and /status says so
        after = _answers(hooked, range(3000, 3000 + USERS))
        for user in after:
            hooked.send_command("/bugurt", user_id=user)
        wait_until(lambda: all(_answers(hooked, range(3000, 3000 + USERS)).values()), 120,
                   "the burst after the outage answered")
        assert _answered_once(_answers(hooked, range(3000, 3000 + USERS)), ready, seen) == 0
        assert "reachable" in _status(hooked).splitlines()[-1]
        for bot in bots:
            assert bot.stop() == 0, bot.stderr[-3000:]
            _clean_log(bot, outages=2)



def _backup_holding_the_write_lock(db: Path, copy: Path, seconds: float) -> threading.Thread:
    """A backup in progress: it takes SQLite's write lock (so the file and its WAL stay
    consistent), copies the file and holds the lock for `seconds` in all (a slow disk)."""
    taken = threading.Event()

    def backup() -> None:
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            began = time.monotonic()
            for path in (db, db.with_name(db.name + "-wal")):
                if path.exists():
                    shutil.copyfile(path, copy.with_name(copy.name + path.name[len(db.name):]))
            time.sleep(max(0.0, seconds - (time.monotonic() - began)))
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    thread = threading.Thread(target=backup, daemon=True)
    thread.start()
    assert taken.wait(30)
    return thread


def test_one_process_rides_out_a_backup_holding_the_sqlite_write_lock_for_20_s(
    tmp_path, bot_model, hooked
):
    db = tmp_path / "a" / "data" / "neurobugurt.sqlite3"
    ready = prefill(f"sqlite:///{db}", str(bot_model), per_temperature=2 * USERS)
    raw = bot_config(tmp_path / "a", bot_model, hooked, cooldown_seconds=0)
    raw["pool"] = {"size": 1, "channel_candidates": 0, "channel_searches": 0}
    bot, hook = start_webhook_bot(tmp_path / "a", raw, hooked)
    hooked.targets = [hook]
    seen: set[str] = set()
    backups: list[threading.Thread] = []

    def backup() -> None:
        rewind_posting_job(db, seconds=-3)  # due 3 s from now: while the lock is held
        backups.append(_backup_holding_the_write_lock(db, tmp_path / "backup.sqlite3",
                                                      OUTAGE_SECONDS))

    answers = _burst(hooked, range(1000, 1000 + USERS), backup)
    status = _status(hooked)
    assert backups[0].is_alive(), "the lock ended before /status: make the outage longer"
    assert status.startswith("Database: OUT OF REACH since "), status
    assert "database is locked" in status.splitlines()[0]
    backups[0].join(60)
    assert _answered_once(answers, ready, seen) > 0  # some met the lock
    _posted_once(hooked, expected=1)

    after = range(2000, 2000 + USERS)
    for user in after:
        hooked.send_command("/bugurt", user_id=user)
    wait_until(lambda: all(_answers(hooked, after).values()), 120, "the burst after the lock")
    assert _answered_once(_answers(hooked, after), ready, seen) == 0
    assert bot.stop() == 0, bot.stderr[-3000:]
    _clean_log(bot, outages=1)
    assert bot.stderr.count(DOWN) == 1
    assert integrity(db) == "ok" and integrity(tmp_path / "backup.sqlite3") == "ok"
    assert query(db, "SELECT text FROM pool GROUP BY text HAVING COUNT(*) > 1") == []
    assert query(db, "SELECT status, COUNT(*) FROM deliveries GROUP BY status") == [("sent", 1)]
