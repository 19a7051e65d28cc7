"""Bot processes sharing one database: a model one swaps in is served by the others, and
/retrain runs in one process at a time (its lock apart from the schedule's)."""

from __future__ import annotations

import asyncio
import shutil

from bot.leader import ProcessLock
from bot.model_slot import ModelSlot
from bot.settings import RuntimeSettings
from common.db import open_database
from tests import pg


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
