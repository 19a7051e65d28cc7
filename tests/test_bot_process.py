"""`python -m bot` as a real process: terminal mode on stdin, the health check, and one-line
errors without tokens in them. A crash with a post in flight: test_faults.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.fakes.telegram import FakeTelegram
from harness.paths import REPO
from harness.pipeline import bot_config, write_config

pytestmark = pytest.mark.slow


def _bot(config_path, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_TOKEN", "VK_POST_TOKEN")}
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config_path)],
        cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )


def test_terminal_mode_on_stdin(tmp_path, bot_model):
    config = write_config(tmp_path, bot_config(tmp_path, bot_model))
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
    assert f"Model: {bot_model}" in out and "Outbox: 0 pending, 0 sent, 0 failed" in out
    assert "Can't use '0 99 * * *' as a schedule: the hour field '99' is not valid" in out
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


def test_health_reads_the_heartbeat_of_the_running_bot(tmp_path, bot_model):
    config = write_config(tmp_path, bot_config(tmp_path, bot_model))

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


def test_refused_token_is_one_line_without_the_token(tmp_path, bot_model):
    server = FakeTelegram(token="999:REAL-SECRET-TOKEN").start()
    try:
        raw = bot_config(tmp_path, bot_model, server)
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


def test_bad_schedule_value_stops_the_bot_with_one_line(tmp_path, bot_model):
    """The process end of test_bot_schedule's table: a UserError becomes one `error:` line."""
    raw = bot_config(tmp_path, bot_model)
    raw["schedule"]["timezone"] = "Mars/Olympus"
    proc = _bot(write_config(tmp_path, raw), stdin=subprocess.DEVNULL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: "), err
