"""Who sent a command and where its replies go: what the Runner needs of a chat platform."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot.i18n import Texts

log = logging.getLogger(__name__)
TYPING_SECONDS = 4.5  # Telegram shows "typing" for 5 s after each chat action


@dataclass(frozen=True)
class Sender:
    user_id: int
    is_admin: bool
    texts: Texts  # the sender's language: every reply to them goes through it
    name: str = ""  # how other editors see who decided a review


class Chat(Protocol):
    """Where a command's replies go; `say` returns a handle that `edit` can change in place."""

    async def say(self, text: str) -> object: ...

    async def edit(self, handle: object, text: str) -> None: ...

    async def photo(self, path: Path, caption: str) -> None: ...

    async def typing(self) -> None:
        """Show that a reply is being written (Telegram's "typing"; a terminal does nothing)."""


@contextlib.asynccontextmanager
async def typing(chat: Chat) -> AsyncIterator[None]:
    """Show "typing" in the chat now and keep it on while the block runs (a failed chat action
    is logged, never an error: the reply still comes)."""

    async def show() -> bool:
        try:
            await chat.typing()
        except Exception as exc:  # noqa: BLE001 (decoration only)
            log.warning("could not send the typing action: %s", exc)
            return False
        return True

    async def keep_showing() -> None:
        while True:
            await asyncio.sleep(TYPING_SECONDS)
            if not await show():
                return

    task = asyncio.create_task(keep_showing()) if await show() else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
