"""`python -m bot` as a real process: terminal mode on stdin, a crash and restart with a post in
flight (sent exactly once), and one-line errors without tokens in them."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.fakes.telegram import CHANNEL_ID, FakeTelegram
from tests.fakes.vk import FakeVk
from tests.paths import REPO
from tests.test_bot_app import ADMIN, bot_config, tiny_model, write_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory)


def _bot(config_path, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_TOKEN", "VK_POST_TOKEN")}
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config_path)],
        cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )


def test_terminal_mode_on_stdin(tmp_path, model_dir):
    config = write_config(tmp_path, bot_config(tmp_path, model_dir))
    lines = [
        "/help", "/bugurt", "/bugurt ПРИШЕЛ НА ПАРУ", "/status", "/schedule 0 99 * * *",
        "/schedule 0 12 * * *", "/pause", "/post", "/frobnicate", "hello", "",
    ]
    proc = _bot(config, stdin=subprocess.PIPE)
    out, err = proc.communicate("\n".join(lines) + "\n", timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("Neurobugurt terminal chat")
    assert "Admin commands" in out  # every terminal line comes from an admin
    posts = [block for block in out.split("\n\n") if block.endswith("#neurobugurt")]
    assert len(posts) == 2 and posts[1].startswith("ПРИШЕЛ НА ПАРУ")
    assert f"Model: {model_dir}" in out and "Outbox: 0 pending, 0 sent, 0 failed" in out
    assert "Can't use '0 99 * * *' as a schedule: hour field '99'" in out
    assert "Schedule set: 0 12 * * * (UTC), next" in out
    assert "Scheduled posting paused" in out
    assert "Nothing to publish to" in out
    assert "I don't know /frobnicate" in out and "I answer commands" in out
    assert "Traceback" not in err


def test_terminal_mode_does_not_import_python_telegram_bot():
    code = "import bot.terminal, sys; assert 'telegram' not in sys.modules, 'telegram imported'"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_health_reads_the_heartbeat_of_the_running_bot(tmp_path, model_dir):
    config = write_config(tmp_path, bot_config(tmp_path, model_dir))

    def health() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bot", "--health", "--config", str(config)],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )

    before = health()
    assert before.returncode == 1 and "last heartbeat was never" in before.stderr
    proc = _bot(config, stdin=subprocess.PIPE)
    proc.communicate("/help\n", timeout=60)  # start-up sweeps the outbox: the first heartbeat
    after = health()
    assert after.returncode == 0 and after.stdout.startswith("healthy"), after.stderr


def test_refused_token_is_one_line_without_the_token(tmp_path, model_dir):
    server = FakeTelegram(token="999:REAL-SECRET-TOKEN").start()
    try:
        raw = bot_config(tmp_path, model_dir, server)
        raw["telegram"]["token"] = "123456:WRONG-SECRET-TOKEN"  # the server answers 401
        proc = _bot(write_config(tmp_path, raw))
        out, err = proc.communicate(timeout=60)
    finally:
        server.stop()
    assert proc.returncode == 2
    assert err.strip().splitlines()[-1] == (
        "error: Telegram refused telegram.token: check TELEGRAM_TOKEN (from @BotFather)"
    )
    assert "WRONG-SECRET-TOKEN" not in out + err and "Traceback" not in err


def _wait(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_crash_with_a_post_in_flight_then_restart_sends_it_once(tmp_path, model_dir):
    telegram = FakeTelegram().start()
    vk = FakeVk().start()
    config = write_config(tmp_path, bot_config(tmp_path, model_dir, telegram, vk))
    db_path = tmp_path / "data" / "bot.sqlite3"
    try:
        first = _bot(config)
        telegram.wait_for("setMyCommands", timeout=60)
        telegram.fail("sendMessage", hang=True)  # the channel post never gets its answer
        telegram.send_text("/post", user_id=ADMIN)
        telegram.wait_for("sendMessage", lambda p: p["chat_id"] == "@neurobugurt_test")
        first.send_signal(signal.SIGKILL)  # crash: stored as pending, not marked sent
        first.communicate(timeout=30)

        with sqlite3.connect(db_path) as conn:
            (text,) = conn.execute("SELECT text FROM outbox").fetchone()
            pending = conn.execute("SELECT target, status FROM deliveries ORDER BY target")
            assert pending.fetchall() == [("telegram", "pending"), ("vk", "pending")]
        assert telegram.messages_in(CHANNEL_ID) == [] and vk.published == []

        second = _bot(config)
        _wait(lambda: telegram.messages_in(CHANNEL_ID) and vk.published)
        time.sleep(0.5)  # a second delivery would show up by now
        second.send_signal(signal.SIGTERM)
        out, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
    finally:
        telegram.stop()
        vk.stop()
    assert [m["text"] for m in telegram.messages_in(CHANNEL_ID)] == [text]
    assert [p["message"] for p in vk.published] == [text]
    with sqlite3.connect(db_path) as conn:
        sent = conn.execute("SELECT target, status FROM deliveries ORDER BY target").fetchall()
    assert sent == [("telegram", "sent"), ("vk", "sent")]
    assert telegram.token not in err and "Traceback" not in err
