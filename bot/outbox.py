"""The outbox: every post is stored as pending in the database before any network call.

A post gets one `deliveries` row per configured target (Telegram channel, VK wall). Delivery
marks a row sent with the platform's message id; a failure leaves it pending with a back-off
time (`next_try`), so the periodic sweep and a restarted bot send it later, exactly once per
target. Only a permanent refusal (bad channel, revoked token) marks a row failed.

Guarantees: a post is never lost once `store` returns. VK calls carry the post's `guid`, so
even a call whose answer was lost cannot publish twice. Telegram has no such key: a crash in
the milliseconds between Telegram's answer and our commit would send that post once more.

Several bot processes may share the database: a process claims the deliveries it is about to
send (`claimed_by`, `claimed_until`) in one UPDATE, which PostgreSQL's row locks and SQLite's
single writer make exclusive, and renews its claim before each send. Another process passes
over a live claim, and takes it over as soon as its owner has died (its `ProcessLife` is free),
or once it has run out (`CLAIM_SECONDS`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from bot.leader import ProcessLife
from common.db import Database

log = logging.getLogger(__name__)
# How long a claim holds off other processes even if its owner's sign of life cannot be read:
# longer than one send with its timeouts and the rate limiter's retries (seconds).
CLAIM_SECONDS = 120.0


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
        db: Database,
        publishers: list[Publisher],
        backoff_seconds: float = 30.0,
        max_backoff_seconds: float = 3600.0,
        claim_seconds: float = CLAIM_SECONDS,
        life: ProcessLife | None = None,
    ) -> None:
        self.db = db
        self.life = life or ProcessLife(db)  # names this process in its claims
        self.claim_seconds = claim_seconds
        self.publishers = {p.target: p for p in publishers}
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self._lock = asyncio.Lock()  # one delivery pass at a time in this process
        # Outcomes of sends the database could not take (out of reach): written before the
        # next pass claims anything, else a post Telegram accepted would be sent again.
        self._unrecorded: list[dict] = []

    @property
    def owner(self) -> str:
        return self.life.owner

    def store(self, text: str, temperature: float | None, source: str,
              model_dir: str | None = None, features: Mapping | None = None,
              conn: sa.Connection | None = None) -> int:
        """Commit the post (with the model and features its readers' votes are judged by) and
        a pending delivery per target, in `conn`'s transaction if given; the outbox id."""
        if conn is None:
            with self.db.write() as conn:
                return self.store(text, temperature, source, model_dir, features, conn)
        outbox_id = conn.execute(
            sa.text("INSERT INTO outbox (text, temperature, source, guid, created_at, model_dir,"
                    " features) VALUES (:text, :temperature, :source, :guid, :now, :model,"
                    " :features) RETURNING id"),
            {"text": text, "temperature": temperature, "source": source,
             "guid": uuid.uuid4().hex, "now": int(time.time()), "model": model_dir,
             "features": json.dumps(dict(features)) if features is not None else None},
        ).scalar_one()
        if self.publishers:
            conn.execute(
                sa.text("INSERT INTO deliveries (outbox_id, target) VALUES (:id, :target)"),
                [{"id": outbox_id, "target": target} for target in self.publishers],
            )
        return int(outbox_id)

    async def deliver(self, outbox_id: int | None = None, force: bool = False) -> list[Result]:
        """Try every due pending delivery (of one post, or all) that no live process has
        claimed; force ignores back-off times."""
        async with self._lock:
            if self._unrecorded:
                self._write_outcomes()  # raises while the database is still out of reach
            results = []
            for row in self._claim(outbox_id, force):
                if self._renew(row["outbox_id"], row["target"]):
                    results.append(await self._deliver_one(row))
            return results

    def _claim(self, outbox_id: int | None, force: bool) -> list[Mapping]:
        """Claim the due deliveries of configured targets; with their posts' text and guid."""
        if not self.publishers:
            return []
        now = time.time()
        sql = ("UPDATE deliveries SET claimed_by = :me, claimed_until = :until"
               " WHERE status = 'pending' AND target IN :targets")
        dead: list[str] = []
        if self.db.postgres:  # SQLite has one process: a claim left by its previous run is void
            self.life.keep()
            dead = self._dead_claimants(now)
            taken_over = " OR claimed_by IN :dead" if dead else ""
            sql += f" AND (claimed_until IS NULL OR claimed_until < :now{taken_over})"
        if not force:
            sql += " AND next_try <= :now"
        if outbox_id is not None:
            sql += " AND outbox_id = :id"
        claim = sa.text(sql + " RETURNING outbox_id, target, attempts").bindparams(
            sa.bindparam("targets", expanding=True))
        if dead:
            claim = claim.bindparams(sa.bindparam("dead", expanding=True))
        with self.db.write() as conn:
            claimed = conn.execute(claim, {
                "me": self.owner, "until": now + self.claim_seconds, "now": now,
                "targets": list(self.publishers), "id": outbox_id, "dead": dead,
            }).mappings().all()
            posts = {} if not claimed else {
                r.id: r for r in conn.execute(
                    sa.text("SELECT id, text, guid FROM outbox WHERE id IN :ids").bindparams(
                        sa.bindparam("ids", expanding=True)),
                    {"ids": sorted({r["outbox_id"] for r in claimed})},
                )
            }
        rows = [{**r, "text": posts[r["outbox_id"]].text, "guid": posts[r["outbox_id"]].guid}
                for r in claimed]
        return sorted(rows, key=lambda r: (r["outbox_id"], r["target"]))

    def _dead_claimants(self, now: float) -> list[str]:
        """The other processes whose live claims on pending deliveries outlived them."""
        with self.db.read() as conn:
            owners = conn.execute(
                sa.text("SELECT DISTINCT claimed_by FROM deliveries WHERE status = 'pending'"
                        " AND claimed_until >= :now AND claimed_by <> :me"),
                {"now": now, "me": self.owner},
            ).scalars().all()
        return [owner for owner in owners if self.life.dead(owner)]

    def _renew(self, outbox_id: int, target: str) -> bool:
        """Extend our claim just before sending; False if another process has taken it over
        (ours ran out while earlier deliveries of this pass were slow)."""
        with self.db.write() as conn:
            return conn.execute(
                sa.text("UPDATE deliveries SET claimed_until = :until WHERE outbox_id = :id"
                     " AND target = :target AND claimed_by = :me AND status = 'pending'"),
                {"until": time.time() + self.claim_seconds, "id": outbox_id, "target": target,
                 "me": self.owner},
            ).rowcount == 1

    async def _deliver_one(self, row: Mapping) -> Result:
        outbox_id, target = row["outbox_id"], row["target"]
        publisher = self.publishers[target]
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
        """The outcome of a send, and the claim released; while the database is out of reach,
        kept for the next pass to write."""
        self._unrecorded.append({
            "status": status, "message_id": message_id, "error": error, "next_try": next_try,
            "sent_at": int(time.time()) if status == "sent" else None,
            "id": outbox_id, "target": target})
        try:
            self._write_outcomes()
        except DBAPIError as exc:
            if not self.db.failed(exc):
                raise

    def _write_outcomes(self) -> None:
        outcomes = list(self._unrecorded)
        with self.db.write() as conn:
            conn.execute(
                sa.text("UPDATE deliveries SET status = :status, message_id = :message_id,"
                     " attempts = attempts + 1, last_error = :error, next_try = :next_try,"
                     " sent_at = :sent_at, claimed_by = NULL, claimed_until = NULL"
                     " WHERE outbox_id = :id AND target = :target"),
                outcomes,
            )
        del self._unrecorded[:len(outcomes)]

    def counts(self) -> dict[str, int]:
        """Deliveries by status, e.g. {'pending': 1, 'sent': 8}."""
        with self.db.read() as conn:
            rows = conn.execute(sa.text("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))
            return {status: int(count) for status, count in rows}

    def last_post(self) -> dict | None:
        """The newest post with at least one sent delivery: id, created_at, targets ('a,b')."""
        with self.db.read() as conn:
            rows = conn.execute(sa.text(
                "SELECT o.id, o.created_at, d.target FROM outbox o JOIN deliveries d"
                " ON d.outbox_id = o.id AND d.status = 'sent' WHERE o.id ="
                " (SELECT MAX(outbox_id) FROM deliveries WHERE status = 'sent') ORDER BY d.target"
            )).all()
        if not rows:
            return None
        return {"id": rows[0].id, "created_at": rows[0].created_at,
                "targets": ",".join(r.target for r in rows)}
