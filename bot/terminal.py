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

from bot import texts
from bot.chat import Sender
from bot.i18n import Texts, load_all
from bot.review import Candidate, Review
from bot.runner import split_command
from bot.wiring import build_runner, vk_publisher
from common.config import Config

TERMINAL_CHAT = 0  # the chat id a terminal review's messages are stored under


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


class TerminalDesk:
    """Review mode in the terminal: a review is printed as numbered posts; the answer is typed
    (bot/editors.py `Editors.answer`)."""

    def __init__(self, chat: TerminalChat) -> None:
        self.chat = chat

    async def show(self, review: Review, candidates: list[Candidate]) -> list[tuple[int, int, int]]:
        tr = self.chat.tr
        await self.chat.say(texts.review_page(tr, review, candidates) + "\n"
                            + tr.t("review.typed_hint"))
        # the terminal's own numbering restarts with the process: a page's number is unique
        return [(TERMINAL_CHAT, review.id * 10_000 + candidates[0].number,
                 candidates[0].number)]

    async def close(self, messages: list[tuple[int, int]], text: str) -> None:
        await self.chat.say(text)


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
    chat = TerminalChat(stdout, tr)
    runner = build_runner(config, config_path, scheduler, vk_publisher(config),
                          desk=TerminalDesk(chat))
    scheduler.start()
    scheduler.add_job(runner.sweep, "interval", seconds=sweep_seconds, id="sweep")
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
            if not line.startswith("/"):  # an answer to an open review, or a slip
                answer = await runner.review_answer(line, user)
                await chat.say(answer or tr.t("not_a_command"))
                continue
            name, _, args = split_command(line)
            await runner.command(name, args, user, chat)
        await runner.wait_idle()
    finally:
        await runner.close()
        scheduler.shutdown(wait=False)
