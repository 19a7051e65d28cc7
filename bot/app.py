"""Telegram mode: the Runner (wiring.py builds it, as for terminal mode) in a PTB Application,
fed by long polling or, with telegram.webhook.url set, by PTB's own webhook server, each update
through the inbox (inbox.py) so that none is lost with a killed process."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

from telegram import Bot, BotCommand, Update
from telegram.error import InvalidToken, NetworkError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot import handlers
from bot.i18n import FALLBACK, READERS, Texts, load_all
from bot.inbox import TAKE_OVER_SECONDS, Inbox, InboxProcessor, InboxQueue
from bot.leader import LEAD_SECONDS, ProcessLife
from bot.review_desk import CALLBACK, TelegramDesk
from bot.runner import Runner, menu
from bot.telegram_channel import TelegramChannel
from bot.wiring import build_runner, vk_publisher
from common import db
from common.cli import UserError
from common.config import Config, WebhookConfig, require

FOLLOW_SECONDS = 30.0  # a swap in another process reaches this one within this (under a minute)
# What Telegram accepts as a webhook's secret_token (setWebhook): 1-256 of these characters.
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def build_application(
    config: Config,
    config_path: str,
    sweep_seconds: float = 15.0,
    **runner_options,
) -> Application:
    """The PTB Application with handlers, jobs, the inbox and the Runner in bot_data (not
    started)."""
    catalogs = load_all()  # a missing compiled catalog stops the start with one line
    database = db.open_storage(config.storage)
    life = ProcessLife(database)  # names this process in the inbox's and the outbox's claims
    inbox = Inbox(database, life)
    app = (
        ApplicationBuilder()
        .token(config.telegram.token)
        .base_url(config.telegram.api_url)
        .rate_limiter(AIORateLimiter(max_retries=3))  # waits out RetryAfter, then retries
        .update_queue(InboxQueue(inbox))  # updates are committed before Telegram is answered
        # Concurrent: /help is answered while a /bugurt is being sampled
        .concurrent_updates(InboxProcessor(inbox))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .build()
    )
    publishers = vk_publisher(config)
    if config.telegram.channel:
        publishers.insert(0, TelegramChannel(app.bot, config.telegram.channel))
    review_chat = int(config.review.chat) if config.review.chat else None
    desk = TelegramDesk(app.bot, [review_chat] if review_chat else list(config.telegram.admins),
                        catalogs[config.bot.language])
    runner = build_runner(
        config, config_path, app.job_queue.scheduler, publishers, database=database,
        life=life, desk=desk if desk.chats else None, **runner_options
    )
    life.keep()  # before the first update is recorded as this process's
    app.bot_data["runner"] = runner
    app.bot_data["admins"] = frozenset(config.telegram.admins)
    app.bot_data["language"] = config.bot.language  # for a user who sent no language_code
    app.bot_data["catalogs"] = catalogs
    app.bot_data["sweep_seconds"] = sweep_seconds
    app.bot_data["review_chat"] = review_chat

    # Commands only from new messages: edits and channel posts are ignored on purpose. One
    # handler for known and unknown commands: the Runner answers an unknown one with a hint.
    new_message = filters.UpdateType.MESSAGE
    app.add_handler(MessageHandler(filters.COMMAND & new_message, handlers.on_command))
    # A reply may be an editor's corrected text for a review (private chat or review.chat).
    app.add_handler(MessageHandler(filters.TEXT & filters.REPLY & ~filters.COMMAND & new_message,
                                   handlers.on_reply))
    app.add_handler(
        MessageHandler(
            filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE & new_message,
            handlers.on_text,
        )
    )
    app.add_handler(InlineQueryHandler(handlers.on_inline))
    app.add_handler(CallbackQueryHandler(handlers.on_vote, pattern=r"^vote:\d{1,18}:-?1$"))
    app.add_handler(CallbackQueryHandler(handlers.on_review_tap, pattern=CALLBACK))
    app.add_error_handler(handlers.on_error)
    return app


async def _post_init(app: Application) -> None:
    """Menus of public commands; start-up work is a job so that it runs with the scheduler."""
    await _set_menus(app.bot, app.bot_data["catalogs"])
    app.job_queue.run_once(_start_job, when=0, name="start")
    seconds = app.bot_data["sweep_seconds"]
    app.job_queue.run_repeating(_sweep_job, interval=seconds, first=seconds, name="sweep")
    app.job_queue.run_repeating(_lead_job, interval=LEAD_SECONDS, first=LEAD_SECONDS, name="lead")
    app.job_queue.run_repeating(_follow_job, interval=FOLLOW_SECONDS, first=FOLLOW_SECONDS,
                                name="follow")
    app.job_queue.run_repeating(_inbox_job, interval=TAKE_OVER_SECONDS, first=0, name="inbox")


async def _set_menus(bot: Bot, catalogs: dict[str, Texts]) -> None:
    """The command menu in the fallback language (English) for every user, and for each
    language_code answered in another language (ru, uk, be: Russian) in that one."""
    def commands(language: str) -> list[BotCommand]:
        return [BotCommand(name, text) for name, text in menu(catalogs[language])]

    await bot.set_my_commands(commands(FALLBACK))
    for code, language in sorted(READERS.items()):
        if language != FALLBACK:
            await bot.set_my_commands(commands(language), language_code=code)


async def _start_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Install the posting job and send what a previous run left pending."""
    await context.bot_data["runner"].start()


