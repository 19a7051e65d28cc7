"""Who sent a command and where its replies go: what the Runner needs of a chat platform."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)
TYPING_SECONDS = 4.5  # Telegram shows "typing" for 5 s after each chat action


@dataclass(frozen=True)
class Sender:
    user_id: int
    is_admin: bool


class Chat(Protocol):
    """Where a command's replies go; `say` returns a handle that `edit` can change in place."""

    async def say(self, text: str) -> object: ...

    async def edit(self, handle: object, text: str) -> None: ...

    async def photo(self, path: Path, caption: str) -> None: ...

    async def typing(self) -> None:
        """Show that a reply is being written (Telegram's "typing"; a terminal does nothing)."""


@contextlib.asynccontextmanager
async def typing(chat: Chat) -> AsyncIterator[None]:
    """Keep the chat's "typing" status on while the block runs (a failed action is no error)."""

    async def keep_typing() -> None:
        try:
            while True:
                await chat.typing()
                await asyncio.sleep(TYPING_SECONDS)
        except Exception as exc:  # noqa: BLE001 (decoration only: the reply still comes)
            log.warning("could not send the typing action: %s", exc)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
