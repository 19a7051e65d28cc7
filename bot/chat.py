"""Who sent a command and where its replies go: what the Runner needs of a chat platform."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Sender:
    user_id: int
    is_admin: bool


class Chat(Protocol):
    """Where a command's replies go; `say` returns a handle that `edit` can change in place."""

    async def say(self, text: str) -> object: ...

    async def edit(self, handle: object, text: str) -> None: ...

    async def photo(self, path: Path, caption: str) -> None: ...
