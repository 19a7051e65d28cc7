"""Raw wall posts and scrape progress in the database (tables `posts`, `scrape_state` of common.db).

Each wall page is stored in one transaction together with the scrape state that says how far
the run has come, so a killed process leaves either the page and its progress or neither.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import sqlalchemy as sa

from common.db import Database
from scraper.clean import RawPost


@dataclass
class ScrapeState:
    """Progress of one wall (see the `scrape_state` DDL in common/db.py)."""

    owner_id: int
    newest_post_id: int | None = None  # top non-pinned id of the last completed scrape
    run_newest_id: int | None = None  # top non-pinned id of the run in progress; None: none
    run_offset: int = 0  # wall offset the run in progress has stored up to
    run_full: bool = False
    run_last_id: int | None = None  # oldest non-pinned id the run in progress has stored

    @property
    def interrupted(self) -> bool:
        return self.run_newest_id is not None


_UPSERT = sa.text("""
INSERT INTO posts (owner_id, post_id, date, text, likes, reposts, views, marked_as_ads,
                   is_pinned, is_repost, edited, raw_json, fetched_at)
VALUES (:owner_id, :post_id, :date, :text, :likes, :reposts, :views, :marked_as_ads,
        :is_pinned, :is_repost, :edited, :raw_json, :fetched_at)
ON CONFLICT (owner_id, post_id) DO UPDATE SET
    date = excluded.date, text = excluded.text, likes = excluded.likes,
    reposts = excluded.reposts, views = excluded.views, marked_as_ads = excluded.marked_as_ads,
    is_pinned = excluded.is_pinned, is_repost = excluded.is_repost, edited = excluded.edited,
    raw_json = excluded.raw_json, fetched_at = excluded.fetched_at
""")


class PostStore:
    def __init__(self, db: Database):
        self.db = db

    def state(self, owner_id: int) -> ScrapeState:
        with self.db.read() as conn:
            row = conn.execute(sa.text("SELECT * FROM scrape_state WHERE owner_id = :owner"),
                               {"owner": owner_id}).first()
        if row is None:
            return ScrapeState(owner_id)
        return ScrapeState(
            owner_id,
            row.newest_post_id,
            row.run_newest_id,
            row.run_offset or 0,
            bool(row.run_full),
            row.run_last_id,
        )

    def save_page(
        self, owner_id: int, items: list[dict], state: ScrapeState, pinned_seen: bool = False
    ) -> int:
        """Upsert a page of wall items and the run's progress atomically; returns new posts.

        `pinned_seen`: this page opens the wall, so its pinned post (or none) is the only one.
        """
        now = int(time.time())
        rows = [_row(owner_id, item, now) for item in items]
        ids = [r["post_id"] for r in rows]
        with self.db.write() as conn:
            known = set(conn.execute(
                sa.text("SELECT post_id FROM posts WHERE owner_id = :owner AND post_id IN :ids")
                .bindparams(sa.bindparam("ids", expanding=True)),
                {"owner": owner_id, "ids": ids},
            ).scalars()) if ids else set()
            if pinned_seen:
                conn.execute(sa.text(
                    "UPDATE posts SET is_pinned = 0 WHERE owner_id = :owner AND is_pinned = 1"
                ), {"owner": owner_id})
            if rows:
                conn.execute(_UPSERT, rows)
            _write_state(conn, state, now)
        return len(set(ids) - known)

    def save_state(self, state: ScrapeState) -> None:
        with self.db.write() as conn:
            _write_state(conn, state, int(time.time()))

    def raw_posts(self) -> list[RawPost]:
        """Every stored post (all walls), as the cleaner reads them."""
        with self.db.read() as conn:
            rows = conn.execute(sa.text(
                "SELECT post_id, date, text, marked_as_ads, is_repost FROM posts"
                " ORDER BY date, owner_id, post_id"
            )).all()
        return [
            RawPost(r.post_id, r.date, r.text, bool(r.marked_as_ads), bool(r.is_repost))
            for r in rows
        ]


def _write_state(conn: sa.Connection, state: ScrapeState, now: int) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO scrape_state (owner_id, newest_post_id, run_newest_id, run_offset,"
            " run_full, run_last_id, updated_at) VALUES (:owner, :newest, :run_newest,"
            " :run_offset, :run_full, :run_last, :now)"
            " ON CONFLICT (owner_id) DO UPDATE SET newest_post_id = excluded.newest_post_id,"
            " run_newest_id = excluded.run_newest_id, run_offset = excluded.run_offset,"
            " run_full = excluded.run_full, run_last_id = excluded.run_last_id,"
            " updated_at = excluded.updated_at"
        ),
        {
            "owner": state.owner_id,
            "newest": state.newest_post_id,
            "run_newest": state.run_newest_id,
            "run_offset": state.run_offset if state.interrupted else None,
            "run_full": int(state.run_full),
            "run_last": state.run_last_id if state.interrupted else None,
            "now": now,
        },
    )


def _row(owner_id: int, item: dict, now: int) -> dict:
    def counter(name: str) -> int | None:
        value = item.get(name)
        return value.get("count") if isinstance(value, dict) else None

    text = item.get("text")
    return {
        "owner_id": owner_id,
        "post_id": item["id"],
        "date": item["date"],
        "text": _valid_unicode(text) if isinstance(text, str) else "",
        "likes": counter("likes"),
        "reposts": counter("reposts"),
        "views": counter("views"),
        "marked_as_ads": int(bool(item.get("marked_as_ads"))),
        "is_pinned": int(bool(item.get("is_pinned"))),
        "is_repost": int(bool(item.get("copy_history"))),
        "edited": item.get("edited") if isinstance(item.get("edited"), int) else None,
        "raw_json": _valid_unicode(json.dumps(item, ensure_ascii=False, sort_keys=True)),
        "fetched_at": now,
    }


def _valid_unicode(text: str) -> str:
    """JSON may carry half an emoji (a lone surrogate), which no database stores: make it U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
