"""Posts for a user's text, the steps `/bugurt` and inline queries share; each caller words the
reasons itself (a chat reply, an inline button).

`Posts.read(text)` cleans the text into a prime or says why it cannot start a post (too long, no
letters the model writes). `Posts.order(prime, n)` then takes ready posts from the pool (no
prime) or queues an on-demand sampling call, or says the queue is full. It does not await, so
requests reach the sampling thread in the order they came; the caller awaits `Order.posts()`,
and an empty list is "no good post this time".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.model_slot import ModelSlot
from bot.pool import Pool
from bot.prime import MAX_PRIME_CHARS, writable

TOO_LONG = "too long"  # the cleaned text is over MAX_PRIME_CHARS
NO_LETTERS = "no letters"  # text was given, but nothing in it the model can write
BUSY = "busy"  # pool.queue_limit calls already wait for the sampler


@dataclass(frozen=True)
class Prime:
    text: str  # the cleaned beginning of the posts ("" for none)
    left_out: list[str]  # characters dropped because the model cannot write them
    length: int  # of the cleaned text (of the raw one when too long to clean)
    refused: str = ""  # TOO_LONG, NO_LETTERS or "" (the text can start a post)


@dataclass(frozen=True)
class Order:
    ready: list[str] = field(default_factory=list)  # posts from the pool
    job: asyncio.Future | None = None  # an on-demand sampling call, queued
    refused: str = ""  # BUSY or ""

    async def posts(self) -> list[str]:
        return self.ready or (await self.job if self.job is not None else [])


class Posts:
    def __init__(self, slot: ModelSlot, pool: Pool, queue_limit: int,
                 temperature: Callable[[], float]) -> None:
        self.slot = slot
        self.pool = pool
        self.queue_limit = queue_limit  # pool.queue_limit
        self.temperature = temperature  # the ratings bandit's draw

    def read(self, text: str) -> Prime:
        """The prime a user's text gives, or why it gives none."""
        if len(text) > 4 * MAX_PRIME_CHARS:  # no need to clean 10,000 characters to say so
            return Prime("", [], len(text), TOO_LONG)
        prime, left_out = writable(self.slot.generator, text)
        if len(prime) > MAX_PRIME_CHARS:
            return Prime(prime, left_out, len(prime), TOO_LONG)
        if text.strip() and not prime:
            return Prime("", left_out, 0, NO_LETTERS)
        return Prime(prime, left_out, len(prime))

    def order(self, prime: Prime, n: int = 1) -> Order:
        """n posts that start with the prime: ready ones from the pool when there is no prime,
        else a sampling call queued now; BUSY when the queue is full."""
        temperature = self.temperature()
        ready = [] if prime.text else self.pool.take(temperature, n)
        if ready:
            return Order(ready)
        if self.slot.waiting >= self.queue_limit:
            return Order(refused=BUSY)
        return Order(job=self.slot.submit(prime.text or None, temperature, n))