async def _sweep_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Retry pending deliveries whose back-off has passed."""
    await context.bot_data["runner"].sweep()


async def _lead_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Take the schedule's lead if its leader process has died."""
    context.bot_data["runner"].lead()


async def _follow_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Serve the model another process swapped in (within FOLLOW_SECONDS of the swap)."""
    await context.bot_data["runner"].follow_model()


async def _inbox_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Handle the updates a dead process (or this bot's previous run) acknowledged but left."""
    await context.application.update_queue.take_over(context.bot)


async def _post_shutdown(app: Application) -> None:
    runner: Runner = app.bot_data["runner"]
    await runner.close()  # what the inbox holds open now is taken over by another process


async def _check_bot(bot: Bot) -> None:
    async with bot:  # initialize() calls getMe; shutdown() closes the HTTP client again
        pass


def run_telegram(config: Config, config_path: str) -> None:
    """Serve Telegram until Ctrl-C / SIGTERM: by webhook when telegram.webhook.url is set,
    else by long polling."""
    webhook = config.telegram.webhook
    secret = _webhook_secret(webhook) if webhook.url else ""
    try:
        # getMe once up front: a refused token or a wrong URL is one line, not PTB's traceback.
        asyncio.run(_check_bot(Bot(config.telegram.token, base_url=config.telegram.api_url)))
        app = build_application(config, config_path)
        if webhook.url:
            _serve_webhook(app, webhook, secret)
        else:
            app.run_polling(allowed_updates=Update.ALL_TYPES)
    except InvalidToken:
        raise UserError(
            "Telegram refused telegram.token: check TELEGRAM_TOKEN (from @BotFather)"
        ) from None
    except NetworkError as exc:
        raise UserError(
            f"cannot reach the Bot API at telegram.api_url ({exc}): check the network or the URL"
        ) from None


def _webhook_secret(webhook: WebhookConfig) -> str:
    secret = require(webhook.secret, "telegram.webhook.secret", "TELEGRAM_WEBHOOK_SECRET")
    if not _SECRET.fullmatch(secret):
        raise UserError("telegram.webhook.secret must be 1-256 characters of A-Z, a-z, 0-9, _"
                        " and - (Telegram's rule): change TELEGRAM_WEBHOOK_SECRET")
    return secret


def _serve_webhook(app: Application, webhook: WebhookConfig, secret: str) -> None:
    """PTB's webhook server on telegram.webhook.listen, at the path of telegram.webhook.url: it
    registers the URL with setWebhook and answers 403 to an update without the secret."""
    host, port = webhook.address
    try:
        app.run_webhook(listen=host, port=port, url_path=urlsplit(webhook.url).path.lstrip("/"),
                        webhook_url=webhook.url, secret_token=secret,
                        allowed_updates=Update.ALL_TYPES)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise UserError(
            f"cannot serve the webhook on {webhook.listen}: {exc.strerror or exc}"
            " (check telegram.webhook.listen)"
        ) from None
