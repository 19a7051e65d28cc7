"""The pool of ready posts: sampled ahead of requests by a background thread, kept in the database.

Two kinds of rows (table `pool`, schema in common/db.py), each naming the model that wrote it:
- 'reply': `pool.size` gated posts per sampling temperature. With `pool.search: lines` (the
  default) each is the best by `Generator.score` of `pool.reply_searches` posts built line by
  line (`Generator.searched`); with `whole`, the best of
  `pool.reply_candidates` whole samples drawn `bot.candidates` at a time. `/bugurt` and inline
  queries take them; a post is taken by the one
  UPDATE … RETURNING that marks it used (its rows picked FOR UPDATE SKIP LOCKED on PostgreSQL),
  so no post is handed out twice, across threads and processes.
- 'channel': searched posts until `pool.channel_searches` are gathered, or with `whole`
  every gated sample of batches until `pool.channel_candidates`,
  all at one temperature (the ratings bandit's draw); the next channel post is the one of them
  with the highest `score` (`best_channel`), stored as `Generator.score` gave it; the rest are
  dropped.

Every bot process sharing the database runs a worker; a batch is stored only up to the target
size, counted under a lock (`add`), so together they fill the pool without overfilling it.
The worker is one thread (its database connections from the engine's pool). It never holds up
the event loop (the
loop only runs the short take queries), yields to people (it waits while on-demand requests
queue for the sampler), keeps its CPU time within `pool.cpu_share` of a core by sleeping after
each batch, pauses while a retrain trains (`paused`), and stops after its batch in flight on
`close`. Rows survive restarts and kill -9; a model swap deletes the old model's rows.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator

import sqlalchemy as sa

from bot.model_slot import ModelSlot
from bot.ratings import Ratings
from common.config import Config
from common.db import Database
from generator.sample import Candidate, Generator

log = logging.getLogger(__name__)
IDLE_SECONDS = 30.0  # a full pool looks again this often (a pop or a swap wakes it at once)
OUTAGE_RETRY_SECONDS = 10.0  # the database out of reach: the worker tries again this often
USED_KEPT_SECONDS = 86400.0  # handed-out rows stay a day (what was served), then go
POOL_LOCK = 0x6E627570  # PostgreSQL advisory lock: one process at a time counts and adds rows


class PoolStore:
    """The `pool` table (the engine hands each thread its own connection)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, model_dir: str, kind: str, temperature: float, candidates: list[Candidate],
            scores: list[float], cap: int | None = None) -> int:
        """Store candidates, best first, with their ranking scores (`Generator.score`) until
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

    def drop_others(self, model_dir: str) -> int:
        """Delete the rows of every other model and the long-used ones; how many went."""
        with self.db.write() as conn:
            return conn.execute(sa.text(
                "DELETE FROM pool WHERE model_dir != :m OR used_at < :old"
            ), {"m": model_dir, "old": time.time() - USED_KEPT_SECONDS}).rowcount


class Pool:
    """The event loop's side (`take`, `best_channel`) and the worker thread behind it."""

    def __init__(self, db: Database, slot: ModelSlot, config: Config) -> None:
        self.store = PoolStore(db)
        self.ratings = Ratings(db)
        self.slot = slot
        self.size = config.pool.size
        self.share = config.pool.cpu_share
        self.channel_candidates = config.pool.channel_candidates
        self.temperatures = config.bot.temperatures
        self.candidates = config.bot.candidates
        self.reply_candidates = config.pool.reply_candidates
        self.reply_searches = config.pool.reply_searches
        self.by_lines = config.pool.search == "lines"
        if self.by_lines:  # each channel post is the best of a few searched posts
            self.channel_candidates = config.pool.channel_searches
        self.busy_seconds = 0.0  # the worker's CPU seconds in batches
        self.batches = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._woken = False
        self._holds = 0  # paused() blocks in force
        self.drawing = False  # a batch is in flight (paused() lets it finish)
        # A batch's rows go in only while its model is served: a swap's drop waits for them.
        self._swap_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="pool", daemon=True)
        slot.on_swap.append(self.model_changed)

    # ---- the event loop's side ----------------------------------------------------------------

    def describe(self) -> str:
        """'12 ready (0.7: 4, 0.85: 4, 1: 4), 37 channel candidates' for /status."""
        ready = self.store.ready(self.slot.model_dir)
        per = ", ".join(f"{t:g}: {n}" for t, n in sorted(ready.items()))
        gathered, _ = self.store.gathered(self.slot.model_dir)
        return (f"{sum(ready.values())} ready{f' ({per})' if per else ''}, "
                f"{gathered} channel candidates")

    def take(self, temperature: float, n: int = 1) -> list[str]:
        """Up to n ready posts of the served model (none: the caller samples on demand)."""
        posts = self.store.take(self.slot.model_dir, temperature, n) if self.size else []
        if posts:
            self._wake()
        return posts

    def best_channel(self) -> tuple[str, float] | None:
        """The best gathered candidate for the channel and its temperature, or None."""
        best = self.store.best_channel(self.slot.model_dir)
        self._wake()
        return best

    def model_changed(self, model_dir: str) -> None:
        """A swap: the old model's posts go, the worker fills the pool from the new one."""
        with self._swap_lock:
            dropped = self.store.drop_others(model_dir)
        log.info("pool: dropped %d posts of the previous model", dropped)
        self._wake()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No new batch starts inside this block (a retrain trains and evaluates)."""
        with self._cond:
            self._holds += 1
        try:
            yield
        finally:
            with self._cond:
                self._holds -= 1
                self._cond.notify_all()

    def start(self) -> None:
        if self.size or self.channel_candidates:
            self._thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """Stop the worker after its batch in flight."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
            log.info("pool worker stopped")

    def _wake(self) -> None:
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    # ---- the worker thread --------------------------------------------------------------------

    def _run(self) -> None:
        rng = random.Random()
        while self._begin():
            try:
                seconds, wakeable = self._batch(rng)
            except Exception as exc:  # noqa: BLE001 (a thread's edge: log, serve on demand)
                if self.store.db.failed(exc):  # logged once per outage by the database
                    seconds, wakeable = OUTAGE_RETRY_SECONDS, False
                else:
                    log.exception("pool worker: a batch failed (sampling or the database);"
                                  " trying again in a minute")
                    seconds, wakeable = 60, False
            finally:
                self.drawing = False
            self._wait((lambda: self._woken) if wakeable else (lambda: False), seconds)

    def _begin(self) -> bool:
        """Wait until no pause holds, then mark a batch in flight, in one step under the lock
        (so a `paused()` that then sees no batch in flight can rely on none starting)."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopping or not self._holds)
            self._woken = False
            self.drawing = not self._stopping
            return not self._stopping

    def _batch(self, rng: random.Random) -> tuple[float, bool]:
        """One job of the worker; (seconds to wait before the next, whether a wake-up cuts
        the wait short)."""
        if self.slot.waiting:  # people queue for the sampler: they go first
            return 0.05, False
        generator = self.slot.generator
        model_dir = generator.info["model_dir"]
        job = self._next_job(rng, model_dir)
        if job is None:
            return IDLE_SECONDS, True
        kind, temperature = job
        began = time.thread_time()
        ranked = self._draw(generator, kind, temperature, rng)
        busy = time.thread_time() - began
        self.busy_seconds += busy
        self.batches += 1
        with self._swap_lock:
            if self.slot.generator is generator:  # else swapped meanwhile: dropped
                kept = ranked[:1] if kind == "reply" else ranked
                cap = self.size if kind == "reply" else self.channel_candidates
                self.store.add(model_dir, kind, temperature, kept, generator.score(kept), cap)
        return busy * (1 - self.share) / self.share, False

    def _draw(self, generator: Generator, kind: str, temperature: float,
              rng: random.Random) -> list[Candidate]:
        """A batch of candidates, best first: for a reply pool.reply_searches searched posts
        (for the channel one, gathered across batches); or, searching whole posts, for a reply
        rounds of bot.candidates until pool.reply_candidates are drawn (the sampler's lock is
        free between rounds and between searches)."""
        if self.by_lines:
            found = []
            for _ in range(self.reply_searches if kind == "reply" else 1):
                post = generator.searched(temperature, rng.getrandbits(63))
                found += [post] if post is not None else []
                if self._stopping:
                    break
            return generator.best_first(found)
        rounds = math.ceil(self.reply_candidates / self.candidates) if kind == "reply" else 1
        ranked: list[Candidate] = []
        for _ in range(rounds):  # a round may pass nothing through the gate: no retry here
            ranked += generator.ranked(n=1, temperature=temperature, candidates=self.candidates,
                                       seed=rng.getrandbits(63))
            if self._stopping:
                break
        return generator.best_first(ranked)

    def _wait(self, ready, timeout: float | None = None) -> bool:
        """Wait until `ready()` (or the timeout) unless stopping; False once stopping."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopping or ready(), timeout)
            self._woken = False
            return not self._stopping

    def _next_job(self, rng: random.Random, model_dir: str) -> tuple[str, float] | None:
        """('reply', T) for the emptiest temperature below pool.size, else ('channel', T) while
        fewer than pool.channel_candidates are gathered, else None (nothing to do)."""
        self.store.drop_others(model_dir)
        ready = self.store.ready(model_dir)
        emptiest = min(self.temperatures, key=lambda t: ready.get(round(t, 3), 0))
        if ready.get(round(emptiest, 3), 0) < self.size:
            return "reply", emptiest
        count, temperature = self.store.gathered(model_dir)
        if count < self.channel_candidates:
            if temperature is None:  # a fresh gathering: the bandit picks its temperature
                temperature = self.ratings.choose_temperature(self.temperatures, rng)
            return "channel", temperature
        return None
