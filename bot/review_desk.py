"""Telegram's desk for review mode: each page of a review is one message to each editor chat
(`review.chat`, or every admin privately) with buttons "N" (publish N), "Next", "None this
time"; callback data `review:<id>:<p N | next | none>`. An ended review's messages are edited
to say how it ended, their buttons gone."""

from __future__ import annotations

import logging

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import TelegramError

from bot import texts
from bot.editors import NEXT
from bot.i18n import Texts
from bot.review import NONE, Candidate, Review

log = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 4096  # Bot API limit of one text message
CALLBACK = r"^review:\d{1,18}:(p\d{1,3}|next|none)$"  # the handler's pattern


def review_keyboard(tr: Texts, review_id: int,
                    candidates: list[Candidate]) -> InlineKeyboardMarkup:
    """A row of numbers (publish that post), then "Next" and "None this time"."""
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(str(c.number), callback_data=f"review:{review_id}:p{c.number}")
         for c in candidates],
        [InlineKeyboardButton(tr.t("review.next"), callback_data=f"review:{review_id}:{NEXT}"),
         InlineKeyboardButton(tr.t("review.none"), callback_data=f"review:{review_id}:{NONE}")],
    ])


class TelegramDesk:
    """Shows reviews to the editor chats through the bot, in bot.language."""

    def __init__(self, bot: Bot, chats: list[int], tr: Texts) -> None:
        self.bot = bot
        self.chats = chats
        self.tr = tr

    async def show(self, review: Review, candidates: list[Candidate]) -> list[tuple[int, int, int]]:
        text = texts.review_page(self.tr, review, candidates)[:MAX_MESSAGE_CHARS]
        keyboard = review_keyboard(self.tr, review.id, candidates)
        sent = []
        for chat in self.chats:  # one editor out of reach must not keep the others from it
            try:
                message = await self.bot.send_message(chat, text, reply_markup=keyboard)
            except TelegramError as exc:
                log.warning("review #%d: cannot reach editor chat %s: %s", review.id, chat, exc)
                continue
            sent.append((chat, message.message_id, candidates[0].number))
        return sent

    async def close(self, messages: list[tuple[int, int]], text: str) -> None:
        for chat, message_id in messages:
            try:
                # no reply_markup: Telegram removes the buttons of a message edited without
                await self.bot.edit_message_text(text[:MAX_MESSAGE_CHARS], chat_id=chat,
                                                 message_id=message_id)
            except TelegramError as exc:  # deleted by its editor, or too old to edit
                log.warning("cannot mark review message %s/%s ended: %s", chat, message_id, exc)
