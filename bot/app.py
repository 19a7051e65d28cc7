"""Wiring in one place: config → Runner (shared with terminal mode) → PTB Application."""

from __future__ import annotations

import asyncio
import zoneinfo
from pathlib import Path

from apscheduler.schedulers.base import BaseScheduler
from telegram import Bot, BotCommand, Update
from telegram.error import InvalidToken, NetworkError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import handlers, texts
from bot.outbox import Outbox, Publisher
from bot.publish import TelegramChannel, VkWall
from bot.ratings import Ratings
from bot.retrain import Retrainer
from bot.runner import PUBLIC, Runner
from bot.schedule import CrontabError, Schedule, parse_crontab
from bot.state import State
from common import db
from common.cli import UserError
from common.config import Config
from generator.sample import Generator


def build_runner(
    config: Config,
    config_path: str,
    scheduler: BaseScheduler,
    publishers: list[Publisher],
    backoff_seconds: float = 30.0,
    train_args: tuple[str, ...] = (),
    retrain_poll_seconds: float = 3.0,
) -> Runner:
    """Open the database, load the served model, and assemble the bot's parts."""
    if not config.bot.temperatures or min(config.bot.temperatures) <= 0:
        raise UserError("bot.temperatures must list positive numbers, e.g. [0.7, 0.85, 1.0]")
    if config.schedule.misfire_grace_seconds <= 0:
        raise UserError("schedule.misfire_grace_seconds must be a positive number of seconds")
    try:
        zoneinfo.ZoneInfo(config.schedule.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UserError(
            f"schedule.timezone {config.schedule.timezone!r} is not a time zone name:"
            " use one like Europe/Moscow"
        ) from None
    try:
        parse_crontab(config.schedule.cron, config.schedule.timezone)
    except CrontabError as exc:
        raise UserError(f"schedule.cron {config.schedule.cron!r} in the config: {exc}") from None
    conn = db.connect(config.storage.db)
    state = State(conn)
    model_dir = state.served_model(config.generator.model_dir)
    generator = Generator.load(model_dir)
    db_path = str(Path(config.storage.db).resolve())
    schedule = Schedule(
        scheduler,
        jobstore_url=config.schedule.jobstore_url or f"sqlite:///{db_path}",
        timezone=config.schedule.timezone,
        misfire_grace_seconds=config.schedule.misfire_grace_seconds,
        key=db_path,
    )
    schedule.add_store()
    retrainer = Retrainer(
        config,
        config_path,
        models_dir=Path(config.storage.db).parent / "models",
        train_args=train_args,
        poll_seconds=retrain_poll_seconds,
    )
    return Runner(
        config,
        state,
        generator,
        model_dir,
        Outbox(conn, publishers, backoff_seconds=backoff_seconds),
        Ratings(conn),
        schedule,
        retrainer,
    )


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


def build_application(
    config: Config,
    config_path: str,
    sweep_seconds: float = 15.0,
    **runner_options,
) -> Application:
    """The PTB Application with handlers, jobs and the Runner in bot_data (not started)."""
    app = (
        ApplicationBuilder()
        .token(config.telegram.token)
        .base_url(config.telegram.api_url)
        .rate_limiter(AIORateLimiter(max_retries=3))  # waits out RetryAfter, then retries
        .concurrent_updates(True)  # /help is answered while a /bugurt is being sampled
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    publishers = vk_publisher(config)
    if config.telegram.channel:
        publishers.insert(0, TelegramChannel(app.bot, config.telegram.channel))
    runner = build_runner(
        config, config_path, app.job_queue.scheduler, publishers, **runner_options
    )
    app.bot_data["runner"] = runner
    app.bot_data["admins"] = frozenset(config.telegram.admins)
    app.bot_data["sweep_seconds"] = sweep_seconds

    # Commands only from new messages: edits and channel posts are ignored on purpose. One
    # handler for known and unknown commands: the Runner answers an unknown one with a hint.
    new_message = filters.UpdateType.MESSAGE
    app.add_handler(MessageHandler(filters.COMMAND & new_message, handlers.on_command))
    app.add_handler(
        MessageHandler(
            filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE & new_message,
            handlers.on_text,
        )
    )
    app.add_handler(CallbackQueryHandler(handlers.on_vote, pattern=r"^vote:\d{1,18}:-?1$"))
    app.add_error_handler(handlers.on_error)
    return app


async def _post_init(app: Application) -> None:
    """Menu of public commands; start-up work is a job so that it runs with the scheduler."""
    await app.bot.set_my_commands([BotCommand(c, texts.MENU[c]) for c in PUBLIC])
    app.job_queue.run_once(_start_job, when=0, name="start")
    seconds = app.bot_data["sweep_seconds"]
    app.job_queue.run_repeating(_sweep_job, interval=seconds, first=seconds, name="sweep")


async def _start_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Install the posting job and send what a previous run left pending."""
    await context.bot_data["runner"].start()


async def _sweep_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Retry pending deliveries whose back-off has passed."""
    await context.bot_data["runner"].sweep()


async def _post_shutdown(app: Application) -> None:
    runner: Runner = app.bot_data["runner"]
    await runner.close()
    runner.outbox.conn.close()


async def _check_bot(bot: Bot) -> None:
    async with bot:  # initialize() calls getMe; shutdown() closes the HTTP client again
        pass


def run_telegram(config: Config, config_path: str) -> None:
    """Serve Telegram by long polling until Ctrl-C / SIGTERM."""
    try:
        # getMe once up front: a refused token or a wrong URL is one line, not PTB's traceback.
        asyncio.run(_check_bot(Bot(config.telegram.token, base_url=config.telegram.api_url)))
        build_application(config, config_path).run_polling(allowed_updates=Update.ALL_TYPES)
    except InvalidToken:
        raise UserError(
            "Telegram refused telegram.token: check TELEGRAM_TOKEN (from @BotFather)"
        ) from None
    except NetworkError as exc:
        raise UserError(
            f"cannot reach the Bot API at telegram.api_url ({exc}): check the network or the URL"
        ) from None
