"""Editors' reviews in the database (tables `reviews`, `review_candidates`, `review_messages`).

A review is opened with every candidate it may show, ranked; `shown` says how many the editors
have seen. It ends once, by the one UPDATE that still finds it open (`decide`): on PostgreSQL
the row lock makes a second decider wait and then find it ended, on SQLite the one writer does.
The same transaction stores the published post in the outbox and the editor's judgements, so a
decision is never half made, whichever process or restart comes between it and the delivery.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import sqlalchemy as sa

from bot import judgements
from bot.judgements import Judgement
from bot.outbox import Outbox
from common.db import Database

OPEN, PUBLISHED, SKIPPED = "open", "published", "skipped"
PICK, EDIT, NONE, TIMEOUT = "pick", "edit", "none", "timeout"  # decisions


@dataclass(frozen=True)
class Candidate:
    number: int  # 1 = first shown
    text: str
    temperature: float
    features: dict


@dataclass(frozen=True)
class Review:
    id: int
    source: str
    model_dir: str
    ranker: str
    status: str
    shown: int
    total: int  # candidates it holds
    created_at: float
    deadline: float
    decision: str | None
    decided_by: int | None
    chosen: int | None
    outbox_id: int | None


@dataclass(frozen=True)
class Decision:
    """What an editor (or the deadline) asks: `decision`, the candidate's number (pick, edit),
    the corrected text (edit)."""

    decision: str
    number: int | None = None
    edited: str | None = None
    user_id: int | None = None


class ReviewStore:
    def __init__(self, db: Database, outbox: Outbox) -> None:
        self.db = db
        self.outbox = outbox

    def open(self, source: str, model_dir: str, ranker: str, candidates: list[Candidate],
             shown: int, deadline: float) -> int:
        """Store a review and its ranked candidates; its id."""
        with self.db.write() as conn:
            review_id = conn.execute(sa.text(
                "INSERT INTO reviews (source, model_dir, ranker, shown, created_at, deadline)"
                " VALUES (:source, :model, :ranker, :shown, :now, :deadline) RETURNING id"
            ), {"source": source, "model": model_dir, "ranker": ranker, "shown": shown,
                "now": time.time(), "deadline": deadline}).scalar_one()
            conn.execute(sa.text(
                "INSERT INTO review_candidates (review_id, number, text, temperature, features)"
                " VALUES (:id, :number, :text, :t, :features)"
            ), [{"id": review_id, "number": c.number, "text": c.text, "t": c.temperature,
                 "features": json.dumps(c.features)} for c in candidates])
        return int(review_id)

    def get(self, review_id: int) -> Review | None:
        return next(iter(self._reviews("r.id = :id", {"id": review_id})), None)

    def pending(self) -> list[Review]:
        """Open reviews, oldest first."""
        return self._reviews("r.status = 'open'", {})

    def expired(self, now: float) -> list[Review]:
        """Open reviews whose deadline has passed."""
        return self._reviews("r.status = 'open' AND r.deadline < :now", {"now": now})

    def _reviews(self, where: str, params: dict) -> list[Review]:
        with self.db.read() as conn:
            rows = conn.execute(sa.text(
                "SELECT r.id, r.source, r.model_dir, r.ranker, r.status, r.shown,"
                " (SELECT COUNT(*) FROM review_candidates c WHERE c.review_id = r.id) AS total,"
                " r.created_at, r.deadline, r.decision, r.decided_by, r.chosen, r.outbox_id"
                f" FROM reviews r WHERE {where} ORDER BY r.id"), params).mappings().all()
        return [Review(**row) for row in rows]

    def yield_(self) -> tuple[int, int, int]:
        """(reviews editors decided, of them published, candidates those showed): the editors'
        yield, and what they read for it."""
        with self.db.read() as conn:
            decided, published, shown = conn.execute(sa.text(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'published' THEN 1 ELSE 0 END),"
                " 0), COALESCE(SUM(shown), 0) FROM reviews WHERE decided_by IS NOT NULL")).one()
        return int(decided), int(published), int(shown)

    def candidates(self, review_id: int, first: int = 1, last: int | None = None
                   ) -> list[Candidate]:
        """The review's candidates numbered first..last (all from `first` without `last`)."""
        with self.db.read() as conn:
            rows = conn.execute(sa.text(
                "SELECT number, text, temperature, features FROM review_candidates"
                " WHERE review_id = :id AND number >= :first AND number <= :last ORDER BY number"
            ), {"id": review_id, "first": first, "last": last or 1 << 62}).all()
        return [Candidate(r.number, r.text, r.temperature, json.loads(r.features)) for r in rows]

    def add_messages(self, review_id: int, sent: list[tuple[int, int, int]]) -> None:
        """Remember the messages (chat id, message id, first number) that show the review."""
        if not sent:
            return
        with self.db.write() as conn:
            conn.execute(sa.text(
                "INSERT INTO review_messages (review_id, chat_id, message_id, first)"
                " VALUES (:id, :chat, :message, :first)"
            ), [{"id": review_id, "chat": c, "message": m, "first": f} for c, m, f in sent])

    def messages(self, review_id: int) -> list[tuple[int, int]]:
        """(chat id, message id) of every message showing the review."""
        with self.db.read() as conn:
            return [(r.chat_id, r.message_id) for r in conn.execute(sa.text(
                "SELECT chat_id, message_id FROM review_messages WHERE review_id = :id"
                " ORDER BY message_id"), {"id": review_id})]

    def by_message(self, chat_id: int, message_id: int) -> int | None:
        """The review a message shows, or None."""
        with self.db.read() as conn:
            return conn.execute(sa.text(
                "SELECT review_id FROM review_messages WHERE chat_id = :chat"
                " AND message_id = :message"), {"chat": chat_id, "message": message_id}).scalar()

    def show_more(self, review: Review, choices: int) -> int | None:
        """Raise `shown` by up to `choices` if the review is still open and no one else raised
        it meanwhile (two taps on "next" show one page); the new count, or None."""
        more = min(review.total, review.shown + choices)
        if more == review.shown:
            return None
        with self.db.write() as conn:
            changed = conn.execute(sa.text(
                "UPDATE reviews SET shown = :more WHERE id = :id AND status = 'open'"
                " AND shown = :seen"), {"more": more, "id": review.id, "seen": review.shown})
        return more if changed.rowcount == 1 else None

    def decide(self, review: Review, decision: Decision, publish: Candidate | None,
               tagged: str | None = None) -> Review | None:
        """End the review if it is still open: mark it, store `publish` (or the edit `tagged`)
        in the outbox and the editor's judgements, in one transaction; the ended review, or
        None when another decision came first."""
        status = PUBLISHED if publish is not None else SKIPPED
        with self.db.write() as conn:
            won = conn.execute(sa.text(
                "UPDATE reviews SET status = :status, decision = :decision, decided_by = :user,"
                " decided_at = :now, chosen = :chosen WHERE id = :id AND status = 'open'"
                " RETURNING shown"
            ), {"status": status, "decision": decision.decision, "user": decision.user_id,
                "now": time.time(), "chosen": decision.number, "id": review.id}).first()
            if won is None:
                return None
            outbox_id = None
            if publish is not None:
                outbox_id = self.outbox.store(
                    tagged or publish.text, publish.temperature, review.source,
                    review.model_dir, publish.features, conn=conn)
                conn.execute(sa.text("UPDATE reviews SET outbox_id = :o WHERE id = :id"),
                             {"o": outbox_id, "id": review.id})
            if decision.user_id is not None:  # the deadline judges nothing
                shown = self._shown(conn, review.id, won.shown)
                judgements.add(conn, _judged(review, decision, shown, outbox_id))
        return self.get(review.id)

    @staticmethod
    def _shown(conn: sa.Connection, review_id: int, shown: int) -> list[Candidate]:
        rows = conn.execute(sa.text(
            "SELECT number, text, temperature, features FROM review_candidates"
            " WHERE review_id = :id AND number <= :shown ORDER BY number"),
            {"id": review_id, "shown": shown}).all()
        return [Candidate(r.number, r.text, r.temperature, json.loads(r.features)) for r in rows]


def _judged(review: Review, decision: Decision, shown: list[Candidate],
            outbox_id: int | None) -> list[Judgement]:
    """An editor's decision as judgements: the pick or the edit, and a pass for every other
    candidate shown."""
    source = f"editor:{decision.user_id}"
    made = []
    for c in shown:
        chosen = c.number == decision.number
        kind = (decision.decision if chosen else "pass")
        made.append(Judgement(
            kind, source, 1.0 if chosen else 0.0, c.text, review.model_dir, c.features,
            edited=decision.edited if chosen else None, review_id=review.id,
            outbox_id=outbox_id if chosen else None))
    return made
