"""The Telegram channel as a publishing target of the outbox, and the voting buttons.

It turns Telegram's errors into the outbox's two kinds: RetryLater (network trouble, flood
control, server errors) and PermanentFailure (the platform refuses this post for good). The VK
wall target is in vk_wall.py, which terminal mode uses without importing python-telegram-bot.
"""

from __future__ import annotations

import datetime as dtm
import warnings

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from bot.outbox import PermanentFailure, RetryLater


def vote_keyboard(outbox_id: int, ups: int = 0, downs: int = 0) -> InlineKeyboardMarkup:
    """👍/👎 buttons under a published post; callback data 'vote:<outbox id>:<+1|-1>'."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    f"👍 {ups}" if ups else "👍", callback_data=f"vote:{outbox_id}:1"
                ),
                InlineKeyboardButton(
                    f"👎 {downs}" if downs else "👎", callback_data=f"vote:{outbox_id}:-1"
                ),
            ]
        ]
    )


def retry_after_seconds(exc: RetryAfter) -> float:
    """RetryAfter.retry_after is int or timedelta depending on PTB settings; seconds either way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB warns that the int form is deprecated
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


class TelegramChannel:
    """Posts to `telegram.channel` through the bot, with the voting buttons attached."""

    target = "telegram"

    def __init__(self, bot: Bot, channel: str) -> None:
        self.bot = bot
        self.channel = int(channel) if channel.lstrip("-").isdigit() else channel

    async def publish(self, outbox_id: int, text: str, guid: str) -> str:
        try:
            message = await self.bot.send_message(
                self.channel, text, reply_markup=vote_keyboard(outbox_id)
            )
        except RetryAfter as exc:
            raise RetryLater(f"Telegram flood control: {exc}", retry_after_seconds(exc)) from None
        except (BadRequest, Forbidden, InvalidToken) as exc:
            raise PermanentFailure(f"Telegram refused the post: {exc}") from None
        except NetworkError as exc:  # includes TimedOut
            raise RetryLater(f"Telegram unreachable: {exc}") from None
        except TelegramError as exc:  # e.g. "Invalid server response": a proxy page, cut JSON
            raise RetryLater(f"Telegram answered oddly: {exc}") from None
        return str(message.message_id)
