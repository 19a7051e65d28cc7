"""Bot processes sharing one database: a model one swaps in is served by the others, /retrain
runs in one process at a time (its lock apart from the schedule's), and a bot whose database
connections were all cut, or whose PostgreSQL server was restarted, carries on."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable, Iterator

import pytest

from bot.leader import ProcessLock
from bot.model_slot import ModelSlot
from bot.pool_store import PoolStore
from bot.settings import RuntimeSettings
from common.db import open_database
from harness import pg
from harness.peers import prefill
from harness.pipeline import AppThread, ask, bot_config, wait_until
from tests.pgserver import PrivateServer


def test_a_model_swapped_in_by_one_process_is_served_by_the_others(database, bot_model,
                                                                   tmp_path):
    other_model = str(shutil.copytree(bot_model, tmp_path / "models" / "retrained"))
    mine = ModelSlot(RuntimeSettings(database), str(bot_model), candidates=2)
    theirs = ModelSlot(RuntimeSettings(database), str(bot_model), candidates=2)
    swaps: list[str] = []
    theirs.on_swap.append(swaps.append)  # the pool drops the old model's posts on it
    try:
        assert not asyncio.run(theirs.follow())  # nothing swapped yet: nothing loaded
        asyncio.run(mine.serve(other_model))  # a retrain's swap in the first process
        assert asyncio.run(theirs.follow())
        assert theirs.model_dir == other_model and swaps == [other_model]
        assert theirs.generator.info["model_dir"] == other_model
        assert not asyncio.run(theirs.follow()) and swaps == [other_model]  # once
        assert theirs.previous() == str(bot_model)  # /rollback there serves the old one
    finally:
        mine.close()
        theirs.close()


def test_one_retrain_at_a_time_across_processes_on_postgresql():
    with pg.fresh_schema() as url:
        first, second = open_database(url), open_database(url)
        try:
            mine, theirs = ProcessLock(first, "retrain"), ProcessLock(second, "retrain")
            assert mine.try_take() and not theirs.try_take()
            schedule = ProcessLock(second, "schedule")
            assert schedule.try_take()  # another lock: not held up
            schedule.release()
            mine.release()  # the retrain ended (or its process died)
            assert theirs.try_take() and not mine.try_take()
            theirs.release()
        finally:
            first.close()
            second.close()


@contextlib.contextmanager
def _connections_cut() -> Iterator[tuple[str, Callable[[], None]]]:
    """A schema of the shared server; the outage ends every session of its URL."""
    def cut() -> None:
        assert pg.drop_connections(url) >= 2  # the event loop's and the schedule lock's

    with pg.fresh_schema() as url:
        yield url, cut


@contextlib.contextmanager
def _server_restart() -> Iterator[tuple[str, Callable[[], None]]]:
    """A private server (restarting the shared one would cut off the tests running beside this
    one); the outage restarts it: every session of every client ends."""
    with PrivateServer() as server:
        yield server.url, server.restart


@pytest.mark.parametrize("database_with_outage", [_connections_cut, _server_restart],
                         ids=["connections-cut", "server-restart"])
def test_the_bot_carries_on_after_the_database_dropped_it(tmp_path, bot_model, telegram,
                                                           database_with_outage):
    with database_with_outage() as (url, outage):
        ready = prefill(url, str(bot_model), per_temperature=3)
        raw = bot_config(tmp_path, bot_model, telegram, channel=False, cooldown_seconds=0)
        raw["storage"]["url"] = url
        raw["pool"] = {"size": 1, "channel_candidates": 0, "channel_searches": 0}
        with AppThread(raw) as bot:
            lock = bot.runner.schedule.leadership
            first = ask(telegram, "/bugurt", 501)
            assert first in ready and bot.call(lock.held)  # run on the bot's loop: its thread
            takes = lock.takes
            outage()
            second = ask(telegram, "/bugurt", 502)  # a fresh connection, not an error
            assert second in ready and second != first
            # the lock went with its session: the lead is taken again, on a new connection
            wait_until(lambda: bot.call(lock.held) and lock.takes > takes, 30,
                       "the schedule's lead taken again")
        database = open_database(url)
        try:
            assert len(PoolStore(database).take(str(bot_model), 0.6, n=9)) == 7  # 2 went, once
        finally:
            database.close()
