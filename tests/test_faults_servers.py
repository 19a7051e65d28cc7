"""Fake servers that misbehave (5xx, slow or lost answers, truncated JSON, HTML error pages,
rate limits for a while) against the real processes: every command retries a bounded number of
times or stops with one clear line, nothing stored is lost, and the bot process never dies.
"""

from __future__ import annotations

import time

import pytest

from bot.i18n import texts_for
from harness.fakes.telegram import CHANNEL_ID
from harness.fakes.vk import FakeVk
from harness.pipeline import (
    READER,
    admin_post,
    integrity,
    one_clear_line,
    process_config,
    query,
    run,
    secrets,
    start_bot,
    stored_posts,
    wait_until,
    wall_items,
)

pytestmark = pytest.mark.slow  # real processes against misbehaving servers

TAG = "\n#neurobugurt"


PROXY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
CUT_JSON = '{"ok": true, "result": [{"update_id": 4'


# ----- the scraper ------------------------------------------------------------------------------


def test_scrape_retries_a_stormy_vk_api_within_a_bound(tmp_path):
    with FakeVk(wall_items(400)) as vk:
        vk.fail("utils.resolveScreenName", http_status=503)  # a proxy's HTML error page
        vk.fail("wall.get", code=6)  # too many requests per second
        vk.fail("wall.get", delay=2)  # slow, yet within the client's timeout
        vk.fail("execute", code=29)  # rate limit reached
        vk.fail("execute", http_status=502)
        config = process_config(tmp_path, vk)
        started = time.monotonic()
        done = run("scraper", "--config", str(config), env=secrets(), timeout=180)
        elapsed = time.monotonic() - started
        methods = [method for method, _ in vk.calls]
        wall_ids = sorted(vk.posts)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"fetched {len(wall_ids)} new posts")
    assert [methods.count(m) for m in ("utils.resolveScreenName", "wall.get", "execute")] == [
        2, 2, 3]
    assert elapsed < 60  # backoff 1 + 1 + 1 + 2 s, the slow answer 2 s, start-up
    db = tmp_path / "data" / "neurobugurt.sqlite3"
    assert [row[1] for row in stored_posts(db)] == wall_ids


def test_scrape_stops_with_one_line_on_a_broken_answer_and_loses_nothing(tmp_path):
    with FakeVk(wall_items(400)) as vk:
        config = process_config(tmp_path, vk)
        db = tmp_path / "data" / "neurobugurt.sqlite3"
        for fault, says in [({"malformed": True}, "malformed answer to execute"),
                            ({"http_status": 404}, "answered HTTP 404 to execute")]:
            vk.fail("execute", **fault)
            failed = run("scraper", "--config", str(config), env=secrets(), timeout=180)
            assert failed.returncode == 2 and says in one_clear_line(failed.stderr)
            assert integrity(db) == "ok" and 0 < len(stored_posts(db)) < len(vk.posts)
        done = run("scraper", "--config", str(config), env=secrets(), timeout=180)
        wall_ids = sorted(vk.posts)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [row[1] for row in stored_posts(db)] == wall_ids


# ----- the bot ----------------------------------------------------------------------------------


def test_bot_never_dies_under_a_stormy_telegram_and_vk(tmp_path, servers, bot_model):
    telegram, vk = servers
    config = process_config(tmp_path, vk, telegram, model_dir=bot_model)
    db = tmp_path / "data" / "neurobugurt.sqlite3"
    bot = start_bot(tmp_path / "first", config, telegram)
    telegram.fail("getUpdates", status=502, raw=PROXY_PAGE)
    telegram.fail("getUpdates", status=200, raw=CUT_JSON)
    telegram.fail("getUpdates", retry_after=1)
    telegram.send_command("/bugurt", user_id=READER)
    reply = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == READER, timeout=90)
    assert reply.params["text"].endswith(TAG)
    # A reply that never gets its answer: PTB's read timeout, then one apology, not silence.
    telegram.fail("sendMessage", hang=True)
    after = len(telegram.calls)
    telegram.send_command("/bugurt", user_id=READER + 1)
    hung = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == READER + 1, 90, after)
    assert hung.params["text"].endswith(TAG)  # recorded on arrival, never answered
    telegram.wait_for("sendMessage", lambda p: p["chat_id"] == READER + 1
                      and p["text"] == texts_for("en").t("internal_error"), 60, after)

    # Each /post meets another VK fault; the channel post once a Telegram flood limit.
    telegram.fail("sendMessage", retry_after=1)
    for fault in ({"http_status": 502}, {"malformed": True}, {"code": 9}):
        vk.fail("wall.post", **fault)
        answer = admin_post(telegram)
        assert "telegram: sent" in answer and "vk: will retry" in answer, answer
        assert bot.alive(), bot.stderr[-3000:]
    assert vk.published == []
    assert bot.stop() == 0, bot.stderr[-3000:]
    # Failed polls are one warning line each (PTB retries them), not a traceback each.
    assert bot.stderr.count("polling Telegram failed, retrying") >= 2, bot.stderr[-3000:]

    bot = start_bot(tmp_path / "second", config, telegram)  # sends what is pending, once
    wait_until(lambda: len(vk.published) == 3, 60, "the pending VK posts")
    time.sleep(1)
    assert bot.stop() == 0, bot.stderr[-3000:]
    texts = [text for text, in query(db, "SELECT text FROM outbox ORDER BY id")]
    assert [m["text"] for m in telegram.messages_in(CHANNEL_ID)] == texts
    assert sorted(p["message"] for p in vk.published) == sorted(texts)
    assert query(db, "SELECT DISTINCT status FROM deliveries") == [("sent",)]


def test_channel_post_answered_with_cut_json_is_retried(tmp_path, servers, bot_model):
    telegram, vk = servers
    config = process_config(tmp_path, vk, telegram, model_dir=bot_model)
    bot = start_bot(tmp_path, config, telegram)
    try:
        telegram.fail("sendMessage", status=200, raw=CUT_JSON)
        answer = admin_post(telegram)
    finally:
        assert bot.stop() == 0
    assert "telegram: will retry" in answer and "vk: sent" in answer, answer
