"""`python -m bot` in webhook mode: real processes behind PTB's webhook server, the fake Bot API
POSTing updates to them; the secret token checked; several processes on one PostgreSQL."""

from __future__ import annotations

import socket

import pytest

from tests.fakes.webhook import WebhookTelegram, post_update
from tests.pipeline import Child, bot_config, quiet, secrets, wait_until, write_config

pytestmark = pytest.mark.slow
SECRET = "webhook-SECRET_42"


@pytest.fixture
def hooked():
    server = WebhookTelegram().start()
    yield server
    server.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_webhook_bot(folder, raw: dict, telegram: WebhookTelegram) -> tuple[Child, str]:
    """A bot process serving its webhook on a free port; (the process, its webhook URL)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/hook"
    raw["telegram"]["token"] = "${TELEGRAM_TOKEN}"
    raw["telegram"]["webhook"] = {"url": url, "listen": f"127.0.0.1:{port}"}
    config = write_config(folder, raw)
    bot = Child(folder, "bot", "--config", str(config),
                env={**secrets(telegram), "TELEGRAM_WEBHOOK_SECRET": SECRET})
    wait_until(lambda: _listening(port) or not bot.alive(), 120, "the webhook server")
    assert bot.alive(), bot.stderr[-3000:]
    return bot, url


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
