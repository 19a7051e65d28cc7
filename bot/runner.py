"""The bot's commands, knowing nothing of Telegram: (command, text, sender) → replies to a Chat.

Telegram handlers and the terminal chat both call `Runner.command`. Sampling runs in a worker
thread, so the event loop keeps answering while a post is written.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bot import texts
from bot.outbox import Outbox
from bot.ratings import Ratings
from bot.retrain import Retrainer
from bot.schedule import CrontabError, Schedule
from bot.state import State
from common.config import Config
from generator.sample import Generator

log = logging.getLogger(__name__)

MAX_PRIME_CHARS = 150  # the quality gate refuses lines over 200: leave the model some room
MAX_WAITING = 8  # posts queued for the sampling thread before /bugurt answers "busy"
PUBLIC = ("start", "help", "bugurt", "top")
ADMIN = ("post", "pause", "resume", "schedule", "status", "retrain", "rollback")
COMMANDS = PUBLIC + ADMIN


@dataclass(frozen=True)
class Sender:
    user_id: int
    is_admin: bool


class Chat(Protocol):
    """Where a command's replies go; `say` returns a handle that `edit` can change in place."""

    async def say(self, text: str) -> object: ...

    async def edit(self, handle: object, text: str) -> None: ...

    async def photo(self, path: Path, caption: str) -> None: ...


def split_command(text: str) -> tuple[str, str, str]:
    """'/Cmd@Bot rest' → ('cmd', 'bot', 'rest'): the rest keeps its newlines."""
    parts = text.strip().split(maxsplit=1)
    head = parts[0] if parts else ""
    name, _, addressee = head.lstrip("/").partition("@")
    return name.lower(), addressee.lower(), parts[1] if len(parts) > 1 else ""


def clean_prime(text: str) -> str:
    """The user's text as a post beginning: printable characters only, upper case like bugurts."""
    kept = "".join(
        ch for ch in text if ch == "\n" or not unicodedata.category(ch).startswith("C")
    )
    lines = [" ".join(line.split()) for line in kept.split("\n")]
    return "\n".join(line for line in lines if line).upper()


def unknown_chars(generator: Generator, text: str) -> list[str]:
    """Characters of `text` outside the model's vocabulary (line breaks are structure)."""
    writes = generator.vocab.writes
    return sorted({ch for ch in text if ch != "\n" and not writes(ch)})


