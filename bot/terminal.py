"""Terminal chat: with no telegram.token the same Runner reads commands from standard input.

Every input line is a message from an admin; replies go to standard output (logs to standard
error). The posting schedule runs on a plain APScheduler AsyncIOScheduler and publishes to VK if
vk.post_token is set (Telegram needs a token). End of input waits for a running /retrain.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from typing import TextIO

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.chat import Sender
from bot.i18n import Texts, load_all
from bot.runner import split_command
from bot.wiring import build_runner, vk_publisher
from common.config import Config


class TerminalChat:
    """The Runner's Chat on a text stream; an edit prints the new text as a new line."""

    def __init__(self, out: TextIO, tr: Texts) -> None:
        self.out = out
        self.tr = tr
        self._said = 0

    async def say(self, text: str) -> object:
        self._print(text)
        self._said += 1
        return self._said

    async def edit(self, handle: object, text: str) -> None:
        self._print(text)

    async def photo(self, path: Path, caption: str) -> None:
        self._print(self.tr.t("terminal.picture", caption=caption, path=path))

    async def typing(self) -> None:
        """A terminal shows nothing while a post is written."""

    def _print(self, text: str) -> None:
        print(text + "\n", file=self.out, flush=True)


def _read_lines(stream: TextIO, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue) -> None:
    """Feed stdin lines to the loop from a daemon thread (Ctrl-C never waits for Enter)."""
    for line in stream:
        loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def run_terminal(
    config: Config,
    config_path: str,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    sweep_seconds: float = 15.0,
) -> None:
    tr = load_all()[config.bot.language]  # the terminal's user is bot.language's reader
    user = Sender(user_id=0, is_admin=True, texts=tr)
    # UTC like PTB's JobQueue: the posting job's crontab carries schedule.timezone itself.
    scheduler = AsyncIOScheduler(timezone="UTC")
    runner = build_runner(config, config_path, scheduler, vk_publisher(config))
    scheduler.start()
    scheduler.add_job(runner.sweep, "interval", seconds=sweep_seconds, id="sweep")
    chat = TerminalChat(stdout, tr)
    try:
        await runner.start()
        await chat.say(tr.t("terminal.banner"))
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        reader = threading.Thread(
            target=_read_lines, args=(stdin, asyncio.get_running_loop(), queue), daemon=True
        )
        reader.start()
        while (line := await queue.get()) is not None:
            line = line.strip()
            if not line:
                continue
            if not line.startswith("/"):
                await chat.say(tr.t("not_a_command"))
                continue
            name, _, args = split_command(line)
            await runner.command(name, args, user, chat)
        await runner.wait_idle()
    finally:
        await runner.close()
        scheduler.shutdown(wait=False)
