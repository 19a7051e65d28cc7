"""The inbox: every Telegram update is committed to the database before Telegram is told it
arrived, and marked done once it has been handled, so a killed process loses none.

Why: python-telegram-bot's webhook server answers Telegram 200 as soon as an update is in the
Application's queue, and long polling confirms updates with the next getUpdates call. Telegram
never sends an acknowledged update again, so without the inbox a process killed with updates
queued or in progress drops them unanswered. With it:
- `InboxQueue.put`, which PTB's webhook server and updater await before acknowledging, commits
  the update as this process's (a second delivery of the same `update_id` is dropped there);
- `InboxProcessor` marks it done once the Application has handled it;
- `Inbox.take_over` hands this process the open updates of dead ones: on SQLite (one process)
  those a previous run left, on PostgreSQL those whose owner no longer holds its sign of life
  (`ProcessLife`, a session advisory lock that PostgreSQL frees when the process dies).

While the database is out of reach (a restart, a backup's lock) updates are handled without
being recorded, so that people get their answers and admins their /status meanwhile: for those
alone a process killed during the outage loses what it had not answered.

Guarantee: at least once. A process killed in the milliseconds between Telegram's answer to a
reply and the commit of done has that update handled once more by another process (Telegram
takes no idempotency key). After a database restart cuts every live owner's lock connection,
each owner takes its lock back at its next `take_over` (within TAKE_OVER_SECONDS), and a
process that took its own back judges no other dead for REGAIN_GRACE_SECONDS meanwhile
(bot/leader.py), so the owners' in-flight updates are not handled a second time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from telegram import Bot, Update
from telegram.ext import SimpleUpdateProcessor

from bot.leader import ProcessLife
from common.db import Database

log = logging.getLogger(__name__)
TAKE_OVER_SECONDS = 10.0  # how often a process looks for a dead one's open updates
KEEP_SECONDS = 86_400.0  # handled updates are kept this long to recognise a late second delivery


class Inbox:
    """The `inbox` table of one process: record, mark done, take over, forget."""

    def __init__(self, db: Database, life: ProcessLife, keep_seconds: float = KEEP_SECONDS) -> None:
        self.db = db
        self.life = life  # kept by its owner from before the first update is recorded
        self.keep_seconds = keep_seconds
        self._unmarked: dict[int, float] = {}  # update id → when handled, not yet written

    @property
    def owner(self) -> str:
        return self.life.owner

    def record(self, update_id: int, body: str) -> bool:
        """Commit an update as this process's; False if the inbox knows it already (Telegram
        delivered it again: it is handled, or being handled, by its first owner)."""
        with self.db.write() as conn:
            return conn.execute(
                sa.text("INSERT INTO inbox (update_id, body, owner, received_at)"
                        " VALUES (:id, :body, :me, :now) ON CONFLICT (update_id) DO NOTHING"),
                {"id": update_id, "body": body, "me": self.owner, "now": time.time()},
            ).rowcount == 1

    def done(self, update_id: int) -> None:
        """Mark an update handled. If the database cannot be reached (a restart), the mark is
        kept and written by the next `take_over`: an open update outliving this process would
        be handled again by another."""
        self._unmarked[update_id] = time.time()
        try:
            self._mark_done()
        except DBAPIError as exc:
            if not self.db.failed(exc):  # an outage is logged once, by the database
                log.warning("inbox: cannot mark update %d done yet (%s); will retry",
                            update_id, str(exc.orig or exc).strip().splitlines()[0])

    def _mark_done(self) -> None:
        marks = dict(self._unmarked)
        with self.db.write() as conn:
            conn.execute(
                sa.text("UPDATE inbox SET done_at = :now WHERE update_id = :id AND owner = :me"),
                [{"now": at, "id": i, "me": self.owner} for i, at in marks.items()],
            )
        for update_id in marks:
            self._unmarked.pop(update_id, None)  # (another thread's pass may have written it)

    def take_over(self) -> list[str]:
        """Make the open updates of dead processes this process's; their bodies, oldest first.
        Also takes this process's sign of life again if a database restart cut it, and forgets
        updates handled more than keep_seconds ago."""
        self.life.keep()
        if self._unmarked:
            self._mark_done()
        with self.db.read() as conn:
            owners = conn.execute(
                sa.text("SELECT DISTINCT owner FROM inbox WHERE done_at IS NULL AND owner <> :me"),
                {"me": self.owner},
            ).scalars().all()
        taken = []
        for owner in owners:
            if not self.life.dead(owner):
                continue  # alive: still handling them
            with self.db.write() as conn:
                # One statement: of two processes taking over together, each row goes to one.
                taken += conn.execute(
                    sa.text("UPDATE inbox SET owner = :me WHERE owner = :dead AND done_at IS NULL"
                            " RETURNING update_id, body"),
                    {"me": self.owner, "dead": owner},
                ).all()
        with self.db.write() as conn:
            conn.execute(sa.text("DELETE FROM inbox WHERE done_at < :before"),
                         {"before": time.time() - self.keep_seconds})
        return [body for _, body in sorted(taken)]


class InboxQueue(asyncio.Queue):
    """The Application's update queue: an update is in the inbox before `put` returns."""

    def __init__(self, inbox: Inbox) -> None:
        super().__init__()
        self.inbox = inbox

    async def put(self, item: object) -> None:
        if isinstance(item, Update):
            try:
                fresh = await asyncio.to_thread(self.inbox.record, item.update_id,
                                                item.to_json())
            except DBAPIError as exc:
                if not self.inbox.db.failed(exc):
                    raise
                fresh = True  # the database is out of reach: handled now, unrecorded
            if not fresh:
                log.info("update %d came again: already in the inbox", item.update_id)
                return
        await super().put(item)

    async def take_over(self, bot: Bot) -> int:
        """Queue the open updates of dead processes (already recorded as ours); how many."""
        bodies = await asyncio.to_thread(self.inbox.take_over)
        for body in bodies:
            await super().put(Update.de_json(json.loads(body), bot))
        if bodies:
            log.warning("inbox: took over %d update(s) a dead process left unhandled",
                        len(bodies))
        return len(bodies)


class InboxProcessor(SimpleUpdateProcessor):
    """Handles updates concurrently, as PTB's own processor, and marks each done after."""

    def __init__(self, inbox: Inbox, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self.inbox = inbox

    async def do_process_update(self, update: object, coroutine) -> None:
        await coroutine  # the Application's handlers; their errors go to its error handler
        if isinstance(update, Update):
            await asyncio.to_thread(self.inbox.done, update.update_id)
