"""`python -m bot [--config PATH]`: serve Telegram, or a terminal chat when no token is set."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot.settings import RuntimeSettings
from common import db
from common.cli import run_cli
from common.config import Config, load_config
from common.log import setup_logging


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Neurobugurt bot: Telegram chat and scheduled posting; "
        "a terminal chat on stdin/stdout when telegram.token is empty.",
    )
    parser.add_argument("--config", default="config.yaml", help="config file (config.yaml)")
    parser.add_argument(
        "--health",
        action="store_true",
        help="exit 0 if a bot using this config swept its outbox lately (container HEALTHCHECK)",
    )
    args = parser.parse_args()
    if args.health:
        return health(load_config(args.config))
    setup_logging()
    # APScheduler logs every job run (the outbox sweep runs every few seconds) at INFO.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    config = load_config(args.config)
    if config.telegram.token:
        from bot.app import run_telegram

        run_telegram(config, args.config)
    else:
        from bot.terminal import run_terminal

        asyncio.run(run_terminal(config, args.config))
    return 0


def health(config: Config, stale_after: float = 120.0) -> int:
    """0 when the running bot's periodic sweep wrote its heartbeat within `stale_after` s."""
    database = db.open_database(db.storage_url(config.storage.db, config.storage.url))
    try:
        age = RuntimeSettings(database).seconds_since_beat()
    finally:
        database.close()
    if age is None or age > stale_after:
        seen = "never" if age is None else f"{age:.0f} s ago"
        print(f"unhealthy: the bot's last heartbeat was {seen}", file=sys.stderr)
        return 1
    print(f"healthy: heartbeat {age:.0f} s ago")
    return 0


if __name__ == "__main__":
    run_cli(main)
