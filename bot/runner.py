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
from bot.editors import Editors
from bot.features import features
from bot.i18n import N_, Texts, texts_for
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
        editors: Editors,
    ) -> None:
        self.config = config
        self.texts = texts_for(config.bot.language)  # for what no user asked for
        self.db = database  # the database its parts share; closed here
        self.settings = settings
        self.slot = slot
        self.outbox = outbox
        self.ratings = ratings
        self.schedule = schedule
        schedule.bind(self.scheduled_post)
        self.retrain = retrain
        self.pool = pool
        self.editors = editors  # review mode (review.mode: editors)
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
        await self.editors.expire()  # reviews past their deadline (they may publish)
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
            await chat.say(sender.texts.t("unknown_command", name=name.lower()[:32]))
            return
        if command.admin and not sender.is_admin:
            log.warning("user %s refused admin command /%s", sender.user_id, command.name)
            await chat.say(sender.texts.t("admin_only", name=command.name))
            return
        await command.handler(self, args.strip(), sender, chat)

    async def _cmd_start(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(sender.texts.t("start"))

    async def _cmd_help(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(help_text(sender.texts, sender.is_admin))

    async def _cmd_bugurt(self, args: str, sender: Sender, chat: Chat) -> None:
        tr = sender.texts
        wait = self._cooldown_left(sender)
        if wait > 0:
            if sender.user_id not in self._warned:  # one polite line per cooldown, not a flood
                self._warned.add(sender.user_id)
                await chat.say(tr.n("cooldown", max(1, round(wait))))
            return
        prime = self.posts.read(args)
        if prime.refused == posts.TOO_LONG:
            await chat.say(tr.n("prime_too_long", prime.length, limit=MAX_PRIME_CHARS))
            return
        if prime.refused:
            await chat.say(tr.t("prime_empty"))
            return
        order = self.posts.order(prime)  # no await before it: requests keep their order
        if order.refused:
            await chat.say(tr.t("busy"))
            return
        self._last_bugurt[sender.user_id] = time.monotonic()
        self._warned.discard(sender.user_id)
        if order.ready:
            await chat.say(order.ready[0])
            return
        async with typing(chat):
            written = await order.posts()
        if prime.left_out:
            await chat.say(tr.t("left_out", chars=" ".join(prime.left_out[:12])))
        await chat.say(written[0] if written else tr.t("no_good_post"))

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
        await chat.say(texts.top(sender.texts, self.ratings.top(5)))

    async def _cmd_post(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(await self.post("admin", sender.texts))

    async def post(self, source: str, tr: Texts) -> str:
        """A channel post now: published (auto), or sent to the editors (review mode)."""
        if self.editors.on:
            if not self.outbox.publishers:
                return tr.t("no_targets")
            return await self.editors.open(source, tr)
        return await self.publish(source, tr)

    async def publish(self, source: str, tr: Texts) -> str:
        """Write a post at the bandit's temperature, store it, deliver it; a one-line summary."""
        if not self.outbox.publishers:
            return tr.t("no_targets")
        best = self.pool.best_channel()  # the best of the candidates gathered since the last post
        if best is None:
            temperature = self._temperature()
            posts = await self.slot.generate(None, temperature)
            if not posts:
                return tr.t("no_good_post")
            best = posts[0], temperature
        text, temperature = best
        outbox_id = self.outbox.store(text, temperature, source, self.slot.model_dir,
                                      features(text, None, temperature))
        try:
            results = await self.outbox.deliver(outbox_id)
        except Exception as exc:
            if not self.db.failed(exc):
                raise
            return tr.t("publish_later", id=outbox_id)  # pending: the sweep sends it
        return texts.published(tr, outbox_id, temperature, results)

    async def scheduled_post(self) -> None:
        """The posting job's callback; its summary goes to the log in bot.language. While the
        database is out of reach nothing is stored: the post is written again every
        OUTAGE_RETRY_SECONDS until it is back (within the misfire grace), so an outage neither
        loses the run nor posts it twice."""
        deadline = time.monotonic() + self.config.schedule.misfire_grace_seconds
        while True:
            try:
                log.info("scheduled post: %s", await self.post("schedule", self.texts))
                return
            except Exception as exc:
                if not self.db.failed(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(OUTAGE_RETRY_SECONDS)

    async def _cmd_pause(self, args: str, sender: Sender, chat: Chat) -> None:
        tr = sender.texts
        await chat.say(tr.t("paused") if self.schedule.pause() else tr.t("already_paused"))

    async def _cmd_resume(self, args: str, sender: Sender, chat: Chat) -> None:
        tr = sender.texts
        resumed = self.schedule.resume()
        schedule = self.schedule.describe(tr)
        if resumed:
            await chat.say(tr.t("resumed", schedule=schedule))
        else:
            await chat.say(tr.t("not_paused", schedule=schedule))

    async def _cmd_schedule(self, args: str, sender: Sender, chat: Chat) -> None:
        tr = sender.texts
        if not args:
            await chat.say(tr.t("schedule_usage", schedule=self.schedule.describe(tr)))
            return
        try:
            self.schedule.set_cron(args)
        except CrontabError as exc:
            shown = " ".join(args.split())[:60]  # one line, however it was typed
            await chat.say(tr.t("bad_crontab", line=shown, error=texts.crontab_error(tr, exc)))
            return
        self.settings.set_schedule_cron(self.config.schedule.cron, " ".join(args.split()))
        await chat.say(tr.t("scheduled", schedule=self.schedule.describe(tr)))

    async def _cmd_status(self, args: str, sender: Sender, chat: Chat) -> None:
        tr = sender.texts
        try:
            text = self._status(tr)
        except Exception as exc:
            if not self.db.failed(exc):
                raise
            text = texts.status_offline(tr, self.slot.model_dir, time.monotonic() - self.started)
        outage = self.db.outage  # first when it is news, last when all is well
        if outage:
            await chat.say(f"{texts.database_down(tr, outage)}\n{text}")
        else:
            up = tr.t("status.database_up", dialect=self.db.dialect)
            await chat.say(f"{text}\n{up}")

    def _status(self, tr: Texts) -> str:
        """/status from the database and the served model (what it says is in texts.status)."""
        model_dir = self.slot.model_dir
        return texts.status(
            tr,
            model_dir=model_dir,
            info=self.slot.generator.info,
            schedule=self.schedule.describe(tr),
            targets=list(self.outbox.publishers),
            counts=self.outbox.counts(),
            last=self.outbox.last_post(),
            arms=self.ratings.arms(self.config.bot.temperatures),
            retrain=self.retrain.describe(tr),
            pool=texts.pool(tr, self.pool.store.ready(model_dir),
                            self.pool.store.gathered(model_dir)[0]),
            uptime=time.monotonic() - self.started,
            review=self.editors.describe(tr),
            ranking=self.editors.ranking.describe(tr),
        )

    async def _cmd_review(self, args: str, sender: Sender, chat: Chat) -> None:
        await chat.say(self.editors.listing(sender.texts))

    async def _cmd_retrain(self, args: str, sender: Sender, chat: Chat) -> None:
        tr = sender.texts
        if self.retrain.start(chat, tr):
            return
        if self.retrain.running:
            await chat.say(tr.t("retrain.running", stage=self.retrain.describe(tr)))
        else:
            await chat.say(tr.t("retrain.elsewhere"))

    async def _cmd_rollback(self, args: str, sender: Sender, chat: Chat) -> None:
        tr = sender.texts
        if self.retrain.running:  # the job evaluates against, and may swap, the served model
            await chat.say(tr.t("retrain.running", stage=self.retrain.describe(tr)))
            return
        previous = self.slot.previous()
        if previous is None:
            await chat.say(tr.t("no_rollback"))
            return
        await self.slot.serve(previous)
        await chat.say(tr.t("rolled_back", model_dir=previous))

    async def inline(self, query: str, user_id: int, tr: Texts) -> InlineAnswer:
        """Posts for an inline query (`@bot` or `@bot TEXT`), or a one-line note why none."""
        return await self.inline_answers.answer(query, user_id, tr)

    # ---- reviews ------------------------------------------------------------------------------

    async def review_tap(self, review_id: int, action: str, sender: Sender,
                         in_review_chat: bool) -> str:
        """An editor's button under a review (p<N>, next, none); the answer to the tap."""
        return await self.editors.act(review_id, action, sender.user_id, sender.name,
                                      sender.is_admin or in_review_chat, sender.texts)

    async def review_reply(self, review_id: int, text: str, sender: Sender,
                           in_review_chat: bool) -> str:
        """A corrected text in reply to a review; the answer."""
        return await self.editors.edit(review_id, text, sender.user_id, sender.name,
                                       sender.is_admin or in_review_chat, sender.texts)

    async def review_answer(self, line: str, sender: Sender) -> str | None:
        """A typed answer to the newest open review (terminal); None if none is open."""
        return await self.editors.answer(line, sender.user_id, sender.name, sender.texts)

    # ---- votes --------------------------------------------------------------------------------

    def vote(
        self, outbox_id: int, sender: Sender, value: int
    ) -> tuple[str, tuple[int, int] | None]:
        """Store a reader's vote; (answer for the reader, new counts or None if unknown post)."""
        tr = sender.texts
        counts = self.ratings.vote(outbox_id, sender.user_id, value)
        if counts is None:
            return tr.t("vote.unknown"), None
        return (tr.t("vote.up") if value > 0 else tr.t("vote.down")), counts


@dataclass(frozen=True)
class Command:
    """One chat command: who may run it, its handler, its /help line(s) and menu description."""

    name: str
    admin: bool
    handler: Callable[[Runner, str, Sender, Chat], Awaitable[None]]
    help: str  # message id of its /help line(s) ('' : not listed)
    menu: str = ""  # of its entry in Telegram's command menu ('': not in it; it lists public ones)


# help and menu are message ids (locales/): the words of each command's /help line and menu entry.
COMMANDS = (
    Command("start", False, Runner._cmd_start, "", menu=N_("menu.start")),
    Command("bugurt", False, Runner._cmd_bugurt, N_("help.bugurt"), menu=N_("menu.bugurt")),
    Command("top", False, Runner._cmd_top, N_("help.top"), menu=N_("menu.top")),
    Command("help", False, Runner._cmd_help, N_("help.help"), menu=N_("menu.help")),
    Command("post", True, Runner._cmd_post, N_("help.post")),
    Command("pause", True, Runner._cmd_pause, N_("help.pause")),
    Command("resume", True, Runner._cmd_resume, N_("help.resume")),
    Command("schedule", True, Runner._cmd_schedule, N_("help.schedule")),
    Command("status", True, Runner._cmd_status, N_("help.status")),
    Command("review", True, Runner._cmd_review, N_("help.review")),
    Command("retrain", True, Runner._cmd_retrain, N_("help.retrain")),
    Command("rollback", True, Runner._cmd_rollback, N_("help.rollback")),
)
BY_NAME = {command.name: command for command in COMMANDS}


def help_text(tr: Texts, admin: bool) -> str:
    """/help: the public commands, and for an admin the admin commands below them."""
    text = "\n".join(tr.t(c.help, limit=MAX_PRIME_CHARS) for c in COMMANDS
                     if c.help and not c.admin)
    if admin:
        text += "\n\n" + tr.t("help.admin") + "\n" + "\n".join(
            tr.t(c.help) for c in COMMANDS if c.admin)
    return text


def menu(tr: Texts) -> list[tuple[str, str]]:
    """(command, description) of Telegram's command menu."""
    return [(c.name, tr.t(c.menu)) for c in COMMANDS if c.menu]
