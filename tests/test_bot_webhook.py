"""`python -m bot` in webhook mode: real processes behind PTB's webhook server, the fake Bot API
POSTing updates to them; the secret token checked; several processes on one PostgreSQL."""

from __future__ import annotations

import time

import pytest

from harness import pg
from harness.fakes.telegram import CHANNEL_ID
from harness.fakes.webhook import WebhookTelegram, post_update
from harness.peers import SECRET, prefill, start_webhook_bot, start_webhook_peers
from harness.pipeline import (
    Child,
    bot_config,
    quiet,
    rewind_posting_job,
    secrets,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def hooked():
    server = WebhookTelegram().start()
    yield server
    server.stop()


def test_updates_come_by_webhook_and_a_wrong_secret_is_refused(tmp_path, bot_model, hooked):
    raw = bot_config(tmp_path, bot_model, hooked, channel=False, cooldown_seconds=0)
    bot, url = start_webhook_bot(tmp_path, raw, hooked)
    assert hooked.webhook["url"] == url and hooked.webhook["secret_token"] == SECRET
    hooked.targets = [url]
    forged = {"update_id": 999, "message": {
        "message_id": 1, "date": 0, "chat": {"id": 55, "type": "private"},
        "from": {"id": 55, "is_bot": False, "first_name": "x"}, "text": "/help",
        "entities": [{"type": "bot_command", "offset": 0, "length": 5}]}}
    assert post_update(url, forged, "wrong-secret") == 403
    assert post_update(url, forged, None) == 403
    assert quiet(hooked, 55, 1.0) == []  # refused updates change nothing
    after = len(hooked.calls)
    hooked.send_command("/bugurt", user_id=7)
    answer = hooked.wait_for("sendMessage", lambda p: p["chat_id"] == 7, 60, after)
    assert answer.params["text"].endswith("#neurobugurt")
    again = {**forged, "update_id": max(hooked.delivered)}  # Telegram sends an update again
    assert post_update(url, again, SECRET) == 200
    assert quiet(hooked, 7, 1.0) == []  # the inbox knows it: not answered twice
    assert bot.stop() == 0
    assert SECRET not in bot.stderr and "Traceback" not in bot.stderr


def test_webhook_without_a_secret_is_one_line(tmp_path, bot_model, hooked):
    raw = bot_config(tmp_path, bot_model, hooked, channel=False)
    raw["telegram"]["token"] = "${TELEGRAM_TOKEN}"
    raw["telegram"]["webhook"] = {"url": "https://bot.example/hook"}
    config = write_config(tmp_path, raw)
    env = {k: v for k, v in secrets(hooked).items() if k != "TELEGRAM_WEBHOOK_SECRET"}
    bot = Child(tmp_path, "bot", "--config", str(config), env=env)
    assert bot.wait(60) == 2
    assert bot.stderr.strip().splitlines()[-1] == (
        "error: telegram.webhook.secret is empty: set the environment variable"
        " TELEGRAM_WEBHOOK_SECRET (see config.yaml)")


def _burst(server: WebhookTelegram, users: range, each: int) -> None:
    """`each` /bugurt from every user, all queued at once; waits until all are answered."""
    after = len(server.calls)
    for _ in range(each):
        for user in users:
            server.send_command("/bugurt", user_id=user)
    wait_until(lambda: len(_answers(server, users, after)) >= len(users) * each, 120,
               "every /bugurt answered")


def _answers(server: WebhookTelegram, users: range, after: int = 0) -> list[str]:
    return [c.params["text"] for c in server.calls[after:]
            if c.method == "sendMessage" and c.params["chat_id"] in users]


def _channel_posts_once(server: WebhookTelegram, url: str, expected: int) -> None:
    """Make the posting job due (as if its time had come) and check it fires once: the
    leader's next look at the store (≤ 10 s) posts, and no second post follows."""
    rewind_posting_job(url, seconds=5)
    wait_until(lambda: len(server.messages_in(CHANNEL_ID)) >= expected, 60, "the scheduled post")
    time.sleep(12)  # longer than a follower's try to lead: it would have posted by now
    assert len(server.messages_in(CHANNEL_ID)) == expected


def test_two_processes_share_one_postgresql(tmp_path, bot_model, hooked):
    """Two webhook processes behind round-robin delivery: 200 /bugurt from 50 users answered
    once each with distinct posts; one scheduled run posts once; kill -9 of the leader while
    both are answering a burst loses no update (the survivor takes over the dead one's
    acknowledged updates), sends nothing twice, and the survivor leads the schedule."""
    with pg.fresh_schema() as url:
        # 300 at each temperature: the bandit's random arms take 300 posts in all, and an arm
        # emptied below pool.size would have the workers draw new posts, served before the
        # prefilled ones of other temperatures (nearest temperature first)
        ready = prefill(url, str(bot_model), per_temperature=300)
        bots = start_webhook_peers(tmp_path, bot_model, hooked, url, ("a", "b"))
        urls = hooked.targets
        _burst(hooked, range(1000, 1050), each=4)
        answers = _answers(hooked, range(1000, 1050))
        assert len(answers) == 200 and len(set(answers)) == 200 and set(answers) <= ready
        assert set(hooked.delivered.values()) == set(urls)  # both processes answered some

        _channel_posts_once(hooked, url, expected=1)
        leaders = [b for b in bots if "schedule: this process holds the lock" in b.stderr]
        assert len(leaders) == 1, [b.stderr[-2000:] for b in bots]
        # kill -9 the leader in the middle of a burst: both have acknowledged updates and are
        # sending their answers (held back by the fake Telegram) when it dies
        users = range(2000, 2050)
        hooked.hold("sendMessage", users)
        before = len(hooked.delivered)
        for user in users:
            hooked.send_command("/bugurt", user_id=user)
        hooked.wait_delivered(before + len(users))
        assert {hooked.delivered[i] for i in sorted(hooked.delivered)[before:]} == set(urls)
        wait_until(lambda: hooked.held >= 1, 60, "answers being sent")
        leaders[0].kill()
        hooked.release()  # the dead process's answers never reached Telegram
        wait_until(lambda: {c.params["chat_id"] for c in hooked.calls_of("sendMessage")}
                   >= set(users), 60, "every update of the burst answered")
        refused = hooked.refused
        _burst(hooked, range(3000, 3050), each=1)
        assert hooked.refused > refused  # updates offered to the dead process went elsewhere
        time.sleep(2)  # a second answer to an update of the burst would come within this
        burst = _answers(hooked, users)
        assert sorted(c.params["chat_id"] for c in hooked.calls_of("sendMessage")
                      if c.params["chat_id"] in users) == list(users)  # each once
        answers += burst + _answers(hooked, range(3000, 3050))
        assert len(answers) == 300 and len(set(answers)) == 300 and set(answers) <= ready
        _channel_posts_once(hooked, url, expected=2)  # the survivor took the lead
        survivor = next(b for b in bots if b.alive())
        assert "schedule: this process holds the lock" in survivor.stderr
        assert "a dead process left unhandled" in survivor.stderr
        assert survivor.stop() == 0
