"""A disk that refuses the retrained model's files: /retrain ends with one clear message and the
served model stays.

The refusal is a file-size limit (RLIMIT_FSIZE) set on the running bot process, which its
trainer child inherits: each write past the limit fails with EFBIG, as a full disk fails with
ENOSPC. The bot's database is the PostgreSQL server, so only the model files meet the limit.
"""

from __future__ import annotations

import resource

import pytest

from harness import pg
from harness.fakes.telegram import FakeTelegram
from harness.pipeline import (
    ADMIN,
    READER,
    ask,
    bot_config,
    start_bot,
    wait_until,
    write_config,
    write_tiny_corpus,
)

pytestmark = pytest.mark.slow  # a real bot process and its trainer

LIMIT = 100_000  # bytes: the tiny model's weights (61 kB) fit, its checkpoint (194 kB) does not


def _retrain_messages(telegram: FakeTelegram, start: int) -> list[str]:
    return [str(c.params.get("text")) for c in telegram.calls[start:]
            if c.method in ("sendMessage", "editMessageText")
            and str(c.params.get("text")).startswith(("Retrain", "Samples"))]


def test_a_retrain_on_a_full_disk_says_so_once_and_the_served_model_stays(tmp_path, bot_model,
                                                                            telegram):
    with pg.fresh_schema() as url:
        write_tiny_corpus(tmp_path / "data" / "corpus.txt")
        raw = bot_config(tmp_path, bot_model, telegram, channel=False, retrain_minutes=1,
                         cooldown_seconds=0)
        raw["storage"]["url"] = url
        raw["pool"] = {"size": 0, "channel_candidates": 0}
        bot = start_bot(tmp_path, write_config(tmp_path, raw), telegram)
        resource.prlimit(bot.proc.pid, resource.RLIMIT_FSIZE, (LIMIT, LIMIT))
        start = len(telegram.calls)
        assert ask(telegram, "/retrain", ADMIN) == "Retrain: starting…"
        final = wait_until(lambda: [t for t in _retrain_messages(telegram, start)
                                    if t.startswith(("Retrain done", "Retrain failed"))], 180,
                           "the retrain's end")[0]
        assert final.startswith(
            "Retrain failed at train: python -m generator train: error: cannot write "), final
        assert "File too large: free disk space" in final
        assert final.endswith("\nThe served model is unchanged."), final
        status = ask(telegram, "/status", ADMIN)
        assert f"Model: {bot_model} " in status and "Retrain: failed at train" in status
        assert ask(telegram, "/bugurt", READER).endswith("#neurobugurt")  # still served
        messages = _retrain_messages(telegram, start)
        assert [t for t in messages if t.startswith("Retrain failed")] == [final]  # once
        assert not any(t.startswith(("Retrain done", "Samples")) for t in messages)
        models = tmp_path / "data" / "models"
        assert list(models.rglob("*.tmp")) == []  # no half-written file left behind
        assert bot.stop() == 0, bot.stderr[-3000:]
        assert "Traceback" not in bot.stderr, bot.stderr[-3000:]
