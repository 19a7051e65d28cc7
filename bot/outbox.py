"""The outbox: every post is stored as pending in SQLite before any network call.

A post gets one `deliveries` row per configured target (Telegram channel, VK wall). Delivery
marks a row sent with the platform's message id; a failure leaves it pending with a back-off
time (`next_try`), so the periodic sweep and a restarted bot send it later, exactly once per
target. Only a permanent refusal (bad channel, revoked token) marks a row failed.

Guarantees: a post is never lost once `store` returns. VK calls carry the post's `guid`, so
even a call whose answer was lost cannot publish twice. Telegram has no such key: a crash in
the milliseconds between Telegram's answer and our commit would send that post once more.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """A transient failure (network, flood control): try again after `delay` seconds or back off."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class PermanentFailure(Exception):
    """The platform refused the post for good (bad chat id, no rights): do not retry."""


class Publisher(Protocol):
    target: str  # 'telegram' or 'vk'

    async def publish(self, outbox_id: int, text: str, guid: str) -> str:
        """Publish and return the platform's message id; raise RetryLater/PermanentFailure."""
        ...


@dataclass(frozen=True)
class Result:
    target: str
    status: str  # sent, pending, failed
    detail: str  # message id, or the error that left it pending/failed


class Outbox:
    def __init__(
        self,
        conn: sqlite3.Connection,
        publishers: list[Publisher],
        backoff_seconds: float = 30.0,
        max_backoff_seconds: float = 3600.0,
    ) -> None:
        self.conn = conn
        self.publishers = {p.target: p for p in publishers}
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._lock = asyncio.Lock()  # one delivery pass at a time: no target sent twice

    def store(self, text: str, temperature: float | None, source: str) -> int:
        """Commit the post and a pending delivery per target; returns the outbox id."""
        now = int(time.time())
        with self.conn:
            cur = self.conn.execute(
                "INSERT INTO outbox (text, temperature, source, guid, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (text, temperature, source, uuid.uuid4().hex, now),
            )
            outbox_id = int(cur.lastrowid)
            self.conn.executemany(
                "INSERT INTO deliveries (outbox_id, target) VALUES (?, ?)",
                [(outbox_id, target) for target in self.publishers],
            )
        return outbox_id

    async def deliver(self, outbox_id: int | None = None, force: bool = False) -> list[Result]:
        """Try every due pending delivery (of one post, or all); force ignores back-off times."""
        async with self._lock:
            rows = self._due(outbox_id, force)
            results = []
            for row in rows:
                results.append(await self._deliver_one(row))
            return results

    def _due(self, outbox_id: int | None, force: bool) -> list[sqlite3.Row]:
        sql = (
            "SELECT d.outbox_id, d.target, d.attempts, o.text, o.guid FROM deliveries d"
            " JOIN outbox o ON o.id = d.outbox_id WHERE d.status = 'pending'"
        )
        args: list[object] = []
        if not force:
            sql += " AND d.next_try <= ?"
            args.append(time.time())
        if outbox_id is not None:
            sql += " AND d.outbox_id = ?"
            args.append(outbox_id)
        return self.conn.execute(sql + " ORDER BY d.outbox_id, d.target", args).fetchall()

    async def _deliver_one(self, row: sqlite3.Row) -> Result:
        outbox_id, target = row["outbox_id"], row["target"]
        publisher = self.publishers.get(target)
        if publisher is None:  # the target was removed from the config since the post was stored
            return Result(target, "pending", "target not configured now")
        try:
            message_id = await publisher.publish(outbox_id, row["text"], row["guid"])
        except RetryLater as exc:
            return self._retry_later(outbox_id, target, row["attempts"], exc)
        except PermanentFailure as exc:
            self._record(outbox_id, target, "failed", None, str(exc), 0)
            log.error("post %d to %s failed for good: %s", outbox_id, target, exc)
            return Result(target, "failed", str(exc))
        except Exception as exc:  # a publisher's bug must not stop the other deliveries
            log.exception("post %d to %s: unexpected error", outbox_id, target)
            return self._retry_later(outbox_id, target, row["attempts"], RetryLater(repr(exc)))
        self._record(outbox_id, target, "sent", message_id, None, 0)
        log.info("post %d sent to %s as %s", outbox_id, target, message_id)
        return Result(target, "sent", message_id)

    def _retry_later(self, outbox_id: int, target: str, attempts: int, exc: RetryLater) -> Result:
        delay = exc.delay
        if delay is None:  # exponential back-off: base, 2 × base, 4 × base, ... up to the cap
            delay = min(self.backoff_seconds * 2**attempts, self.max_backoff_seconds)
        self._record(outbox_id, target, "pending", None, str(exc), time.time() + delay)
        log.warning("post %d to %s: %s; retry in %.0f s", outbox_id, target, exc, delay)
        return Result(target, "pending", str(exc))

    def _record(
        self,
        outbox_id: int,
        target: str,
        status: str,
        message_id: str | None,
        error: str | None,
        next_try: float,
    ) -> None:
        with self.conn:
            self.conn.execute(
                "UPDATE deliveries SET status = ?, message_id = ?, attempts = attempts + 1,"
                " last_error = ?, next_try = ?, sent_at = ? WHERE outbox_id = ? AND target = ?",
                (
                    status,
                    message_id,
                    error,
                    next_try,
                    int(time.time()) if status == "sent" else None,
                    outbox_id,
                    target,
                ),
            )

    def counts(self) -> dict[str, int]:
        """Deliveries by status, e.g. {'pending': 1, 'sent': 8}."""
        rows = self.conn.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
        return {status: count for status, count in rows}

    def last_post(self) -> sqlite3.Row | None:
        """The newest post with at least one sent delivery (id, created_at, sent targets)."""
        return self.conn.execute(
            "SELECT o.id, o.created_at, group_concat(d.target) AS targets FROM outbox o"
            " JOIN deliveries d ON d.outbox_id = o.id AND d.status = 'sent'"
            " GROUP BY o.id ORDER BY o.id DESC LIMIT 1"
        ).fetchone()
