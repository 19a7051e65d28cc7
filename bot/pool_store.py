"""The pool's rows in the database (table `pool`, schema in common/db.py): ready replies and the
channel's gathered candidates, each naming the model that wrote it; handed out by one statement
each, so no post goes out twice across threads and processes (bot/pool.py has the worker that
fills them and the rules they follow).
"""

from __future__ import annotations

import time
from collections import Counter

import sqlalchemy as sa

from common.db import Database
from generator.sample import Candidate

# handed-out rows stay a day (what was served), and beyond it while they are among the last
# pool.memory of their kind (the feed's memory against repetition), whatever their model
USED_KEPT_SECONDS = 86400.0
POOL_LOCK = 0x6E627570  # PostgreSQL advisory lock: one process at a time counts and adds rows


class PoolStore:
    """The `pool` table (the engine hands each thread its own connection)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, model_dir: str, kind: str, temperature: float, candidates: list[Candidate],
            scores: list[float], cap: int | None = None) -> int:
        """Store candidates, best first, with their ranking scores (their likelihoods) until
        `cap` ready rows of their kind (replies: at their temperature) are there, counted in the
        same locked transaction as the insert, so several processes filling one pool never
        overfill it; how many were stored."""
        rows = list(zip(candidates, scores, strict=True))
        with self.db.write() as conn:
            self.db.lock(conn, POOL_LOCK)
            if cap is not None:
                where = " AND temperature = :t" if kind == "reply" else ""
                ready = conn.execute(sa.text(
                    "SELECT COUNT(*) FROM pool WHERE model_dir = :m AND kind = :kind"
                    f" AND used_at IS NULL{where}"
                ), {"m": model_dir, "kind": kind, "t": temperature}).scalar_one()
                rows = rows[:max(0, cap - ready)]
            if rows:
                conn.execute(sa.text(
                    "INSERT INTO pool (model_dir, kind, temperature, text, score, created_at)"
                    " VALUES (:m, :kind, :t, :text, :score, :now)"
                ), [{"m": model_dir, "kind": kind, "t": temperature, "text": c.text,
                     "score": score, "now": time.time()} for c, score in rows])
        return len(rows)

    def take(self, model_dir: str, temperature: float, n: int = 1) -> list[str]:
        """Up to n ready posts of the model, nearest `temperature` first, marked used."""
        with self.db.write() as conn:
            rows = conn.execute(sa.text(
                # `used_at IS NULL` again outside: a row is marked once whatever the isolation
                "UPDATE pool SET used_at = :now WHERE used_at IS NULL AND id IN (SELECT id"
                " FROM pool WHERE model_dir = :m AND kind = 'reply' AND used_at IS NULL"
                f" ORDER BY ABS(temperature - :t), id LIMIT :n{self.db.skip_locked})"
                " RETURNING id, text"
            ), {"now": time.time(), "m": model_dir, "t": temperature, "n": n}).all()
        return [row.text for row in sorted(rows, key=lambda row: row.id)]

    def best_channel(self, model_dir: str) -> tuple[str, float] | None:
        """The gathered channel candidate (text, temperature) of the highest score (ties: the
        first gathered), marked used; the others are deleted, so the worker gathers afresh for
        the next post."""
        lock = " FOR UPDATE" if self.db.postgres else ""  # a second taker waits, then finds none
        with self.db.write() as conn:
            row = conn.execute(sa.text(
                "UPDATE pool SET used_at = :now WHERE used_at IS NULL AND id = (SELECT id FROM"
                " pool WHERE model_dir = :m AND kind = 'channel' AND used_at IS NULL"
                f" ORDER BY score DESC, id LIMIT 1{lock}) RETURNING text, temperature"
            ), {"now": time.time(), "m": model_dir}).first()
            conn.execute(sa.text(
                "DELETE FROM pool WHERE kind = 'channel' AND used_at IS NULL AND model_dir = :m"
            ), {"m": model_dir})
        return (row.text, row.temperature) if row else None

    def take_channel(self, model_dir: str) -> list[tuple[str, float, float]]:
        """Every gathered channel candidate (text, temperature, score), best score first (ties:
        the first gathered), all marked used by one statement: a second taker, in any process,
        gets none, and the worker gathers afresh. What an editors' review shows."""
        with self.db.write() as conn:
            rows = conn.execute(sa.text(
                "UPDATE pool SET used_at = :now WHERE used_at IS NULL AND model_dir = :m"
                " AND kind = 'channel' RETURNING id, text, temperature, score"
            ), {"now": time.time(), "m": model_dir}).all()
        rows.sort(key=lambda row: (-row.score, row.id))
        return [(row.text, row.temperature, row.score) for row in rows]

    def seed(self, model_dir: str, posts: list[str], temperatures: tuple[float, ...]) -> int:
        """Store a model's starter feed as ready replies (temperatures taken in turn), once per
        model across every process and restart (marked in bot_state); how many were stored."""
        key = f"starter:{model_dir}"
        with self.db.write() as conn:
            self.db.lock(conn, POOL_LOCK)
            if conn.execute(sa.text("SELECT 1 FROM bot_state WHERE key = :key"),
                            {"key": key}).first():
                return 0
            conn.execute(sa.text("INSERT INTO bot_state (key, value) VALUES (:key, :value)"),
                         {"key": key, "value": str(len(posts))})
            if posts:  # score: no likelihood was kept with them (replies are taken in order)
                conn.execute(sa.text(
                    "INSERT INTO pool (model_dir, kind, temperature, text, score, created_at)"
                    " VALUES (:m, 'reply', :t, :text, 0, :now)"
                ), [{"m": model_dir, "t": temperatures[i % len(temperatures)], "text": post,
                     "now": time.time()} for i, post in enumerate(posts)])
        return len(posts)

    def ready(self, model_dir: str) -> dict[float, int]:
        """Ready reply posts of the model per temperature (to 3 decimals)."""
        with self.db.read() as conn:
            rows = conn.execute(sa.text(
                "SELECT temperature, COUNT(*) FROM pool WHERE model_dir = :m"
                " AND kind = 'reply' AND used_at IS NULL GROUP BY temperature"
            ), {"m": model_dir}).all()
        ready: Counter[float] = Counter()
        for temperature, count in rows:  # rounded here: PostgreSQL has no ROUND of a float
            ready[round(temperature, 3)] += count
        return dict(ready)

    def gathered(self, model_dir: str) -> tuple[int, float | None]:
        """(channel candidates gathered for the model, their temperature)."""
        with self.db.read() as conn:
            count, temperature = conn.execute(sa.text(
                "SELECT COUNT(*), MIN(temperature) FROM pool WHERE model_dir = :m"
                " AND kind = 'channel' AND used_at IS NULL"
            ), {"m": model_dir}).one()
        return count, temperature

    def drop_others(self, model_dir: str, memory: int = 0) -> int:
        """Delete the ready rows of every other model, and the used rows that are a day old
        and not among the last `memory` handed out of their kind; how many went."""
        with self.db.write() as conn:
            gone = conn.execute(sa.text(
                "DELETE FROM pool WHERE model_dir != :m AND used_at IS NULL"
            ), {"m": model_dir}).rowcount
            for kind in ("reply", "channel"):
                gone += conn.execute(sa.text(
                    "DELETE FROM pool WHERE kind = :kind AND used_at < :old AND id NOT IN"
                    " (SELECT id FROM pool WHERE kind = :kind AND used_at IS NOT NULL"
                    "  ORDER BY id DESC LIMIT :memory)"
                ), {"kind": kind, "old": time.time() - USED_KEPT_SECONDS,
                    "memory": memory}).rowcount
        return gone

    def recent(self, kind: str, limit: int) -> list[str]:
        """The last `limit` posts of a feed, oldest first: for replies every post made (ready
        or handed out: a ready one will be), for the channel the ones published."""
        used = "" if kind == "reply" else " AND used_at IS NOT NULL"
        with self.db.read() as conn:
            rows = conn.execute(sa.text(
                f"SELECT text FROM pool WHERE kind = :kind{used} ORDER BY id DESC LIMIT :n"
            ), {"kind": kind, "n": limit}).all()
        return [row.text for row in reversed(rows)]
