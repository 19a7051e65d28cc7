"""Review mode (`review.mode: editors`): the editors choose each channel post. Knows no Telegram.

At each scheduled time (and on /post) the gathered channel candidates are taken from the pool,
ranked, stored as a review, and the first `review.choices` are shown to the editors through a
`Desk` (Telegram's: bot/review_desk.py; the terminal's: bot/terminal.py). An editor publishes
one, asks for the next ones, declines, or sends a corrected text; the first decision wins
(bot/review.py), the post goes through the outbox, and every editor's messages are changed to
say how the review ended. An undecided review ends at its deadline (`review.on_timeout`), found
by the periodic sweep, so a review outlives a restart or a killed process.
"""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from bot import texts
from bot.features import features
from bot.i18n import Texts
from bot.model_slot import ModelSlot
from bot.outbox import Outbox
from bot.pool import Pool
from bot.ranker import Ranking
from bot.review import EDIT, NONE, OPEN, PICK, TIMEOUT, Candidate, Decision, Review, ReviewStore
from common.config import ReviewConfig
from generator.tag import TAG, finish

log = logging.getLogger(__name__)
NEXT = "next"  # the action of "the next ones"


class Desk(Protocol):
    """Where editors see reviews."""

    async def show(self, review: Review, candidates: list[Candidate]) -> list[tuple[int, int, int]]:
        """Show a page of a review's candidates to every editor; (chat id, message id, number
        of the first candidate) of each message sent."""
        ...

    async def close(self, messages: list[tuple[int, int]], text: str) -> None:
        """Change the review's messages to `text`, without buttons."""
        ...


