"""The SQLite database (`storage.db`): connection settings and the whole schema, versioned.

One file holds the scraper's raw posts and the bot's outbox, votes and state (APScheduler's
job store adds its own `apscheduler_jobs` table). WAL mode lets the bot read while a scrape
writes; each writer commits in short transactions so a killed process loses at most the
transaction in flight.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from common.cli import UserError

# Each entry upgrades the schema by one version (PRAGMA user_version); append, never edit a
# released one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE posts (
        owner_id      INTEGER NOT NULL,          -- negative for communities
        post_id       INTEGER NOT NULL,
        date          INTEGER NOT NULL,          -- unix seconds
        text          TEXT    NOT NULL,
        likes         INTEGER,
        reposts       INTEGER,
        views         INTEGER,
        marked_as_ads INTEGER NOT NULL DEFAULT 0,
        is_pinned     INTEGER NOT NULL DEFAULT 0,
        is_repost     INTEGER NOT NULL DEFAULT 0, -- has copy_history
        edited        INTEGER,                    -- unix seconds of the last edit
        raw_json      TEXT    NOT NULL,
        fetched_at    INTEGER NOT NULL,
        PRIMARY KEY (owner_id, post_id)
    );
    CREATE INDEX posts_by_date ON posts (owner_id, date);

    CREATE TABLE scrape_state (
        owner_id       INTEGER PRIMARY KEY,
        newest_post_id INTEGER,   -- highest non-pinned post id of the last completed scrape
        run_newest_id  INTEGER,   -- newest id seen by the run in progress (NULL when none)
        run_offset     INTEGER,   -- wall offset the run in progress has stored up to
        run_last_id    INTEGER,   -- oldest non-pinned post id the run in progress has stored
        run_full       INTEGER NOT NULL DEFAULT 0,
        updated_at     INTEGER
    );

    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY,
        text        TEXT    NOT NULL,
        temperature REAL,
        source      TEXT    NOT NULL,   -- 'schedule' or 'admin'
        guid        TEXT    NOT NULL UNIQUE, -- idempotency key sent with VK wall.post
        created_at  INTEGER NOT NULL
    );

    CREATE TABLE deliveries (
        outbox_id  INTEGER NOT NULL REFERENCES outbox (id),
        target     TEXT    NOT NULL,                  -- 'telegram' or 'vk'
        status     TEXT    NOT NULL DEFAULT 'pending', -- pending, sent, failed
        message_id TEXT,
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_try   REAL    NOT NULL DEFAULT 0,        -- unix seconds of the next retry
        sent_at    INTEGER,
        PRIMARY KEY (outbox_id, target)
    );
    CREATE INDEX deliveries_pending ON deliveries (status);

    CREATE TABLE votes (
        outbox_id INTEGER NOT NULL REFERENCES outbox (id),
        user_id   INTEGER NOT NULL,
        value     INTEGER NOT NULL CHECK (value IN (-1, 1)),
        voted_at  INTEGER NOT NULL,
        PRIMARY KEY (outbox_id, user_id)
    );

    CREATE TABLE bot_state (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: the pool of ready posts (bot/pool.py): gated posts sampled ahead of requests, and the
    # candidates gathered for the next channel post. Each row names the model that wrote it, so
    # a model swap drops the old model's posts; `used_at` is set in the statement that takes it.
    """
    CREATE TABLE pool (
        id          INTEGER PRIMARY KEY,
        model_dir   TEXT    NOT NULL,
        kind        TEXT    NOT NULL CHECK (kind IN ('reply', 'channel')),
        temperature REAL    NOT NULL,
        text        TEXT    NOT NULL,
        score       REAL    NOT NULL,  -- mean log-likelihood per character
        created_at  REAL    NOT NULL,  -- unix seconds
        used_at     REAL               -- NULL: ready; unix seconds when handed out
    );
    CREATE INDEX pool_ready ON pool (model_dir, kind, used_at, temperature);
    """,
    # 3: the n-gram ranker's log-odds "real" of each pooled post, NULL when the model had no
    # ranker (removed again by 4).
    """
    ALTER TABLE pool ADD COLUMN realness REAL;
    """,
    # 4: the ranker is gone (candidates rank by `score` alone), and its column with it.
    """
    ALTER TABLE pool DROP COLUMN realness;
    """,
]


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """Open (creating if needed) the database and bring its schema up to date."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process in WAL
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        raise UserError(
            f"cannot use database {path}: {exc} (check storage.db in the config)"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot create the folder of database {path}: {exc}") from None
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise sqlite3.DatabaseError(
            f"schema version {version} is newer than this program knows ({len(MIGRATIONS)})"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with conn:
            conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
