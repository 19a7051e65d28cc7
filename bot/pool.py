"""The pool of ready posts: sampled ahead of requests by a background thread, kept in the database.

Two kinds of rows (table `pool`, schema in common/db.py), each naming the model that wrote it:
- 'reply': `pool.size` gated posts per sampling temperature. With `pool.search: lines` (the
  default) each is the best by likelihood (`Generator.best_first`) of `pool.reply_searches`
  posts built line by line, run side by side under the feed's memory (generator/feed.py: no
  line, 4-word phrase or opening of the last `pool.memory` replies again, no long corpus line
  copied); with `whole`,
  the best of `pool.reply_candidates` whole samples drawn `bot.candidates` at a time.
  `/bugurt` and inline queries take them; a post is taken by the one UPDATE … RETURNING that
  marks it used (its rows picked FOR UPDATE SKIP LOCKED on PostgreSQL), so no post is handed
  out twice, across threads and processes. A model's starter feed (`generator feed --save`)
  is stored as ready replies the first time a pool serves that model, so a fresh bot has posts
  at once.
- 'channel': searched posts, under the channel's own memory (its published posts), until
  `pool.channel_searches` are gathered, or with `whole` every gated sample of batches until
  `pool.channel_candidates`, all at one temperature (the ratings bandit's draw); the next
  channel post is the one of them with the highest `score` (`best_channel`): the model's mean
  log-likelihood per character; the rest are dropped.

Handed-out rows are the feeds' memory: they stay while among the last `pool.memory` of their
kind, or a day, whichever is longer, whatever model wrote them.

Every bot process sharing the database runs a worker; a batch is stored only up to the target
size, counted under a lock (`add`), so together they fill the pool without overfilling it.
The worker is one thread (its database connections from the engine's pool). It never holds up
the event loop (the loop only runs the short take queries), yields to people (it waits while
on-demand requests queue for the sampler), keeps its CPU time within `pool.cpu_share` of a core
by sleeping after each batch (`pool.idle_share` while the rest of the machine leaves a core and
a half idle: bot/idle_cpu.py), pauses while a retrain trains (`paused`), and stops after its
batch in flight on `close`. Rows survive restarts and kill -9; a model swap deletes the old
model's ready rows.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Iterator

import torch

from bot.idle_cpu import IdleMeter
from bot.model_slot import ModelSlot
from bot.pool_store import PoolStore
from bot.ratings import Ratings
from common.config import Config
from common.db import Database
from generator import feed
from generator.modeldir import load_starter
from generator.sample import Candidate, Generator

log = logging.getLogger(__name__)
IDLE_SECONDS = 30.0  # a full pool looks again this often (a pop or a swap wakes it at once)
OUTAGE_RETRY_SECONDS = 10.0  # the database out of reach: the worker tries again this often
SWITCH_SECONDS = 0.001  # the process's GIL switch interval while the worker runs


class Pool:
    """The event loop's side (`take`, `best_channel`) and the worker thread behind it."""

    def __init__(self, db: Database, slot: ModelSlot, config: Config) -> None:
        self.store = PoolStore(db)
        self.ratings = Ratings(db)
        self.slot = slot
        self.size = config.pool.size
        self.share = config.pool.cpu_share
        self.idle_share = config.pool.idle_share
        self.meter = IdleMeter()
        self.channel_candidates = config.pool.channel_candidates
        self.temperatures = config.bot.temperatures
        self.candidates = config.bot.candidates
        self.reply_candidates = config.pool.reply_candidates
        self.reply_searches = config.pool.reply_searches
        self.by_lines = config.pool.search == "lines"
        self.rules = feed.FeedRules(memory=config.pool.memory)
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
        self._seeded: set[str] = set()  # models whose starter feed this process has stored
        self._thread = threading.Thread(target=self._run, name="pool", daemon=True)
        slot.on_swap.append(self.model_changed)

    # ---- the event loop's side ----------------------------------------------------------------

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

    def review_candidates(self) -> list[tuple[str, float, float]]:
        """All gathered channel candidates (text, temperature, score), best first, taken."""
        taken = self.store.take_channel(self.slot.model_dir)
        self._wake()
        return taken

    def model_changed(self, model_dir: str) -> None:
        """A swap: the old model's posts go, the worker fills the pool from the new one."""
        with self._swap_lock:
            dropped = self.store.drop_others(model_dir, self.rules.memory)
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
            # The worker's batch is Python-heavy between its tensor products, so it holds the
            # GIL for the whole switch interval (5 ms by default) each time the event loop's
            # thread waits for it, and a reply waits on it several times: at 1 ms, 8 readers
            # served from the pool at once took 0.080 s median instead of 0.126 s
            # (bench/first_minute.py)
            sys.setswitchinterval(SWITCH_SECONDS)
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
                scores = [c.likelihood for c in kept]
                self.store.add(model_dir, kind, temperature, kept, scores, cap)
        return self.pause_after(busy), False

    def pause_after(self, busy: float) -> float:
        """Seconds to sleep after a batch of `busy` CPU seconds: its share of a core is
        pool.cpu_share, or pool.idle_share between bursts on a machine otherwise idle."""
        share = self.idle_share if not self.slot.waiting and self.meter.spare() else self.share
        return busy * (1 - share) / share

    def _draw(self, generator: Generator, kind: str, temperature: float,
              rng: random.Random) -> list[Candidate]:
        """A batch of candidates, best first: pool.reply_searches searched posts run side by
        side under the feed's memory (for the channel, as many as are still to gather, at most
        that); or, searching whole posts, for a reply rounds of bot.candidates until
        pool.reply_candidates are drawn (the sampler's lock is free between rounds)."""
        if self.by_lines:  # one batch of searches under the feed's memory (generator/feed.py)
            memory = feed.FeedMemory(self.rules, generator.novelty,
                                     self.store.recent(kind, self.rules.memory))
            gathered, _ = self.store.gathered(generator.info["model_dir"])
            count = self.reply_searches if kind == "reply" else \
                min(self.reply_searches, self.channel_candidates - gathered)
            rows = torch.Generator().manual_seed(rng.getrandbits(63))
            return feed.searched(generator, memory, max(1, count), temperature, rows)
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
        self.store.drop_others(model_dir, self.rules.memory)
        if self.size and model_dir not in self._seeded:
            self._seeded.add(model_dir)
            if stored := self.store.seed(model_dir, load_starter(model_dir), self.temperatures):
                log.info("pool: %d posts of the starter feed of %s are ready", stored, model_dir)
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
