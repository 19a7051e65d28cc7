"""Config → Runner: the bot's parts assembled, shared by Telegram and terminal mode.

No python-telegram-bot here (terminal mode must not need it): the Telegram channel target and
the PTB Application are added by app.py.
"""

from __future__ import annotations

import random
from pathlib import Path

import sqlalchemy as sa
from apscheduler.schedulers.base import BaseScheduler

from bot.editors import Desk, Editors
from bot.i18n import texts_for
from bot.leader import ProcessLife, ProcessLock
from bot.model_slot import ModelSlot
from bot.outbox import Outbox, Publisher
from bot.pool import Pool
from bot.ranker import Ranking
from bot.ratings import Ratings
from bot.retrain import RetrainJob
from bot.review import ReviewStore
from bot.runner import Runner
from bot.schedule import Schedule
from bot.settings import RuntimeSettings
from bot.vk_wall import VkWall
from common import db
from common.cli import UserError
from common.config import Config


def build_runner(
    config: Config,
    config_path: str,
    scheduler: BaseScheduler,
    publishers: list[Publisher],
    backoff_seconds: float = 30.0,
    train_args: tuple[str, ...] = (),
    retrain_poll_seconds: float = 3.0,
    database: db.Database | None = None,
    life: ProcessLife | None = None,
    desk: Desk | None = None,
) -> Runner:
    """Open the database (unless given one), load the served model, and assemble the bot's
    parts (the pool worker starts with `Runner.start`). The Runner owns the database and this
    process's sign of life (`life`, made here unless given): `Runner.close` ends both."""
    database = database or db.open_storage(config.storage)
    try:
        settings = RuntimeSettings(database)
        slot = ModelSlot(settings, config.generator.model_dir, config.bot.candidates)
    except BaseException:
        database.close()
        raise
    schedule = Schedule(
        scheduler,
        jobstore_engine=(sa.create_engine(config.schedule.jobstore_url)
                         if config.schedule.jobstore_url else database.engine),
        timezone=config.schedule.timezone,
        misfire_grace_seconds=config.schedule.misfire_grace_seconds,
        key=_schedule_key(config),
        leadership=ProcessLock(database, "schedule"),
    )
    schedule.add_store()
    ratings = Ratings(database)
    pool = Pool(database, slot, config)
    ranking = Ranking(lambda: slot.model_dir)
    retrain = RetrainJob(
        config,
        config_path,
        slot,
        ratings,
        models_dir=config.storage.models,
        train_args=train_args,
        poll_seconds=retrain_poll_seconds,
        pause_pool=pool.paused,
        lock=ProcessLock(database, "retrain"),
        fit_ranker=lambda: ranking.refit(database),
    )
    outbox = Outbox(database, publishers, backoff_seconds=backoff_seconds,
                    life=life or ProcessLife(database))
    editors = Editors(config.review, ReviewStore(database, outbox), pool, slot, outbox,
                      lambda: ratings.choose_temperature(config.bot.temperatures, random.Random()),
                      ranking, texts_for(config.bot.language))
    editors.desk = desk
    return Runner(config, database, settings, slot, outbox, ratings, schedule, retrain, pool,
                  editors)


def _schedule_key(config: Config) -> str:
    """Names the bot in its stored posting job: the SQLite file's path (as stored by earlier
    versions, so their job is kept), or storage.url without its password (the same in every
    process sharing it)."""
    if not config.storage.url:
        return str(Path(config.storage.db).resolve())
    return sa.make_url(config.storage.url).render_as_string(hide_password=True)


def vk_publisher(config: Config) -> list[Publisher]:
    """The VK wall target when vk.post_token is set (it then needs vk.post_community)."""
    if not config.vk.post_token:
        return []
    if not config.vk.post_community:
        raise UserError("vk.post_token is set but vk.post_community is empty: set the numeric id")
    return [
        VkWall(config.vk.api_url, config.vk.post_token, config.vk.api_version,
               config.vk.post_community)
    ]
