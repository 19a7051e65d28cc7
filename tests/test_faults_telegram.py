"""Telegram unreachable for a while: every Bot API method answers a proxy's 502 page, resets the
connection, or hangs, over a window that holds a scheduled post, a burst and a /retrain's
progress edits. After recovery the channel post is out once, polling picks up what was sent
meanwhile, every reply went out once (or, too late to matter, was dropped with a log line), the
retrain went on to its end, and a 429's `retry_after` is waited out.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from harness.fakes.telegram import CHANNEL_ID
from harness.pipeline import (
    ADMIN,
    TINY_TRAIN,
    AppThread,
    ask,
    bot_config,
    query,
    wait_until,
    write_config,
    write_tiny_corpus,
)

pytestmark = pytest.mark.slow  # a bot with a trainer process through a timed outage

OUTAGE_SECONDS = 8  # longer than PTB's read timeout (5 s): a hung call times out within it
RETRY_AFTER = 2  # seconds a 429 asks for as Telegram comes back


def _replies(telegram, users) -> dict[int, list[str]]:
    """Messages Telegram took (stored) for each user's chat."""
    return {user: [m["text"] for m in telegram.messages_in(user)] for user in users}


@pytest.mark.parametrize("kind", ["bad-gateway", "reset", "hang"])
def test_a_telegram_outage_loses_nothing_and_sends_nothing_twice(tmp_path, bot_model, telegram,
                                                                 kind, caplog):
    caplog.set_level(logging.WARNING)
    write_tiny_corpus(tmp_path / "data" / "corpus.txt")
    raw = bot_config(tmp_path, bot_model, telegram, cooldown_seconds=0, retrain_minutes=1,
                     retrain_warm_start=False)
    raw["pool"] = {"size": 0, "channel_candidates": 0}
    options = {"train_args": (*TINY_TRAIN, "--max-steps", "3000"), "retrain_poll_seconds": 0.2,
               "sweep_seconds": 1, "backoff_seconds": 1}
    with AppThread(raw, str(write_config(tmp_path, raw)), **options) as bot:
        start = len(telegram.calls)
        assert ask(telegram, "/retrain", ADMIN) == "Retrain: starting…"
        telegram.wait_for("editMessageText", lambda p: "chars/s" in p["text"], 120, start)
        # replies on their way out when Telegram goes away
        early = range(500, 505)
        telegram.hold("sendMessage", early)
        updates = {telegram.send_command("/bugurt", user_id=u)["update_id"]: u for u in early}
        wait_until(lambda: telegram.held >= len(early), 60, "the replies being sent")
        telegram.outage(kind)
        telegram.release()
        edits = len(telegram.calls_of("editMessageText"))
        late = range(600, 610)  # sent while the bot cannot poll: picked up after
        for user in late:
            telegram.send_command("/bugurt", user_id=user)
        bot.call(bot.runner.schedule.run_now)  # the scheduled post falls due in the outage
        wait_until(lambda: len(telegram.calls_of("editMessageText")) > edits, 30,
                   "a progress edit meeting the outage")
        time.sleep(OUTAGE_SECONDS)  # the outage lasts (the fault's length, not a wait for)
        telegram.fail("sendMessage", retry_after=RETRY_AFTER)  # flood control on the way back
        back = len(telegram.calls)
        telegram.recover()

        final = telegram.wait_for("editMessageText", lambda p: p["text"].startswith(
            ("Retrain done", "Retrain failed")), 180, start).params["text"]
        wait_until(lambda: all(_replies(telegram, late).values()), 90, "the late burst answered")
        wait_until(lambda: telegram.messages_in(CHANNEL_ID), 60, "the channel post")
        time.sleep(3)  # a second channel post (sweeps every 1 s) or reply would come by now
        channel = [m["text"] for m in telegram.messages_in(CHANNEL_ID)]
        db = Path(bot.config.storage.db)

    assert final.startswith("Retrain done"), final  # the outage did not end the retrain
    assert channel == [text for text, in query(db, "SELECT text FROM outbox")]  # once
    assert query(db, "SELECT status FROM deliveries") == [("sent",)]
    assert all(len(texts) == 1 for texts in _replies(telegram, late).values())
    logged = caplog.text
    for update_id, user in updates.items():  # sent once, or dropped and logged
        texts = _replies(telegram, [user])[user]
        assert len(texts) == 1 or (not texts and f"update {update_id}: reply dropped" in logged)
    if kind != "hang":  # the request never reached Telegram: tried again, not dropped
        assert all(len(texts) == 1 for texts in _replies(telegram, early).values())
    # the 429 answered after recovery (a call hung in the outage may be recorded after `back`
    # too), then the next call with the same message
    limited = next(c for c in telegram.calls[back:] if c.status == 429)
    retried = next(c for c in telegram.calls[telegram.calls.index(limited) + 1:]
                   if c.method == "sendMessage" and c.params == limited.params)
    assert retried.at - limited.at >= RETRY_AFTER  # retry_after honoured
    assert "error while handling an update" not in logged, logged[-3000:]
    ours = [r for r in caplog.records if r.name.startswith(("bot", "common"))]
    assert [(r.name, r.getMessage()) for r in ours if r.exc_info] == []  # one line each
