"""The whole pipeline as real processes against the fake VK and Telegram servers:

    python -m scraper → python -m generator train --minutes 0.25 → python -m bot

The assertions are on what the fake servers received and on the files each stage hands to the
next, not on log lines. The secrets reach the children only through their environment.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from common.corpus import read_posts, split_paths
from harness.fakes.telegram import CHANNEL_ID
from harness.fakes.vk import TOKEN as VK_TOKEN
from harness.pipeline import (
    ADMIN,
    POST_COMMUNITY,
    READER,
    TINY_MODEL,
    Child,
    integrity,
    process_config,
    query,
    rewind_posting_job,
    run,
    secrets,
    wait_until,
    wall_items,
)

SUMMARY = re.compile(r"fetched (\d+) new posts; corpus: (\d+) bugurts, (\d+) characters")
TRAIN_SUMMARY = re.compile(
    r"train_summary: chars=(\d+) seconds=([\d.]+) chars_per_sec=([\d.]+) best_val_bpc=([\d.]+)"
)

pytestmark = pytest.mark.slow  # the whole pipeline as real processes
TAG = "\n#neurobugurt"


@pytest.mark.e2e
def test_wall_to_trained_model_to_published_posts(tmp_path, servers):
    telegram, vk = servers
    vk.posts.update((item["id"], item) for item in wall_items())
    config = str(process_config(tmp_path, vk, telegram))
    env = secrets(telegram)
    written = Path(config).read_text(encoding="utf-8")
    assert telegram.token not in written and VK_TOKEN not in written  # secrets: env only
    db, corpus = tmp_path / "data" / "neurobugurt.sqlite3", tmp_path / "data" / "corpus.txt"

    # 1. Scrape: every post of the wall stored once, the corpus and its split written.
    scrape = run("scraper", "--config", config, env=env, timeout=180)
    assert scrape.returncode == 0, scrape.stderr
    found = SUMMARY.fullmatch(scrape.stdout.strip().splitlines()[-1])
    assert found, scrape.stdout
    wall_ids = sorted(vk.posts)
    assert int(found[1]) == len(wall_ids)
    assert [r[0] for r in query(db, "SELECT post_id FROM posts ORDER BY post_id")] == wall_ids
    assert sorted(vk.offsets()) == list(range(0, len(wall_ids), 100))  # each page read once
    assert {params["v"] for _, params in vk.calls} == {"5.199"}
    bugurts = read_posts(corpus)
    assert len(bugurts) == int(found[2]) and 0.6 * len(wall_ids) < len(bugurts) < len(wall_ids)
    assert sum(len(b) for b in bugurts) == int(found[3])
    train, val = (read_posts(p) for p in split_paths(corpus))
    assert train + val == bugurts and 0 < len(val) < len(train)
    lines = [line for b in bugurts for line in b.split("\n")]
    assert "БУГУРТ-ТРЕД" not in lines and not any("предложено через" in ln for ln in lines)

    # 2. Train a tiny model for 15 seconds of training steps (2-3M characters on 2020s CPUs,
    #    3.2 bits per character after 12 s here: the shape of a bugurt is learnt in the first few).
    model = tmp_path / "model"
    trained = run("generator", "train", "--config", config, "--out", str(model),
                  "--minutes", "0.25", *TINY_MODEL, env=env, timeout=300)
    assert trained.returncode == 0, trained.stderr[-2000:]
    summary = TRAIN_SUMMARY.fullmatch(trained.stdout.strip().splitlines()[-1])
    assert summary, trained.stdout
    assert float(summary[2]) <= 15 + 6 and 0 < float(summary[4]) < 4.5  # within the budget
    progress = [json.loads(line) for line in (model / "metrics.jsonl").read_text().splitlines()]
    assert progress[-1]["progress"] < 1.1 and progress[-1]["chars"] == int(summary[1])

    # 3. The bot answers /bugurt from the trained model, then stops cleanly on SIGTERM.
    bot = Child(tmp_path / "logs", "bot", "--config", config, env=env)
    telegram.wait_for("setMyCommands", timeout=120)
    telegram.send_command("/bugurt", user_id=READER)
    reply = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == READER, timeout=90)
    assert reply.params["text"].endswith(TAG), reply.params["text"]
    assert "\n@\n" in reply.params["text"]
    assert telegram.messages_in(CHANNEL_ID) == [] and vk.published == []  # nothing due yet
    assert bot.stop() == 0, bot.stderr[-2000:]

    # 4. The bot was down when a post was due: on restart it publishes it once, to both.
    rewind_posting_job(db, seconds=60)
    bot = Child(tmp_path / "logs2", "bot", "--config", config, env=env)
    try:
        wait_until(lambda: telegram.messages_in(CHANNEL_ID) and vk.published, 120,
                   "the scheduled post on both targets")
        # the bot records a delivery just after the service answered: wait for both records
        wait_until(lambda: query(db, "SELECT count(*) FROM deliveries WHERE status = 'sent'")
                   == [(2,)], 30, "both deliveries recorded as sent")
        telegram.send_command("/status", user_id=ADMIN)
        status = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == ADMIN, timeout=60)
    finally:
        assert bot.stop() == 0, bot.stderr[-2000:]
    (channel_post,) = telegram.messages_in(CHANNEL_ID)
    (wall_post,) = vk.published
    text = channel_post["text"]
    assert text.endswith(TAG) and wall_post["message"] == text
    assert wall_post["owner_id"] == str(-POST_COMMUNITY) and wall_post["from_group"] == "1"
    buttons = channel_post["reply_markup"]["inline_keyboard"][0]
    assert [b["callback_data"] for b in buttons] == ["vote:1:1", "vote:1:-1"]
    assert query(db, "SELECT text, source, guid FROM outbox") == [
        (text, "schedule", wall_post["guid"])]
    assert query(db, "SELECT target, status, message_id FROM deliveries ORDER BY target") == [
        ("telegram", "sent", str(channel_post["message_id"])),
        ("vk", "sent", str(wall_post["post_id"])),
    ]
    shown = status.params["text"]
    assert "Outbox: 0 pending, 2 sent, 0 failed" in shown and f"Model: {model} (" in shown
    served_bpc = float(re.search(r"val bpc ([\d.]+)", shown)[1])
    assert abs(served_bpc - float(summary[4])) < 0.0011  # the best checkpoint is served
    assert integrity(db) == "ok"
    for child_err in (scrape.stderr, trained.stderr, bot.stderr):
        assert telegram.token not in child_err and VK_TOKEN not in child_err
        assert "Traceback" not in child_err