class Editors:
    def __init__(self, config: ReviewConfig, store: ReviewStore, pool: Pool, slot: ModelSlot,
                 outbox: Outbox, temperature: Callable[[], float], ranking: Ranking,
                 texts: Texts) -> None:
        self.config = config
        self.texts = texts  # bot.language: what every editor's ended review says
        self.store = store
        self.pool = pool
        self.slot = slot
        self.outbox = outbox
        self.temperature = temperature  # the bandit's draw, for candidates sampled on demand
        self.ranking = ranking  # orders the candidates: the learnt ranker, or likelihood
        self.desk: Desk | None = None  # set by the mode that runs (Telegram or the terminal)

    @property
    def on(self) -> bool:
        return self.config.mode == "editors"

    async def open(self, source: str, tr: Texts) -> str:
        """Send the editors a new review; a one-line summary in `tr`."""
        if self.desk is None:
            return tr.t("review.no_desk")
        candidates = await self._candidates()
        if not candidates:
            return tr.t("no_good_post")
        ranker, ranked = self.ranking.order(candidates)
        ranked = [Candidate(i, c.text, c.temperature, c.features)
                  for i, c in enumerate(ranked, start=1)]
        shown = min(self.config.choices, len(ranked))
        deadline = time.time() + 60 * self.config.timeout_minutes
        review_id = self.store.open(source, self.slot.model_dir, ranker, ranked, shown, deadline)
        review = self.store.get(review_id)
        sent = await self.desk.show(review, ranked[:shown])
        self.store.add_messages(review_id, sent)
        log.info("review #%d: %d of %d candidates sent to %d editor chats", review_id, shown,
                 len(ranked), len(sent))
        return texts.review_sent(tr, review, len(sent))

    async def _candidates(self) -> list[Candidate]:
        """The pool's gathered channel candidates; none gathered: review.choices sampled now."""
        gathered = self.pool.review_candidates()
        if gathered:
            return [Candidate(0, text, t, features(text, score, t))
                    for text, t, score in gathered]
        temperature = self.temperature()
        posts = await self.slot.generate(None, temperature, n=self.config.choices)
        return [Candidate(0, text, temperature, features(text, None, temperature))
                for text in posts]

    async def act(self, review_id: int, action: str, user_id: int, name: str,
                  is_editor: bool, tr: Texts) -> str:
        """An editor's tap: `p<N>` (publish N), `next`, or `none`; the answer to the tap."""
        review, refusal = self._open(review_id, user_id, is_editor, tr)
        if review is None:
            return refusal
        if action == NEXT:
            return await self._more(review, tr)
        if action == NONE:
            return await self._decide(review, Decision(NONE, user_id=user_id), name, tr)
        number = int(action.removeprefix("p"))
        if not 1 <= number <= review.shown:
            return tr.t("review.not_shown")
        return await self._decide(review, Decision(PICK, number, user_id=user_id), name, tr)

    async def edit(self, review_id: int, text: str, user_id: int, name: str,
                   is_editor: bool, tr: Texts, number: int | None = None) -> str:
        """An editor's corrected text for a review: published in place of candidate `number`,
        or else of the one shown it comes closest to; the answer."""
        review, refusal = self._open(review_id, user_id, is_editor, tr)
        if review is None:
            return refusal
        text = text.strip()
        if not text:
            return tr.t("review.empty_edit")
        if number is not None and not 1 <= number <= review.shown:
            return tr.t("review.not_shown")
        shown = self.store.candidates(review.id, number or 1, number or review.shown)
        before = max(shown, key=lambda c: difflib.SequenceMatcher(None, c.text, text).ratio())
        tagged = text if text.endswith(TAG) else finish(text)
        decision = Decision(EDIT, before.number, tagged, user_id)
        return await self._decide(review, decision, name, tr, tagged)

    def _open(self, review_id: int, user_id: int, is_editor: bool,
              tr: Texts) -> tuple[Review | None, str]:
        """The open review an editor acts on, or None and why they may not."""
        if not is_editor:
            log.warning("user %s refused: not an editor of review #%d", user_id, review_id)
            return None, tr.t("review.not_editor")
        review = self.store.get(review_id)
        if review is None:
            return None, tr.t("review.unknown")
        if review.status != OPEN:
            return None, texts.review_ended(tr, review)
        return review, ""

    async def answer(self, line: str, user_id: int, name: str, tr: Texts) -> str | None:
        """A typed answer to the newest open review (the terminal): a number, `next`, `none`,
        or `edit N TEXT` with its lines separated by ` @ `; None when it is none of these."""
        word, _, rest = line.strip().partition(" ")
        if not (word.isdigit() or word.lower() in (NEXT, NONE, "edit")):
            return None
        pending = self.store.pending()
        if not pending:
            return tr.t("review.none_waiting")
        review = pending[-1]
        if word.isdigit():
            return await self.act(review.id, f"p{word}", user_id, name, True, tr)
        if word.lower() in (NEXT, NONE):
            return await self.act(review.id, word.lower(), user_id, name, True, tr)
        number, _, rest = rest.strip().partition(" ")
        if not (number.isdigit() and rest.strip()):
            return tr.t("review.typed_hint")
        text = "\n@\n".join(part.strip() for part in rest.split(" @ "))
        return await self.edit(review.id, text, user_id, name, True, tr, int(number))

    async def expire(self) -> None:
        """End every open review whose deadline has passed (periodic): review.on_timeout."""
        for review in self.store.expired(time.time()):
            best = self.config.on_timeout == "publish_best"
            await self._decide(review, Decision(TIMEOUT, 1 if best else None), "",
                              self.texts)

    async def _more(self, review: Review, tr: Texts) -> str:
        more = self.store.show_more(review, self.config.choices)
        if more is None:
            if review.shown >= review.total:
                return tr.t("review.no_more")
            return tr.t("review.already_shown")
        page = self.store.candidates(review.id, review.shown + 1, more)
        sent = await self.desk.show(self.store.get(review.id), page) if self.desk else []
        self.store.add_messages(review.id, sent)
        return tr.t("review.more", first=review.shown + 1, last=more)

    async def _decide(self, review: Review, decision: Decision, name: str, tr: Texts,
                      tagged: str | None = None) -> str:
        """Make the decision if it is the first; deliver; tell every editor (in bot.language)
        and answer the one who decided (in `tr`)."""
        publish = None
        if decision.number is not None:
            (publish,) = self.store.candidates(review.id, decision.number, decision.number)
        ended = self.store.decide(review, decision, publish, tagged)
        if ended is None:
            return texts.review_ended(tr, self.store.get(review.id))
        results = await self.outbox.deliver(ended.outbox_id) if ended.outbox_id else []
        log.info("review #%d: %s %s by %s", review.id, decision.decision, decision.number,
                 decision.user_id)
        if self.desk is not None:
            await self.desk.close(self.store.messages(review.id),
                                  texts.review_closed(self.texts, ended, name, tagged or
                                                      (publish.text if publish else None)))
        return texts.review_decided(tr, ended, results)

    def describe(self, tr: Texts) -> str:
        """'editors, 2 pending (#4 until 14:00 UTC, #5 …)' for /status."""
        pending = self.store.pending()
        if not self.on:
            return tr.n("review.mode_auto_open", len(pending)) if pending else tr.t(
                "review.mode_auto")
        return tr.t("review.mode_editors", pending=texts.reviews_pending(tr, pending),
                    decided=texts.editors_yield(tr, *self.store.yield_()))

    def listing(self, tr: Texts) -> str:
        """/review: the open reviews, one a line."""
        return texts.reviews_listing(tr, self.store.pending())

