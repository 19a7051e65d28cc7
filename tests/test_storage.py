"""The storage layer (common/db.py) on SQLite and PostgreSQL: one schema on both, today's SQLite
files upgraded with their data, the scraper's tables, and one clear line for a bad database."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from bot.outbox import Outbox
from bot.pool_store import PoolStore
from bot.ratings import Ratings
from bot.settings import RuntimeSettings
from common.cli import UserError
from common.db import MIGRATIONS, open_database, storage_url
from harness import pg
from harness.paths import REPO
from scraper.store import PostStore, ScrapeState

V3_DUMP = REPO / "tests" / "data" / "schema-v3.sql"  # a database of the SQLite-only versions


def _columns(database) -> dict[str, list[str]]:
    inspector = sa.inspect(database.engine)
    return {table: sorted(c["name"] for c in inspector.get_columns(table))
            for table in inspector.get_table_names()}


def test_a_sqlite_file_of_the_sqlite_only_versions_opens_with_its_data(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(V3_DUMP.read_text(encoding="utf-8"))
    old.close()
    database = open_database(storage_url(str(path)))
    try:
        posts = PostStore(database).raw_posts()
        assert [(p.post_id, p.text) for p in posts] == [(101, "БУГУРТ\n@\nТЕКСТ"),
                                                        (102, "ВТОРОЙ\n@\nПОСТ")]
        assert PostStore(database).state(-57536014).newest_post_id == 102
        assert Ratings(database).counts(1) == (1, 0)  # the vote of a user id beyond 2**32
        assert RuntimeSettings(database).schedule_cron("0 */4 * * *") == "30 9 * * 1"
        assert PoolStore(database).take("m", 0.6) == ["ГОТОВ\n#neurobugurt"]
        outbox = Outbox(database, [])
        assert outbox.counts() == {"sent": 1, "pending": 1}
        assert outbox.last_post() == {"id": 1, "created_at": 1700000000, "targets": "telegram"}
        assert outbox.store("НОВЫЙ\n#neurobugurt", 0.6, "admin") == 3  # ids go on after the old
    finally:
        database.close()
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS)


def test_sqlite_and_postgresql_get_the_same_tables_and_columns(tmp_path):
    lite = open_database(storage_url(str(tmp_path / "fresh.sqlite3")))
    with pg.fresh_schema() as url:
        server = open_database(url)
        try:
            server_columns = _columns(server)
            open_database(url).close()  # a second process starting: nothing to migrate again
            assert _columns(server) == server_columns
        finally:
            server.close()
    lite_columns = _columns(lite)
    lite.close()
    assert server_columns.pop("schema_version") == ["version"]  # SQLite: PRAGMA user_version
    assert lite_columns == server_columns
    assert {"posts", "pool", "outbox", "deliveries", "votes", "bot_state"} <= set(lite_columns)


def test_scraped_posts_and_progress_round_trip(database):
    store = PostStore(database)
    item = {"id": 7, "date": 1_600_000_000, "text": "ТЕКСТ \ud83d", "likes": {"count": 3}}
    state = ScrapeState(-1, run_newest_id=7, run_offset=1, run_last_id=7)
    assert store.save_page(-1, [item], state, pinned_seen=True) == 1
    assert store.save_page(-1, [item], state) == 0  # the same post again: updated, not new
    assert [(p.post_id, p.text) for p in store.raw_posts()] == [(7, "ТЕКСТ \ufffd")]
    assert store.state(-1) == state
    store.save_state(ScrapeState(-1, newest_post_id=7))
    assert store.state(-1) == ScrapeState(-1, newest_post_id=7)


def test_a_newer_schema_is_refused_in_one_line(tmp_path):
    path = tmp_path / "future.sqlite3"
    sqlite3.connect(path).execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(UserError, match="newer than this program knows"):
        open_database(storage_url(str(path)))


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://nobody:hunter2-pass@127.0.0.1:1/db", r"cannot use database postgresql://"
     r"nobody:\*\*\*@127\.0\.0\.1:1/db: .*(refused|failed)"),
    ("mysql://u@h/db", "unsupported database 'mysql'"),
    ("not a url", "storage.url is not a database URL"),
])
def test_a_database_that_cannot_be_used_is_one_line_without_its_password(url, message):
    with pytest.raises(UserError, match=message) as refused:
        open_database(url)
    assert "hunter2" not in str(refused.value) and "\n" not in str(refused.value)

