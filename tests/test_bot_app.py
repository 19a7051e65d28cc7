"""The real PTB Application (run_polling) against the fake Bot API and fake VK servers.

The model is the session's tiny trained model (the `bot_model` fixture of conftest.py).
"""

from __future__ import annotations

import re
import time

from harness.fakes.telegram import BOT_USERNAME, CHANNEL_ID
from harness.fakes.vk import FakeVk
from harness.pipeline import ADMIN, CHANNEL, OTHER, READER, AppThread, ask, bot_config, quiet


def test_chat_commands_and_bad_input(tmp_path, bot_model, telegram):
    with AppThread(bot_config(tmp_path, bot_model, telegram, channel=False)):
        assert "/bugurt" in ask(telegram, "/start", READER)
        post = ask(telegram, "/bugurt", READER)
        assert post.endswith("\n#neurobugurt") and "\n@\n" in post
        assert ask(telegram, "/bugurt", READER).startswith("Please wait")
        telegram.send_text("/bugurt", user_id=READER)  # a flood gets one line, not one per message
        assert quiet(telegram, READER) == []

        assert "at most 150" in ask(telegram, "/bugurt " + "БУГУРТ " * 1500, OTHER)
        assert "no characters I can write" in ask(telegram, "/bugurt 😀🔥\x07", OTHER)
        start = len(telegram.calls)
        telegram.send_text("/bugurt кот 😀\x07\x1b", user_id=OTHER)
        note = telegram.wait_for("sendMessage", after=start).params["text"]
        assert note.startswith("I left out") and "😀" in note
        post = telegram.wait_for("sendMessage", lambda p: "#neurobugurt" in p["text"], after=start)
        assert post.params["text"].startswith("КОТ")

        got = ask(telegram, "/frobnicate", OTHER)
        assert got.startswith("I don't know /frobnicate."), got
        assert ask(telegram, "просто текст", OTHER).startswith("I answer commands")
        assert "#neurobugurt" in ask(telegram, f"/bugurt@{BOT_USERNAME}", ADMIN)
        assert ask(telegram, "/post", OTHER) == "/post is for the bot's admins only."
        assert "Nothing to publish to" in ask(telegram, "/post", ADMIN)

        # Ignored on purpose: another bot's command, an edit, a command in a channel.
        telegram.send_text("/bugurt@otherbot", user_id=OTHER)
        telegram.send_text("/help", user_id=OTHER, kind="edited_message")
        telegram.send_text("/bugurt", user_id=OTHER, chat_id=CHANNEL_ID, kind="channel_post")
        telegram.send_text("hello", user_id=OTHER, chat_id=-100, chat_type="group")
        assert quiet(telegram, OTHER) == [] and quiet(telegram, CHANNEL_ID, 0.1) == []
        assert quiet(telegram, -100, 0.1) == []
        admin_help = ask(telegram, "/help", ADMIN)
        public_help = ask(telegram, "/help", OTHER)
        assert admin_help.startswith(public_help + "\n\nAdmin commands:\n/post: ")
        assert "/rollback" in admin_help and "Admin commands" not in public_help
        assert public_help.startswith("/bugurt: a fresh bugurt\n")
        # The command menu lists the public commands, each with a description (in each
        # language: tests/test_bot_language.py).
        listed = {c["command"]: c["description"] for c in telegram.menus[""]}
        assert set(listed) == {"start", "bugurt", "top", "help"} and all(listed.values())


def test_sampling_runs_off_the_event_loop(tmp_path, bot_model, telegram):
    raw = bot_config(tmp_path, bot_model, telegram, channel=False, candidates=256)
    raw["pool"] = {"size": 0, "channel_candidates": 0}  # on demand: the sampling thread is busy
    with AppThread(raw):
        start = len(telegram.calls)
        telegram.send_text("/bugurt", user_id=ADMIN)
        time.sleep(0.05)
        telegram.send_text("/help", user_id=READER)
        post = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == ADMIN, after=start)
        help_ = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == READER, after=start)
        assert help_.at < post.at  # /help was answered while the post was being sampled


def test_admin_commands_scheduled_post_votes_and_flood_control(tmp_path, bot_model, telegram):
    with FakeVk() as vk, AppThread(bot_config(tmp_path, bot_model, telegram, vk)) as bot:
        assert ask(telegram, "/pause", READER) == "/pause is for the bot's admins only."
        assert ask(telegram, "/pause", ADMIN).startswith("Scheduled posting paused")
        assert "paused" in ask(telegram, "/status", ADMIN)
        assert ask(telegram, "/resume", ADMIN).startswith("Scheduled posting resumed")
        assert "hour field '25'" in ask(telegram, "/schedule 0 25 * * *", ADMIN)
        assert ask(telegram, "/schedule 30 9 * * 1", ADMIN).startswith("Schedule set: 30 9 * * 1")

        bot.call(bot.runner.schedule.run_now)  # its time has come
        call = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == CHANNEL)
        text = call.params["text"]
        assert text.endswith("#neurobugurt")
        deadline = time.monotonic() + 60  # a bound, generous for a loaded machine
        while not vk.published and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p["message"] for p in vk.published] == [text]
        assert vk.published[0]["owner_id"] == "-4242"
        (posted,) = telegram.messages_in(CHANNEL_ID)

        for user, vote in ((READER, "1"), (READER, "-1"), (ADMIN, "1"), (OTHER, "1")):
            start = len(telegram.calls)
            telegram.press_button(posted, f"vote:1:{vote}", user)
            answer = telegram.wait_for("answerCallbackQuery", after=start)
            assert answer.params["text"].startswith("Thanks")
        edit = telegram.wait_for(
            "editMessageReplyMarkup",
            lambda p: p["reply_markup"]["inline_keyboard"][0][0]["text"] == "👍 2",
        )
        assert edit.params["reply_markup"]["inline_keyboard"][0][1]["text"] == "👎 1"
        assert "#1 👍2 👎1" in ask(telegram, "/top", READER)
        start = len(telegram.calls)
        telegram.press_button(posted, "vote:77:1", READER)  # a post the database never had
        answer = telegram.wait_for("answerCallbackQuery", after=start)
        assert answer.params["text"] == "This post is not in my records any more."

        # Flood control on the channel: the rate limiter waits retry_after, then sends once.
        telegram.fail("sendMessage", retry_after=1)
        began = time.monotonic()
        reply = ask(telegram, "/post", ADMIN)
        assert reply.startswith("Post #2") and "telegram: sent" in reply and "vk: sent" in reply
        assert time.monotonic() - began >= 1.0
        assert len(telegram.messages_in(CHANNEL_ID)) == 2 and len(vk.published) == 2
        status = ask(telegram, "/status", ADMIN)
        assert "Outbox: 0 pending, 4 sent, 0 failed" in status and "Last post: #2" in status
        arms = re.findall(r"([\d.]+) \(👍(\d+) 👎(\d+), (\d+) posts\)", status)
        assert [a[0] for a in arms] == ["0.4", "0.45", "0.5"]
        assert sum(int(a[3]) for a in arms) == 2  # two posts published
        assert [(int(a[1]), int(a[2])) for a in arms if a[1] != "0" or a[2] != "0"] == [(2, 1)]

    with FakeVk() as vk, AppThread(bot_config(tmp_path, bot_model, telegram, vk)):
        status = ask(telegram, "/status", ADMIN)  # after a restart
        assert "Schedule: 30 9 * * 1 (UTC), next" in status and "4 sent" in status
