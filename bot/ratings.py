"""Readers' votes on published posts and the bandit that turns them into a sampling temperature.

Each vote is one Bernoulli trial of the temperature its post was sampled at: 👍 a success, 👎 a
failure. The scheduler draws from each arm's Beta(1 + ups, 1 + downs) posterior and samples at
the temperature with the highest draw (Thompson sampling): arms readers like are chosen more,
and arms with few votes still get tried.
"""

from __future__ import annotations

import random
import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Arm:
    temperature: float
    posts: int
    ups: int
    downs: int


@dataclass(frozen=True)
class Rated:
    outbox_id: int
    text: str
    ups: int
    downs: int


class Ratings:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def vote(self, outbox_id: int, user_id: int, value: int) -> tuple[int, int] | None:
        """Store (or change) a user's vote; the post's (ups, downs), None if no such post."""
        if value not in (-1, 1):
            raise ValueError(f"a vote is +1 or -1, not {value}")
        if self.conn.execute("SELECT 1 FROM outbox WHERE id = ?", (outbox_id,)).fetchone() is None:
            return None
        with self.conn:
            self.conn.execute(
                "INSERT INTO votes (outbox_id, user_id, value, voted_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (outbox_id, user_id) DO UPDATE"
                " SET value = excluded.value, voted_at = excluded.voted_at",
                (outbox_id, user_id, value, int(time.time())),
            )
        return self.counts(outbox_id)

    def counts(self, outbox_id: int) -> tuple[int, int]:
        row = self.conn.execute(
            "SELECT COALESCE(SUM(value = 1), 0), COALESCE(SUM(value = -1), 0) FROM votes"
            " WHERE outbox_id = ?",
            (outbox_id,),
        ).fetchone()
        return int(row[0]), int(row[1])

    def top(self, limit: int = 5) -> list[Rated]:
        """Voted posts, best first: by score (ups − downs), then by ups."""
        rows = self.conn.execute(
            "SELECT o.id, o.text, SUM(v.value = 1) AS ups, SUM(v.value = -1) AS downs"
            " FROM outbox o JOIN votes v ON v.outbox_id = o.id GROUP BY o.id"
            " ORDER BY ups - downs DESC, ups DESC, o.id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [Rated(r["id"], r["text"], int(r["ups"]), int(r["downs"])) for r in rows]

    def arms(self, temperatures: tuple[float, ...]) -> list[Arm]:
        """Posts and votes per configured temperature (posts at other temperatures are ignored)."""
        rows = self.conn.execute(
            "SELECT ROUND(o.temperature, 3) AS t, COUNT(DISTINCT o.id) AS posts,"
            " COALESCE(SUM(v.value = 1), 0) AS ups, COALESCE(SUM(v.value = -1), 0) AS downs"
            " FROM outbox o LEFT JOIN votes v ON v.outbox_id = o.id"
            " WHERE o.temperature IS NOT NULL GROUP BY t"
        ).fetchall()
        seen = {r["t"]: r for r in rows}
        arms = []
        for t in temperatures:
            r = seen.get(round(t, 3))
            arms.append(Arm(t, r["posts"], r["ups"], r["downs"]) if r else Arm(t, 0, 0, 0))
        return arms

    def choose_temperature(
        self, temperatures: tuple[float, ...], rng: random.Random
    ) -> float:
        """Thompson sampling over the configured temperatures (the config loader refuses none)."""
        draws = [
            (rng.betavariate(1 + arm.ups, 1 + arm.downs), arm.temperature)
            for arm in self.arms(temperatures)
        ]
        return max(draws)[1]
