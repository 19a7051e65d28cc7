"""Raw wall posts and scrape progress in SQLite (tables `posts`, `scrape_state` of common.db).

Each wall page is stored in one transaction together with the scrape state that says how far
the run has come, so a killed process leaves either the page and its progress or neither.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass

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


_UPSERT = """
INSERT INTO posts (owner_id, post_id, date, text, likes, reposts, views, marked_as_ads,
                   is_pinned, is_repost, edited, raw_json, fetched_at)
VALUES (:owner_id, :post_id, :date, :text, :likes, :reposts, :views, :marked_as_ads,
        :is_pinned, :is_repost, :edited, :raw_json, :fetched_at)
ON CONFLICT (owner_id, post_id) DO UPDATE SET
    date = excluded.date, text = excluded.text, likes = excluded.likes,
    reposts = excluded.reposts, views = excluded.views, marked_as_ads = excluded.marked_as_ads,
    is_pinned = excluded.is_pinned, is_repost = excluded.is_repost, edited = excluded.edited,
    raw_json = excluded.raw_json, fetched_at = excluded.fetched_at
"""


class PostStore:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def state(self, owner_id: int) -> ScrapeState:
        row = self.conn.execute(
            "SELECT * FROM scrape_state WHERE owner_id = ?", (owner_id,)
        ).fetchone()
        if row is None:
            return ScrapeState(owner_id)
        return ScrapeState(
            owner_id,
            row["newest_post_id"],
            row["run_newest_id"],
            row["run_offset"] or 0,
            bool(row["run_full"]),
            row["run_last_id"],
        )

    def save_page(
        self, owner_id: int, items: list[dict], state: ScrapeState, pinned_seen: bool = False
    ) -> int:
        """Upsert a page of wall items and the run's progress atomically; returns new posts.

        `pinned_seen`: this page opens the wall, so its pinned post (or none) is the only one.
        """
        now = int(time.time())
        rows = [_row(owner_id, item, now) for item in items]
        with self.conn:
            ids = [r["post_id"] for r in rows]
            marks = ",".join("?" * len(ids))
            known = {
                r[0]
                for r in self.conn.execute(
                    f"SELECT post_id FROM posts WHERE owner_id = ? AND post_id IN ({marks})",
                    (owner_id, *ids),
                )
            } if ids else set()
            if pinned_seen:
                self.conn.execute(
                    "UPDATE posts SET is_pinned = 0 WHERE owner_id = ? AND is_pinned = 1",
                    (owner_id,),
                )
            self.conn.executemany(_UPSERT, rows)
            self._write_state(state, now)
        return len(set(ids) - known)

    def save_state(self, state: ScrapeState) -> None:
        with self.conn:
            self._write_state(state, int(time.time()))

    def _write_state(self, state: ScrapeState, now: int) -> None:
        self.conn.execute(
            "INSERT INTO scrape_state (owner_id, newest_post_id, run_newest_id, run_offset,"
            " run_full, run_last_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (owner_id) DO UPDATE SET newest_post_id = excluded.newest_post_id,"
            " run_newest_id = excluded.run_newest_id, run_offset = excluded.run_offset,"
            " run_full = excluded.run_full, run_last_id = excluded.run_last_id,"
            " updated_at = excluded.updated_at",
            (
                state.owner_id,
                state.newest_post_id,
                state.run_newest_id,
                state.run_offset if state.interrupted else None,
                int(state.run_full),
                state.run_last_id if state.interrupted else None,
                now,
            ),
        )

    def raw_posts(self) -> list[RawPost]:
        """Every stored post (all walls), as the cleaner reads them."""
        rows = self.conn.execute(
            "SELECT post_id, date, text, marked_as_ads, is_repost FROM posts"
            " ORDER BY date, owner_id, post_id"
        )
        return [
            RawPost(r["post_id"], r["date"], r["text"], bool(r["marked_as_ads"]),
                    bool(r["is_repost"]))
            for r in rows
        ]


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
    """JSON may carry half an emoji (a lone surrogate) that SQLite cannot encode: make it U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