class Runner:
    def __init__(
        self,
        config: Config,
        state: State,
        generator: Generator,
        model_dir: str,
        outbox: Outbox,
        ratings: Ratings,
        schedule: Schedule,
        retrainer: Retrainer,
    ) -> None:
        self.config = config
        self.state = state
        self.generator = generator
        self.model_dir = model_dir
        self.outbox = outbox
        self.ratings = ratings
        self.schedule = schedule
        schedule.bind(self.scheduled_post)
        self.retrainer = retrainer
        self.rng = random.Random()  # the bandit's draws
        self.started = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sample")
        self._waiting = 0
        self._last_bugurt: dict[int, float] = {}  # user id → monotonic time of the last accepted
        self._warned: set[int] = set()  # users told to wait during their current cooldown
        self._tasks: set[asyncio.Task] = set()

    # ---- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Install the posting job (scheduler running) and send what a previous run left pending."""
        self.schedule.install(self.state.schedule_cron(self.config.schedule.cron))
        # Sampling's first call is slow (lazy torch set-up): pay it now, not on a user's /bugurt.
        self._pool.submit(self.generator.generate, n=1, candidates=1, seed=0)
        await self.sweep(force=True)

    async def sweep(self, force: bool = False) -> None:
        """Deliver pending posts whose retry time has come (periodic job; all of them on start)."""
        if self.outbox.publishers:
            await self.outbox.deliver(force=force)
        self.state.beat()  # `python -m bot --health` reads it: the event loop is alive

    async def wait_idle(self) -> None:
        """Wait for background work (a retrain) to finish."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.retrainer.stop()
        self.schedule.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ---- commands -----------------------------------------------------------------------------

    async def command(self, name: str, args: str, sender: Sender, chat: Chat) -> None:
        """Run one command for `sender`; every outcome is a short reply (or none on purpose)."""
        name = name.lower()
        if name not in COMMANDS:
            await chat.say(texts.UNKNOWN.format(name=name[:32]))
            return
        if name in ADMIN and not sender.is_admin:
            log.warning("user %s refused admin command /%s", sender.user_id, name)
            await chat.say(texts.ADMIN_ONLY.format(name=name))
            return
        await getattr(self, "_cmd_" + name)(args.strip(), sender, chat)

    async def _cmd_start(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(texts.START)

    async def _cmd_help(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(texts.HELP_ADMIN if sender.is_admin else texts.HELP)

    async def _cmd_bugurt(self, args: str, sender: Sender, chat: Chat) -> None:
        wait = self._cooldown_left(sender)
        if wait > 0:
            if sender.user_id not in self._warned:  # one polite line per cooldown, not a flood
                self._warned.add(sender.user_id)
                await chat.say(texts.COOLDOWN.format(seconds=max(1, round(wait))))
            return
        prime = clean_prime(args)
        if len(prime) > MAX_PRIME_CHARS:
            await chat.say(texts.PRIME_TOO_LONG.format(length=len(prime), limit=MAX_PRIME_CHARS))
            return
        unknown = unknown_chars(self.generator, prime)
        if unknown:  # emoji and the like: the model has no symbol for them, its posts would fail
            prime = clean_prime("".join(ch for ch in prime if ch not in unknown))
        if args.strip() and not prime:
            await chat.say(texts.PRIME_EMPTY)
            return
        if self._waiting >= MAX_WAITING:
            await chat.say(texts.BUSY)
            return
        self._last_bugurt[sender.user_id] = time.monotonic()
        self._warned.discard(sender.user_id)
        posts = await self.generate(prime or None, self._temperature())
        if unknown:
            await chat.say(texts.LEFT_OUT.format(chars=" ".join(unknown[:12])))
        await chat.say(posts[0] if posts else texts.NO_GOOD_POST)

    def _temperature(self) -> float:
        return self.ratings.choose_temperature(self.config.bot.temperatures, self.rng)

    def _cooldown_left(self, sender: Sender) -> float:
        if sender.is_admin:
            return 0.0
        last = self._last_bugurt.get(sender.user_id)
        if last is None:
            return 0.0
        return self.config.bot.cooldown_seconds - (time.monotonic() - last)

    async def generate(
        self, prime: str | None, temperature: float, n: int = 1, generator: Generator | None = None
    ) -> list[str]:
        """Sample off the event loop (with the model served right now unless one is given)."""
        generator = generator or self.generator
        call = functools.partial(
            generator.generate,
            n=n,
            prime=prime,
            temperature=temperature,
            candidates=self.config.bot.candidates,
        )
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        finally:
            self._waiting -= 1

    async def _cmd_top(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(texts.top(self.ratings.top(5)))

    async def _cmd_post(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(await self.publish("admin"))

    async def publish(self, source: str) -> str:
        """Write a post at the bandit's temperature, store it, deliver it; a one-line summary."""
        if not self.outbox.publishers:
            return texts.NO_TARGETS
        temperature = self._temperature()
        posts = await self.generate(None, temperature)
        if not posts:
            return texts.NO_GOOD_POST
        outbox_id = self.outbox.store(posts[0], temperature, source)
        results = await self.outbox.deliver(outbox_id)
        return texts.published(outbox_id, temperature, results)

    async def scheduled_post(self) -> None:
        """The posting job's callback."""
        log.info("scheduled post: %s", await self.publish("schedule"))

    async def _cmd_pause(self, args: str, sender: Sender, chat: Chat) -> None:
        paused = self.schedule.pause()
        await chat.say(texts.PAUSED if paused else texts.ALREADY_PAUSED)

    async def _cmd_resume(self, args: str, sender: Sender, chat: Chat) -> None:
        resumed = self.schedule.resume()
        text = texts.RESUMED if resumed else texts.NOT_PAUSED
        await chat.say(text.format(schedule=self.schedule.describe()))

    async def _cmd_schedule(self, args: str, sender: Sender, chat: Chat) -> None:
        if not args:
            await chat.say(texts.SCHEDULE_USAGE.format(schedule=self.schedule.describe()))
            return
        try:
            self.schedule.set_cron(args)
        except CrontabError as exc:
            await chat.say(texts.BAD_CRONTAB.format(line=args[:60], error=exc))
            return
        self.state.set_schedule_cron(self.config.schedule.cron, " ".join(args.split()))
        await chat.say(texts.SCHEDULED.format(schedule=self.schedule.describe()))

    async def _cmd_status(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(
            texts.status(
                model_dir=self.model_dir,
                info=self.generator.info,
                schedule=self.schedule.describe(),
                targets=list(self.outbox.publishers),
                counts=self.outbox.counts(),
                last=self.outbox.last_post(),
                arms=self.ratings.arms(self.config.bot.temperatures),
                retrain=self.retrainer.describe(),
                uptime=time.monotonic() - self.started,
            )
        )

    async def _cmd_retrain(self, args: str, sender: Sender, chat: Chat) -> None:
        if self.retrainer.running:
            await chat.say(texts.RETRAIN_RUNNING.format(stage=self.retrainer.describe()))
            return
        task = asyncio.create_task(self._retrain(chat))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retrain(self, chat: Chat) -> None:
        outcome = await self.retrainer.run(chat, self.model_dir)
        if outcome is None:
            return
        if outcome.better:
            await self._serve(str(outcome.model_dir), previous=self.model_dir)
            trained = self.generator
        else:
            trained = await asyncio.to_thread(Generator.load, str(outcome.model_dir))
        samples = await self.generate(None, self._temperature(), n=3, generator=trained)
        await chat.say(texts.samples(samples))
        previous = self.state.previous_model(self.config.generator.model_dir) or ""
        keep = {self.model_dir, previous, str(outcome.model_dir)}
        await asyncio.to_thread(self.retrainer.prune, keep)

    async def _cmd_rollback(self, args: str, sender: Sender, chat: Chat) -> None:
        previous = self.state.previous_model(self.config.generator.model_dir)
        if previous is None:
            await chat.say(texts.NO_ROLLBACK)
            return
        await self._serve(previous, previous=self.model_dir)
        await chat.say(texts.ROLLED_BACK.format(model_dir=previous))

    async def _serve(self, model_dir: str, previous: str) -> None:
        """Load a model off the loop, then switch to it (requests in flight finish on the old)."""
        self.generator = await asyncio.to_thread(Generator.load, model_dir)
        self.model_dir = model_dir
        self.state.swap_model(self.config.generator.model_dir, model_dir, previous)
        log.info("serving model %s (previous %s)", model_dir, previous)

    # ---- votes --------------------------------------------------------------------------------

    def vote(self, outbox_id: int, user_id: int, value: int) -> tuple[str, tuple[int, int] | None]:
        """Store a reader's vote; (answer for the reader, new counts or None if unknown post)."""
        counts = self.ratings.vote(outbox_id, user_id, value)
        if counts is None:
            return texts.VOTE_UNKNOWN, None
        return (texts.VOTED_UP if value > 0 else texts.VOTED_DOWN), counts
