"""The pool across real `python -m bot` processes: it survives kill -9 and a restart without
handing a post out twice, and the worker stops cleanly on SIGTERM."""

from __future__ import annotations

import pytest

from harness.pipeline import (
    READER,
    ask,
    bot_config,
    integrity,
    query,
    start_bot,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.slow  # real processes, killed and restarted


def test_pool_survives_kill_9_and_the_worker_stops_on_sigterm(tmp_path, bot_model, telegram):
    raw = bot_config(tmp_path, bot_model, telegram, channel=False, env_secrets=True,
                     cooldown_seconds=0, temperatures=[0.85])
    raw["vk"]["post_token"] = ""  # no VK target
    raw["pool"] = {"size": 4, "cpu_share": 1.0, "channel_candidates": 0}
    config = write_config(tmp_path, raw)
    database = tmp_path / "data" / "neurobugurt.sqlite3"

    def ready() -> list[str]:
        rows = query(database, "SELECT text FROM pool WHERE used_at IS NULL ORDER BY id")
        return [text for (text,) in rows]

    bot = start_bot(tmp_path / "first", config, telegram)
    wait_until(lambda: len(ready()) >= 4, 120, "a full pool")
    handed = [ask(telegram, "/bugurt", READER)]
    left = wait_until(lambda: len(rows := ready()) >= 4 and rows, 60, "the pool refilled")
    bot.kill()  # kill -9: no shutdown at all
    assert integrity(database) == "ok" and ready() == left  # every ready post survived

    bot = start_bot(tmp_path / "second", config, telegram)
    handed += [ask(telegram, "/bugurt", READER) for _ in range(3)]
    assert handed[1:] == left[:3]  # the kept posts, in order, each handed out once
    assert len(set(handed)) == 4
    used = query(database, "SELECT text FROM pool WHERE used_at IS NOT NULL ORDER BY id")
    assert [text for (text,) in used] == handed

    assert bot.stop(timeout=30) == 0  # SIGTERM, as `docker stop`
    assert "pool worker stopped" in bot.stderr and "Traceback" not in bot.stderr
    assert integrity(database) == "ok"
