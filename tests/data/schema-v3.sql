-- A bot database as the SQLite-only versions left it (schema version 3), dumped.
PRAGMA user_version = 3;
BEGIN TRANSACTION;
CREATE TABLE bot_state (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
INSERT INTO "bot_state" VALUES('schedule','{"cron": "30 9 * * 1", "config": "0 */4 * * *"}');
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
INSERT INTO "deliveries" VALUES(1,'telegram','sent','77',1,NULL,0.0,1700000001);
INSERT INTO "deliveries" VALUES(2,'telegram','pending',NULL,0,NULL,0.0,NULL);
CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY,
        text        TEXT    NOT NULL,
        temperature REAL,
        source      TEXT    NOT NULL,   -- 'schedule' or 'admin'
        guid        TEXT    NOT NULL UNIQUE, -- idempotency key sent with VK wall.post
        created_at  INTEGER NOT NULL
    );
INSERT INTO "outbox" VALUES(1,'ОПУБЛИКОВАН
#neurobugurt',0.6,'schedule','guid-1',1700000000);
INSERT INTO "outbox" VALUES(2,'ЖДЁТ
#neurobugurt',0.7,'admin','guid-2',1700000100);
CREATE TABLE pool (
        id          INTEGER PRIMARY KEY,
        model_dir   TEXT    NOT NULL,
        kind        TEXT    NOT NULL CHECK (kind IN ('reply', 'channel')),
        temperature REAL    NOT NULL,
        text        TEXT    NOT NULL,
        score       REAL    NOT NULL,  -- mean log-likelihood per character
        created_at  REAL    NOT NULL,  -- unix seconds
        used_at     REAL               -- NULL: ready; unix seconds when handed out
    , realness REAL);
INSERT INTO "pool" VALUES(1,'m','reply',0.6,'ГОТОВ
#neurobugurt',-1.5,1700000300.0,NULL,NULL);
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
INSERT INTO "posts" VALUES(-57536014,101,1600000000,'БУГУРТ
@
ТЕКСТ',5,1,300,0,0,0,NULL,'{}',1700000000);
INSERT INTO "posts" VALUES(-57536014,102,1600000100,'ВТОРОЙ
@
ПОСТ',NULL,NULL,NULL,1,0,0,NULL,'{}',1700000000);
CREATE TABLE scrape_state (
        owner_id       INTEGER PRIMARY KEY,
        newest_post_id INTEGER,   -- highest non-pinned post id of the last completed scrape
        run_newest_id  INTEGER,   -- newest id seen by the run in progress (NULL when none)
        run_offset     INTEGER,   -- wall offset the run in progress has stored up to
        run_last_id    INTEGER,   -- oldest non-pinned post id the run in progress has stored
        run_full       INTEGER NOT NULL DEFAULT 0,
        updated_at     INTEGER
    );
INSERT INTO "scrape_state" VALUES(-57536014,102,NULL,NULL,NULL,0,1700000000);
CREATE TABLE votes (
        outbox_id INTEGER NOT NULL REFERENCES outbox (id),
        user_id   INTEGER NOT NULL,
        value     INTEGER NOT NULL CHECK (value IN (-1, 1)),
        voted_at  INTEGER NOT NULL,
        PRIMARY KEY (outbox_id, user_id)
    );
INSERT INTO "votes" VALUES(1,5000000001,1,1700000200);
CREATE INDEX posts_by_date ON posts (owner_id, date);
CREATE INDEX deliveries_pending ON deliveries (status);
CREATE INDEX pool_ready ON pool (model_dir, kind, used_at, temperature);
COMMIT;
