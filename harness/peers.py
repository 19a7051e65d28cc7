"""Bot processes in webhook mode sharing one database, for the tests and bench/bench_scale.py:
start one on a free port, and fill the shared pool so that every answer is a known post."""

from __future__ import annotations

import socket
from pathlib import Path

from bot.pool_store import PoolStore
from common.db import open_database
from generator.sample import Candidate
from harness.fakes.webhook import WebhookTelegram
from harness.pipeline import Child, bot_config, secrets, wait_until, write_config

SECRET = "webhook-SECRET_42"
TEMPERATURES = (0.4, 0.45, 0.5)  # bot.temperatures by default


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_webhook_bot(folder: Path, raw: dict, telegram: WebhookTelegram) -> tuple[Child, str]:
    """A bot process (config `raw`) serving its webhook on a free port, the token and secret
    from its environment; (the process, its webhook URL) once it listens."""
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


def start_webhook_peers(folder: Path, model_dir: Path, telegram: WebhookTelegram, url: str,
                        names: tuple[str, ...]) -> list[Child]:
    """One webhook bot process a name, all on the database at `url` and one models folder, each
    serving the pool a test filled (one post a temperature drawn ahead, no channel candidates:
    the channel post is written when due); Telegram delivers to every one (`targets`)."""
    bots, hooks = [], []
    for name in names:
        raw = bot_config(folder / name, model_dir, telegram, cooldown_seconds=0)
        raw["storage"].update(url=url, models_dir=str(folder / "models"))
        raw["pool"] = {"size": 1, "channel_candidates": 0, "channel_searches": 0}
        bot, hook = start_webhook_bot(folder / name, raw, telegram)
        bots.append(bot)
        hooks.append(hook)
    telegram.targets = hooks
    return bots


def prefill(url: str, model_dir: str, per_temperature: int) -> set[str]:
    """Ready posts in the shared pool at each default temperature, their texts. While no
    temperature falls below `pool.size` the workers draw nothing and every answer is one of
    these: give at least as many as the test asks for (the bandit may pick one arm for all)."""
    database = open_database(url)
    texts = set()
    for t in TEMPERATURES:
        batch = [Candidate(f"ГОТОВЫЙ {t} {i}\n@\nПОСТ\n#neurobugurt", -1.0)
                 for i in range(per_temperature)]
        PoolStore(database).add(model_dir, "reply", t, batch, [-1.0] * len(batch))
        texts |= {c.text for c in batch}
    database.close()
    return texts
