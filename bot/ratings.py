"""Readers' votes on published posts and the bandit that turns them into a sampling temperature.

Each vote is one Bernoulli trial of the temperature its post was sampled at: 👍 a success, 👎 a
failure. The scheduler draws from each arm's Beta(1 + ups, 1 + downs) posterior and samples at
the temperature with the highest draw (Thompson sampling): arms readers like are chosen more,
and arms with few votes still get tried.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from bot import judgements
from bot.judgements import Judgement
from common.db import Database

# Portable SQL: PostgreSQL cannot SUM a comparison (a boolean) as SQLite does.
_UPS = "COALESCE(SUM(CASE WHEN v.value = 1 THEN 1 ELSE 0 END), 0)"
_DOWNS = "COALESCE(SUM(CASE WHEN v.value = -1 THEN 1 ELSE 0 END), 0)"


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
    def __init__(self, db: Database) -> None:
        self.db = db

    def vote(self, outbox_id: int, user_id: int, value: int) -> tuple[int, int] | None:
        """Store (or change) a user's vote, and a new or changed one as a judgement; the post's
        (ups, downs), None if no such post."""
        if value not in (-1, 1):
            raise ValueError(f"a vote is +1 or -1, not {value}")
        with self.db.write() as conn:
            post = conn.execute(sa.text("SELECT text, model_dir, features FROM outbox"
                                        " WHERE id = :id"), {"id": outbox_id}).first()
            if post is None:
                return None
            before = conn.execute(sa.text("SELECT value FROM votes WHERE outbox_id = :post"
                                          " AND user_id = :user"),
                                  {"post": outbox_id, "user": user_id}).scalar()
            if before != value:  # a new or changed vote is a judgement; the same again is not
                judgements.add(conn, [Judgement(
                    "vote", f"reader:{user_id}", value, post.text, post.model_dir,
                    json.loads(post.features or "{}"), outbox_id=outbox_id)])
            conn.execute(
                sa.text("INSERT INTO votes (outbox_id, user_id, value, voted_at)"
                     " VALUES (:post, :user, :value, :now) ON CONFLICT (outbox_id, user_id)"
                     " DO UPDATE SET value = excluded.value, voted_at = excluded.voted_at"),
                {"post": outbox_id, "user": user_id, "value": value, "now": int(time.time())},
            )
        return self.counts(outbox_id)

    def counts(self, outbox_id: int) -> tuple[int, int]:
        with self.db.read() as conn:
            ups, downs = conn.execute(
                sa.text(f"SELECT {_UPS}, {_DOWNS} FROM votes v WHERE v.outbox_id = :id"),
                {"id": outbox_id},
            ).one()
        return int(ups), int(downs)

    def top(self, limit: int = 5) -> list[Rated]:
        """Voted posts, best first: by score (ups − downs, the sum of the votes), then by ups."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.text(f"SELECT o.id, o.text, {_UPS} AS ups, {_DOWNS} AS downs"
                     " FROM outbox o JOIN votes v ON v.outbox_id = o.id GROUP BY o.id, o.text"
                     f" ORDER BY SUM(v.value) DESC, {_UPS} DESC, o.id DESC LIMIT :limit"),
                {"limit": limit},
            ).all()
        return [Rated(r.id, r.text, int(r.ups), int(r.downs)) for r in rows]

    def arms(self, temperatures: tuple[float, ...]) -> list[Arm]:
        """Posts and votes per configured temperature (posts at other temperatures are ignored).
        Temperatures are matched to 3 decimals here: PostgreSQL has no ROUND of a float."""
        with self.db.read() as conn:
            rows = conn.execute(sa.text(
                f"SELECT o.temperature, COUNT(DISTINCT o.id), {_UPS}, {_DOWNS}"
                " FROM outbox o LEFT JOIN votes v ON v.outbox_id = o.id"
                " WHERE o.temperature IS NOT NULL GROUP BY o.temperature"
            )).all()
        seen: dict[float, list[int]] = defaultdict(lambda: [0, 0, 0])
        for temperature, *numbers in rows:
            totals = seen[round(temperature, 3)]
            for i, number in enumerate(numbers):
                totals[i] += int(number)
        return [Arm(t, *seen[round(t, 3)]) for t in temperatures]

    def choose_temperature(
        self, temperatures: tuple[float, ...], rng: random.Random
    ) -> float:
        """Thompson sampling over the configured temperatures (the config loader refuses none)."""
        draws = [
            (rng.betavariate(1 + arm.ups, 1 + arm.downs), arm.temperature)
            for arm in self.arms(temperatures)
        ]
        return max(draws)[1]
