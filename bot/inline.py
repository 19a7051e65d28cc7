"""Inline queries (`@bot` or `@bot TEXT` typed in any chat): posts to choose from, or one line
saying why there are none.

`@bot` alone takes posts from the pool (sampled on demand when it is empty); `@bot TEXT` samples
posts that start with TEXT, kept per cleaned text for `inline.cache_seconds` (Telegram sends a
query at every pause in typing, and people try the same words again). Each user may have
`inline.per_minute` queries answered per minute; an answer from the cache is free. Any query text
gets an answer: Telegram caps queries at 256 characters, but a longer or unwritable one gets a
polite empty answer, never an error.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from bot import posts
from bot.i18n import Texts
from bot.posts import Posts
from bot.prime import MAX_PRIME_CHARS
from common.config import Config

CACHED_QUERIES = 512  # query texts whose posts are kept (the oldest go first)
WINDOW_SECONDS = 60.0  # the rate limit's window


@dataclass(frozen=True)
class InlineAnswer:
    posts: list[str] = field(default_factory=list)
    note: str = ""  # why there are no posts (shown as a button above the empty list)
    cache_seconds: int = 0  # how long Telegram may offer the same answer again to this user


class InlineAnswers:
    def __init__(self, config: Config, source: Posts) -> None:
        self.posts = config.inline.posts
        self.per_minute = config.inline.per_minute
        self.cache_seconds = config.inline.cache_seconds
        self.source = source
        self._cache: OrderedDict[str, tuple[float, list[str]]] = OrderedDict()
        self._asked: dict[int, deque[float]] = {}  # user id → times of answered queries

    async def answer(self, query: str, user_id: int, tr: Texts) -> InlineAnswer:
        """Posts for one inline query (starting with its text, if any), or a note why none (in
        the asker's language; a button's text: at most 64 characters)."""
        prime = self.source.read(query)
        if prime.refused == posts.TOO_LONG:
            return InlineAnswer(note=tr.n("inline.too_long", MAX_PRIME_CHARS))
        if prime.refused:
            return InlineAnswer(note=tr.t("inline.no_chars"))
        cached = self._cached(prime.text) if prime.text else None
        if cached:
            return InlineAnswer(cached, cache_seconds=int(self.cache_seconds))
        if not self._allow(user_id):
            return InlineAnswer(note=tr.t("inline.slow_down"))
        order = self.source.order(prime, self.posts)
        if order.refused:
            return InlineAnswer(note=tr.t("inline.busy"))
        written = await order.posts()
        if not written:
            return InlineAnswer(note=tr.t("inline.no_good_post"))
        if prime.text:
            self._remember(prime.text, written)
            return InlineAnswer(written, cache_seconds=int(self.cache_seconds))
        return InlineAnswer(written)  # pool posts are handed out once: Telegram must not cache

    def _cached(self, prime: str) -> list[str] | None:
        entry = self._cache.get(prime)
        if entry is None or time.monotonic() - entry[0] > self.cache_seconds:
            return None
        return entry[1]

    def _remember(self, prime: str, posts: list[str]) -> None:
        self._cache[prime] = (time.monotonic(), posts)
        self._cache.move_to_end(prime)
        while len(self._cache) > CACHED_QUERIES:
            self._cache.popitem(last=False)

    def _allow(self, user_id: int) -> bool:
        now = time.monotonic()
        asked = self._asked.setdefault(user_id, deque())
        while asked and now - asked[0] > WINDOW_SECONDS:
            asked.popleft()
        if len(asked) >= self.per_minute:
            return False
        asked.append(now)
        return True
