"""The inbox (bot/inbox.py) on a real database: updates recorded once, done, and taken over
from dead processes only; and a real `python -m bot` killed while it answers, then restarted."""

from __future__ import annotations

import json
import threading
import time

import pytest
import sqlalchemy as sa

from bot.inbox import Inbox
from bot.leader import ProcessLife
from common.db import Database, open_database
from harness.pipeline import bot_config, quiet, start_bot, wait_until, write_config


def _body(update_id: int) -> str:
    return json.dumps({"update_id": update_id})


def _ids(bodies: list[str]) -> list[int]:
    return [json.loads(b)["update_id"] for b in bodies]


def _live_inbox(database: Database, **options: float) -> Inbox:
    """The inbox of a live process: its sign of life kept."""
    life = ProcessLife(database)
    life.keep()
    return Inbox(database, life, **options)


def test_an_update_is_recorded_once_and_a_dead_owners_open_ones_are_taken_over(database):
    dead = Inbox(database, ProcessLife(database))  # its sign of life never kept: as if killed
    assert [dead.record(i, _body(i)) for i in (3, 1, 2)] == [True, True, True]
    assert dead.record(1, _body(1)) is False  # Telegram delivered it again
    dead.done(2)
    survivor = _live_inbox(database)
    assert survivor.record(7, _body(7))  # its own open update is never "taken over"
    assert _ids(survivor.take_over()) == [1, 3]  # the open ones, oldest first; not the done 2
    assert survivor.take_over() == []
    dead.done(1)  # the dead owner's late word no longer counts: the update is the survivor's
    with database.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT update_id, owner, done_at IS NOT NULL FROM inbox ORDER BY update_id").all()
    assert [(i, o == survivor.owner, d) for i, o, d in rows] == [
        (1, True, False), (2, False, True), (3, True, False), (7, True, False)]
    survivor.life.end()


def test_handled_updates_are_forgotten_after_keep_seconds(database):
    inbox = _live_inbox(database, keep_seconds=0.0)
    inbox.record(1, _body(1))
    inbox.record(2, _body(2))
    inbox.done(1)
    time.sleep(0.01)
    inbox.take_over()
    with database.read() as conn:
        assert conn.exec_driver_sql("SELECT update_id FROM inbox").scalars().all() == [2]
    assert inbox.record(1, _body(1))  # forgotten: a delivery this late counts as new
    inbox.life.end()


def test_a_live_owners_updates_stay_and_a_dead_ones_go_to_one_survivor(postgres_database):
    owner_db = open_database(postgres_database.engine.url)  # its own engine, as a process
    owner = _live_inbox(owner_db)
    for i in range(1, 41):
        owner.record(i, _body(i))
    others = [_live_inbox(open_database(postgres_database.engine.url)) for _ in range(2)]
    assert [o.take_over() for o in others] == [[], []]  # alive: still handling them
    owner.done(40)
    owner.life.end()  # its sign of life is gone, as when PostgreSQL ends a dead one's session
    owner_db.close()
    taken: list[list[str]] = [[], []]
    threads = [threading.Thread(target=lambda k=k: taken[k].extend(others[k].take_over()))
               for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(_ids(taken[0] + taken[1])) == list(range(1, 40))  # each once, none twice
    for other in others:
        other.life.end()
        other.db.close()


def test_a_done_mark_the_database_refused_is_written_by_the_next_pass(postgres_database):
    inbox = _live_inbox(postgres_database)
    inbox.record(1, _body(1))
    reachable = inbox.db
    inbox.db = Database(sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
    inbox.done(1)  # the server is away (a restart): no exception, the mark is kept
    inbox.db = reachable
    with reachable.read() as conn:
        assert conn.exec_driver_sql("SELECT done_at FROM inbox").scalar_one() is None
    inbox.take_over()
    with reachable.read() as conn:
        assert conn.exec_driver_sql("SELECT done_at FROM inbox").scalar_one() is not None
    inbox.life.end()


@pytest.mark.slow
def test_an_update_taken_by_a_killed_bot_is_answered_once_after_the_restart(
    tmp_path, bot_model, telegram
):
    """Long polling on SQLite: the bot has taken /bugurt (getUpdates confirmed it) and is
    sending the answer when it is killed; the restarted bot answers it, once."""
    raw = bot_config(tmp_path, bot_model, telegram, channel=False, env_secrets=True,
                     cooldown_seconds=0)
    raw["vk"]["post_token"] = ""  # Telegram only
    config = write_config(tmp_path, raw)
    telegram.hold("sendMessage", {5})
    bot = start_bot(tmp_path / "first", config, telegram)
    telegram.send_command("/bugurt", user_id=5)
    wait_until(lambda: telegram.held >= 1 or not bot.alive(), 120, "the answer being sent")
    bot.kill()
    telegram.release()  # the killed bot's answer never reached Telegram
    assert quiet(telegram, 5, 0.5) == []
    again = start_bot(tmp_path / "second", config, telegram)
    answer = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == 5, 120)
    assert answer.params["text"].endswith("#neurobugurt")
    time.sleep(3)  # a second answer would come within this
    answers = [c for c in telegram.calls_of("sendMessage") if c.params["chat_id"] == 5]
    assert len(answers) == 1
    assert again.stop() == 0
    assert "took over 1 update(s)" in again.stderr
