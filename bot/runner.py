"""The bot's commands, knowing nothing of Telegram: (command, text, sender) → replies to a Chat.

Telegram handlers and the terminal chat both call `Runner.command`. `/bugurt` takes a ready post
from the pool (bot/pool.py); `/bugurt TEXT`, and `/bugurt` when the pool is empty, sample on
demand in the one sampling thread, first come first served, while the chat shows "typing".
Beyond `pool.queue_limit` waiting requests the answer is a polite "busy".
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot import posts, texts
from bot.chat import Chat, Sender, typing
from bot.inline import InlineAnswer, InlineAnswers
from bot.model_slot import ModelSlot
from bot.outbox import Outbox
from bot.pool import OUTAGE_RETRY_SECONDS, Pool
from bot.posts import Posts
from bot.prime import MAX_PRIME_CHARS
from bot.ratings import Ratings
from bot.retrain import RetrainJob
from bot.schedule import Schedule
from bot.settings import RuntimeSettings
from common.config import Config
from common.crontab import CrontabError
from common.db import Database

log = logging.getLogger(__name__)

def split_command(text: str) -> tuple[str, str, str]:
    """'/Cmd@Bot rest' → ('cmd', 'bot', 'rest'): the rest keeps its newlines."""
    parts = text.strip().split(maxsplit=1)
    head = parts[0] if parts else ""
    name, _, addressee = head.lstrip("/").partition("@")
    return name.lower(), addressee.lower(), parts[1] if len(parts) > 1 else ""


class Runner:
    def __init__(
        self,
        config: Config,
        database: Database,
        settings: RuntimeSettings,
        slot: ModelSlot,
        outbox: Outbox,
        ratings: Ratings,
        schedule: Schedule,
        retrain: RetrainJob,
        pool: Pool,
    ) -> None:
        self.config = config
        self.db = database  # the database its parts share; closed here
        self.settings = settings
        self.slot = slot
        self.outbox = outbox
        self.ratings = ratings
        self.schedule = schedule
        schedule.bind(self.scheduled_post)
        self.retrain = retrain
        self.pool = pool
        self.posts = Posts(slot, pool, config.pool.queue_limit, self._temperature)
        self.inline_answers = InlineAnswers(config, self.posts)
        self.rng = random.Random()  # the bandit's draws
        self.started = time.monotonic()
        self._last_bugurt: dict[int, float] = {}  # user id → monotonic time of the last accepted
        self._warned: set[int] = set()  # users told to wait during their current cooldown

    # ---- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Lead the schedule if no other process does (scheduler running) and send what a
        previous run left pending."""
        self.lead()
        self.slot.warm_up()  # not on a user's first /bugurt
        self.pool.start()
        await self.sweep(force=True)

    def lead(self) -> None:
        """Take the schedule's lead when free: at start, then periodically (bot/leader.py)."""
        self.schedule.lead(lambda: self.settings.schedule_cron(self.config.schedule.cron))

    async def follow_model(self) -> None:
        """Serve the model another process swapped in (periodic job); not while our own
        retrain runs: it evaluates against the served model and swaps it itself."""
        if not self.retrain.running:
            await self.slot.follow()

    async def sweep(self, force: bool = False) -> None:
        """Deliver pending posts whose retry time has come (periodic job; all of them on start)."""
        if self.outbox.publishers:
            await self.outbox.deliver(force=force)
        self.settings.beat()  # `python -m bot --health` reads it: the event loop is alive

    async def wait_idle(self) -> None:
        """Wait for background work (a retrain) to finish."""
        await self.retrain.wait()

    async def close(self) -> None:
        """Stop a retrain, the job's callback, the pool worker and the sampling thread; end
        this process's sign of life; close the database."""
        await self.retrain.stop()
        self.schedule.close()
        self.pool.close()
        self.slot.close()
        self.outbox.life.end()
        self.db.close()

    # ---- commands -----------------------------------------------------------------------------

    async def command(self, name: str, args: str, sender: Sender, chat: Chat) -> None:
        """Run one command for `sender`; every outcome is a short reply (or none on purpose)."""
        command = BY_NAME.get(name.lower())
        if command is None:
            await chat.say(texts.UNKNOWN.format(name=name.lower()[:32]))
            return
        if command.admin and not sender.is_admin:
            log.warning("user %s refused admin command /%s", sender.user_id, command.name)
            await chat.say(texts.ADMIN_ONLY.format(name=command.name))
            return
        await command.handler(self, args.strip(), sender, chat)

    async def _cmd_start(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(texts.START)

    async def _cmd_help(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(help_text(sender.is_admin))

    async def _cmd_bugurt(self, args: str, sender: Sender, chat: Chat) -> None:
        wait = self._cooldown_left(sender)
        if wait > 0:
            if sender.user_id not in self._warned:  # one polite line per cooldown, not a flood
                self._warned.add(sender.user_id)
                await chat.say(texts.COOLDOWN.format(seconds=max(1, round(wait))))
            return
        prime = self.posts.read(args)
        if prime.refused:
            await chat.say(texts.PRIME_TOO_LONG.format(length=prime.length, limit=MAX_PRIME_CHARS)
                           if prime.refused == posts.TOO_LONG else texts.PRIME_EMPTY)
            return
        order = self.posts.order(prime)  # no await before it: requests keep their order
        if order.refused:
            await chat.say(texts.BUSY)
            return
        self._last_bugurt[sender.user_id] = time.monotonic()
        self._warned.discard(sender.user_id)
        if order.ready:
            await chat.say(order.ready[0])
            return
        async with typing(chat):
            written = await order.posts()
        if prime.left_out:
            await chat.say(texts.LEFT_OUT.format(chars=" ".join(prime.left_out[:12])))
        await chat.say(written[0] if written else texts.NO_GOOD_POST)

    def _temperature(self) -> float:
        return self.ratings.choose_temperature(self.config.bot.temperatures, self.rng)

    def _cooldown_left(self, sender: Sender) -> float:
        if sender.is_admin:
            return 0.0
        last = self._last_bugurt.get(sender.user_id)
        if last is None:
            return 0.0
        return self.config.bot.cooldown_seconds - (time.monotonic() - last)

    async def _cmd_top(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(texts.top(self.ratings.top(5)))

    async def _cmd_post(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(await self.publish("admin"))

    async def publish(self, source: str) -> str:
        """Write a post at the bandit's temperature, store it, deliver it; a one-line summary."""
        if not self.outbox.publishers:
            return texts.NO_TARGETS
        best = self.pool.best_channel()  # the best of the candidates gathered since the last post
        if best is None:
            temperature = self._temperature()
            posts = await self.slot.generate(None, temperature)
            if not posts:
                return texts.NO_GOOD_POST
            best = posts[0], temperature
        text, temperature = best
        outbox_id = self.outbox.store(text, temperature, source)
        try:
            results = await self.outbox.deliver(outbox_id)
        except Exception as exc:
            if not self.db.failed(exc):
                raise
            return texts.PUBLISH_LATER.format(id=outbox_id)  # pending: the sweep sends it
        return texts.published(outbox_id, temperature, results)

    async def scheduled_post(self) -> None:
        """The posting job's callback. While the database is out of reach nothing is stored:
        the post is written again every OUTAGE_RETRY_SECONDS until it is back (within the
        misfire grace), so an outage neither loses the run nor posts it twice."""
        deadline = time.monotonic() + self.config.schedule.misfire_grace_seconds
        while True:
            try:
                log.info("scheduled post: %s", await self.publish("schedule"))
                return
            except Exception as exc:
                if not self.db.failed(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(OUTAGE_RETRY_SECONDS)

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
            shown = " ".join(args.split())[:60]  # one line, however it was typed
            await chat.say(texts.BAD_CRONTAB.format(line=shown, error=exc))
            return
        self.settings.set_schedule_cron(self.config.schedule.cron, " ".join(args.split()))
        await chat.say(texts.SCHEDULED.format(schedule=self.schedule.describe()))

    async def _cmd_status(self, args: str, sender: Sender, chat: Chat) -> None:
        try:
            text = self._status()
        except Exception as exc:
            if not self.db.failed(exc):
                raise
            text = texts.status_offline(self.slot.model_dir, time.monotonic() - self.started)
        outage = self.db.outage  # first when it is news, last when all is well
        await chat.say(f"{texts.database_down(outage)}\n{text}" if outage else
                       f"{text}\nDatabase: {self.db.dialect}, reachable")

    def _status(self) -> str:
        """/status from the database and the served model (what it says is in texts.status)."""
        return (
            texts.status(
                model_dir=self.slot.model_dir,
                info=self.slot.generator.info,
                schedule=self.schedule.describe(),
                targets=list(self.outbox.publishers),
                counts=self.outbox.counts(),
                last=self.outbox.last_post(),
                arms=self.ratings.arms(self.config.bot.temperatures),
                retrain=self.retrain.describe(),
                pool=self.pool.describe(),
                uptime=time.monotonic() - self.started,
            )
        )

    async def _cmd_retrain(self, args: str, sender: Sender, chat: Chat) -> None:
        if self.retrain.start(chat):
            return
        if self.retrain.running:
            await chat.say(texts.RETRAIN_RUNNING.format(stage=self.retrain.describe()))
        else:
            await chat.say(texts.RETRAIN_ELSEWHERE)

    async def _cmd_rollback(self, args: str, sender: Sender, chat: Chat) -> None:
        if self.retrain.running:  # the job evaluates against, and may swap, the served model
            await chat.say(texts.RETRAIN_RUNNING.format(stage=self.retrain.describe()))
            return
        previous = self.slot.previous()
        if previous is None:
            await chat.say(texts.NO_ROLLBACK)
            return
        await self.slot.serve(previous)
        await chat.say(texts.ROLLED_BACK.format(model_dir=previous))

    async def inline(self, query: str, user_id: int) -> InlineAnswer:
        """Posts for an inline query (`@bot` or `@bot TEXT`), or a one-line note why none."""
        return await self.inline_answers.answer(query, user_id)

    # ---- votes --------------------------------------------------------------------------------

    def vote(self, outbox_id: int, user_id: int, value: int) -> tuple[str, tuple[int, int] | None]:
        """Store a reader's vote; (answer for the reader, new counts or None if unknown post)."""
        counts = self.ratings.vote(outbox_id, user_id, value)
        if counts is None:
            return texts.VOTE_UNKNOWN, None
        return (texts.VOTED_UP if value > 0 else texts.VOTED_DOWN), counts


@dataclass(frozen=True)
class Command:
    """One chat command: who may run it, its handler, its /help line(s) and menu description."""

    name: str
    admin: bool
    handler: Callable[[Runner, str, Sender, Chat], Awaitable[None]]
    help: str  # lines of /help ('' : not listed)
    menu: str = ""  # Telegram's command menu ('': not in the menu; it lists public commands)


COMMANDS = (
    Command("start", False, Runner._cmd_start, "", menu="what this bot does"),
    Command(
        "bugurt", False, Runner._cmd_bugurt,
        "/bugurt: a fresh bugurt\n"
        f"/bugurt TEXT: a bugurt that starts with TEXT (at most {MAX_PRIME_CHARS} characters)",
        menu="a fresh bugurt; add words to start it with them",
    ),
    Command("top", False, Runner._cmd_top, "/top: the posts readers liked most",
            menu="the posts readers liked most"),
    Command("help", False, Runner._cmd_help, "/help: this list", menu="all commands"),
    Command("post", True, Runner._cmd_post, "/post: write and publish one post now"),
    Command("pause", True, Runner._cmd_pause, "/pause: stop scheduled posting"),
    Command("resume", True, Runner._cmd_resume, "/resume: restart scheduled posting"),
    Command("schedule", True, Runner._cmd_schedule,
            "/schedule MIN HOUR DAY MONTH WEEKDAY: set the posting crontab"),
    Command("status", True, Runner._cmd_status,
            "/status: model, schedule, outbox, last post, uptime"),
    Command("retrain", True, Runner._cmd_retrain,
            "/retrain: scrape, train, evaluate, and serve the new model if it is better"),
    Command("rollback", True, Runner._cmd_rollback, "/rollback: serve the previous model again"),
)
BY_NAME = {command.name: command for command in COMMANDS}


def help_text(admin: bool) -> str:
    """/help: the public commands, and for an admin the admin commands below them."""
    text = "\n".join(c.help for c in COMMANDS if c.help and not c.admin)
    if admin:
        text += "\n\nAdmin commands:\n" + "\n".join(c.help for c in COMMANDS if c.admin)
    return text


def menu() -> list[tuple[str, str]]:
    """(command, description) of Telegram's command menu."""
    return [(c.name, c.menu) for c in COMMANDS if c.menu]
