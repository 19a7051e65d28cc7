"""Backup and restore drills. A running bot with two posts pending (Telegram and VK both failing
for the moment), one post out with readers' votes, and a full pool is backed up while it runs:
`pg_dump` of its PostgreSQL, or SQLite's online backup (what `sqlite3 FILE .backup` does) of its
file. The machine is then lost; a fresh bot on the restored copy sends each pending post once
(to VK with the post's own `guid`), and the pool and the votes are what they were.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.pool_store import PoolStore
from common.db import open_database
from harness.fakes.telegram import CHANNEL_ID
from harness.peers import TEMPERATURES, prefill
from harness.pipeline import ADMIN, OTHER, READER, AppThread, ask, bot_config, wait_until
from tests.pgserver import PrivateServer

POOL = 3  # ready posts per temperature: a full pool


def _config(folder: Path, bot_model, telegram, vk, url: str) -> dict:
    raw = bot_config(folder, bot_model, telegram, vk, cooldown_seconds=0)
    raw["storage"]["url"] = url
    raw["pool"] = {"size": POOL, "channel_candidates": 0, "channel_searches": 0}
    return raw


def _state(url: str) -> dict[str, list[tuple]]:
    """What a restore must keep: the outbox with its guids, the deliveries, votes, pool."""
    database = open_database(url)
    try:
        with database.read() as conn:
            return {table: [tuple(row) for row in conn.execute(sa.text(sql)).all()] for table, sql
                    in {"outbox": "SELECT id, text, guid FROM outbox ORDER BY id",
                        "deliveries": "SELECT outbox_id, target, status FROM deliveries"
                                      " ORDER BY outbox_id, target",
                        "votes": "SELECT outbox_id, user_id, value FROM votes ORDER BY user_id",
                        "pool": "SELECT id, text, used_at IS NULL FROM pool ORDER BY id"}.items()}
    finally:
        database.close()


def _live_bot_with_pending_posts(raw: dict, telegram, vk, backup) -> dict[str, list[tuple]]:
    """Run the bot: one post out and voted on, two pending; `backup()` while it runs. The state
    the backup holds."""
    with AppThread(raw) as bot:
        assert "telegram: sent" in ask(telegram, "/post", ADMIN)
        channel = telegram.messages_in(CHANNEL_ID)[0]
        for user, value in ((READER, 1), (OTHER, -1)):
            telegram.press_button(channel, f"vote:1:{value}", user)
        wait_until(lambda: len(telegram.calls_of("answerCallbackQuery")) == 2, 30, "the votes")
        for _ in range(2):  # Telegram and VK both down for these two: pending, retried later
            telegram.fail("sendMessage", status=502, description="Bad Gateway")
            vk.fail("wall.post", http_status=502)
            answer = ask(telegram, "/post", ADMIN)
            assert "telegram: will retry" in answer and "vk: will retry" in answer, answer
        saved = _state(bot.config.storage.url)
        backup()
    return saved  # the machine is lost: nothing after the backup counts


def _restored_bot_sends_each_once(raw: dict, telegram, vk, saved) -> None:
    url = raw["storage"]["url"]
    assert _state(url) == saved  # the copy is the backup
    before = len(telegram.messages_in(CHANNEL_ID))
    with AppThread(raw):  # start-up sends what is pending
        wait_until(lambda: len(vk.published) == 3 and
                   len(telegram.messages_in(CHANNEL_ID)) == before + 2, 60, "the pending posts")
    texts = [text for _, text, _ in saved["outbox"]]
    assert [m["text"] for m in telegram.messages_in(CHANNEL_ID)] == texts  # each once
    assert sorted(p["message"] for p in vk.published) == sorted(texts)
    guids = {text: guid for _, text, guid in saved["outbox"]}
    assert all(p["guid"] == guids[p["message"]] for p in vk.published)  # VK's own dedup key
    after = _state(url)
    assert {status for _, _, status in after["deliveries"]} == {"sent"}
    assert after["votes"] == saved["votes"] == [(1, READER, 1), (1, OTHER, -1)]
    assert after["pool"] == saved["pool"]
    database = open_database(url)
    try:  # the restored pool hands out its posts, each once
        taken = PoolStore(database).take(raw["generator"]["model_dir"], TEMPERATURES[0],
                                         n=POOL * len(TEMPERATURES) + 1)
    finally:
        database.close()
    assert sorted(taken) == sorted(text for _, text, ready in saved["pool"] if ready)


@pytest.mark.slow  # a private PostgreSQL server and two bots
def test_pg_dump_of_a_running_bot_restores_into_a_fresh_one(tmp_path, bot_model, servers):
    telegram, vk = servers
    with PrivateServer() as server:
        prefill(server.url, str(bot_model), per_temperature=POOL)
        dump = server.folder / "bot.dump"

        def pg_dump() -> None:
            subprocess.run([str(server.bin / "pg_dump"), "-Fc", "-f", str(dump),
                            "--dbname", server.url], check=True, capture_output=True, timeout=120)

        raw = _config(tmp_path / "lost", bot_model, telegram, vk, server.url)
        saved = _live_bot_with_pending_posts(raw, telegram, vk, pg_dump)
        admin = sa.create_engine(server.url.replace("postgresql:", "postgresql+psycopg:"),
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql("CREATE DATABASE restored")
        admin.dispose()
        restored = server.url.rsplit("/", 1)[0] + "/restored"
        subprocess.run([str(server.bin / "pg_restore"), "--dbname", restored, str(dump)],
                       check=True, capture_output=True, timeout=120)
        raw = _config(tmp_path / "fresh", bot_model, telegram, vk, restored)
        _restored_bot_sends_each_once(raw, telegram, vk, saved)


def test_sqlite_backup_of_a_running_bot_restores_into_a_fresh_one(tmp_path, bot_model, servers):
    telegram, vk = servers
    lost, fresh = tmp_path / "lost.sqlite3", tmp_path / "fresh" / "neurobugurt.sqlite3"
    prefill(f"sqlite:///{lost}", str(bot_model), per_temperature=POOL)
    fresh.parent.mkdir()

    def backup() -> None:  # the online backup API, as `sqlite3 lost.sqlite3 ".backup FILE"`
        source, target = sqlite3.connect(lost), sqlite3.connect(fresh)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()

    raw = _config(tmp_path / "lost", bot_model, telegram, vk, f"sqlite:///{lost}")
    saved = _live_bot_with_pending_posts(raw, telegram, vk, backup)
    lost.unlink()  # the machine is lost
    raw = _config(tmp_path / "fresh", bot_model, telegram, vk, f"sqlite:///{fresh}")
    _restored_bot_sends_each_once(raw, telegram, vk, saved)
