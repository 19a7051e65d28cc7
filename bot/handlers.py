"""Telegram handlers: thin, typed, each passing one kind of update to the Runner in bot_data."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from telegram import (
    Bot,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    Message,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest, NetworkError, TelegramError, TimedOut
from telegram.ext import ContextTypes

from bot.chat import Sender
from bot.i18n import Texts, language_of, texts_for
from bot.runner import Runner, split_command
from bot.telegram_channel import vote_keyboard

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4096  # Bot API limit of one text message
TITLE_CHARS = 60  # an inline result's title: the post's first line, cut
REPLY_PATIENCE_SECONDS = 60.0  # a reply is tried again this long while Telegram is unreachable
T = TypeVar("T")


async def patiently(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, tried again while Telegram cannot be reached (a proxy's 502 page, a reset
    connection: the request never reached it) for REPLY_PATIENCE_SECONDS, then given up. A
    call that timed out is not repeated: Telegram may have taken it."""
    deadline = time.monotonic() + REPLY_PATIENCE_SECONDS
    delay = 1.0
    while True:
        try:
            return await call()
        except (TimedOut, BadRequest):
            raise
        except NetworkError:
            if time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(2 * delay, 10.0)


class TelegramChat:
    """The Runner's Chat for one Telegram chat."""

    def __init__(self, bot: Bot, chat_id: int) -> None:
        self.bot = bot
        self.chat_id = chat_id

    async def say(self, text: str) -> Message:
        return await patiently(lambda: self.bot.send_message(self.chat_id,
                                                             text[:MAX_MESSAGE_CHARS]))

    async def edit(self, handle: object, text: str) -> None:
        assert isinstance(handle, Message)
        try:
            await patiently(lambda: handle.edit_text(text[:MAX_MESSAGE_CHARS]))
        except BadRequest as exc:
            if "not modified" not in str(exc):
                raise

    async def photo(self, path: Path, caption: str) -> None:
        async def send() -> None:
            with open(path, "rb") as fh:
                await self.bot.send_photo(self.chat_id, fh, caption=caption)

        await patiently(send)

    async def typing(self) -> None:
        await self.bot.send_chat_action(self.chat_id, ChatAction.TYPING)


def _runner(context: ContextTypes.DEFAULT_TYPE) -> Runner:
    return context.bot_data["runner"]


def _texts(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Texts:
    """The language of the update's user (Telegram's language_code), else bot.language."""
    user = update.effective_user
    return texts_for(language_of(user.language_code if user else None,
                                 context.bot_data["language"]))


def _sender(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Sender:
    user = update.effective_user
    user_id = user.id if user else 0
    name = (f"@{user.username}" if user.username else user.full_name) if user else ""
    return Sender(user_id=user_id, is_admin=user_id in context.bot_data["admins"],
                  texts=_texts(update, context), name=name)


def _in_review_chat(message: Message | None, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Whether a message is in review.chat, whose members are all editors."""
    return message is not None and message.chat_id == context.bot_data["review_chat"]


async def on_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Run a command (known or not) addressed to this bot; ignore those for other bots."""
    message = update.effective_message
    name, addressee, args = split_command(message.text or "")
    if addressee and addressee != (context.bot.username or "").lower():
        return  # "/bugurt@otherbot" in a group is not for us: ignored on purpose
    chat = TelegramChat(context.bot, message.chat_id)
    await _runner(context).command(name, args, _sender(update, context), chat)


async def on_review_tap(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An editor's button under a review: publish N, the next ones, or none this time."""
    query = update.callback_query
    _, review_id, action = (query.data or "").split(":")
    answer = await _runner(context).review_tap(
        int(review_id), action, _sender(update, context), _in_review_chat(query.message, context))
    await query.answer(answer[:200])  # a tap's answer shows at most 200 characters


async def on_reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A reply to a review with a corrected text publishes it; other replies are plain text."""
    message = update.effective_message
    review_id = _runner(context).editors.store.by_message(message.chat_id,
                                                          message.reply_to_message.message_id)
    if review_id is not None:
        answer = await _runner(context).review_reply(
            review_id, message.text or "", _sender(update, context),
            _in_review_chat(message, context))
        await message.reply_text(answer)
    elif message.chat.type == "private":
        await on_text(update, context)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer plain text in a private chat with a hint (groups' chatter is ignored)."""
    await update.effective_message.reply_text(_texts(update, context).t("not_a_command"))


async def on_inline(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer an inline query with posts to pick from, or a button saying why there are none."""
    query = update.inline_query
    answer = await _runner(context).inline(query.query, query.from_user.id,
                                           _texts(update, context))
    results = [
        InlineQueryResultArticle(
            id=str(number),
            title=_cut(post.split("\n", 1)[0], TITLE_CHARS),
            description=_cut(" ".join(post.split("\n")[2:3]), TITLE_CHARS),
            input_message_content=InputTextMessageContent(post[:MAX_MESSAGE_CHARS]),
        )
        for number, post in enumerate(answer.posts)
    ]
    button = None
    if answer.note:
        button = InlineQueryResultsButton(answer.note, start_parameter="inline")
    await query.answer(results, cache_time=answer.cache_seconds, is_personal=True, button=button)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def on_vote(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Store a reader's 👍/👎 on a published post and show the new counts on its buttons."""
    query = update.callback_query
    _, outbox_id, value = (query.data or "").split(":")
    answer, counts = _runner(context).vote(int(outbox_id), _sender(update, context), int(value))
    await query.answer(answer)
    if counts is not None and query.message is not None:
        with contextlib.suppress(BadRequest):  # "message is not modified": same counts
            await query.edit_message_reply_markup(vote_keyboard(int(outbox_id), *counts))


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log an unexpected error and tell the user one line instead of staying silent."""
    if update is None and context.job is None and isinstance(context.error, TelegramError):
        # getUpdates failed (Bot API down, a proxy's error page): PTB's polling loop retries by
        # itself, and a traceback for every try would bury the log.
        log.warning("polling Telegram failed, retrying: %s", context.error)
        return
    # The database out of reach (a restart, a backup's lock) is logged once per outage by the
    # Database itself: a job tries again at its next run, a person is told to send it again.
    error = context.error
    down = _runner(context).db.failed(error)
    if isinstance(error, NetworkError) and not isinstance(error, BadRequest):
        # Telegram unreachable: the reply was tried for REPLY_PATIENCE_SECONDS (or timed out,
        # then the apology may still get through); too late to matter now.
        what = f"update {update.update_id}" if isinstance(update, Update) else "a job"
        log.warning("%s: reply dropped, Telegram unreachable: %s", what, error)
        if not isinstance(error, TimedOut):
            return
    elif not down:
        log.error("error while handling an update", exc_info=error)
    if not isinstance(update, Update):
        return
    # Only a person's own message gets the apology (a vote's message is the channel post); an
    # inline query gets an empty answer saying so, instead of a spinner until Telegram gives up.
    tr = _texts(update, context)
    with contextlib.suppress(TelegramError):
        if update.message is not None:
            reply = tr.t("storage_down") if down else tr.t("internal_error")
            await update.message.reply_text(reply)
        elif update.inline_query is not None:
            note = tr.t("inline.storage_down") if down else tr.t("inline.error")
            button = InlineQueryResultsButton(note, start_parameter="inline")
            await update.inline_query.answer([], cache_time=0, is_personal=True, button=button)
