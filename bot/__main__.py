"""`python -m bot [--config PATH]`: serve Telegram, or a terminal chat when no token is set."""

from __future__ import annotations

import argparse
import asyncio
import logging

from common.cli import run_cli
from common.config import load_config
from common.log import setup_logging


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Neurobugurt bot: Telegram chat and scheduled posting; "
        "a terminal chat on stdin/stdout when telegram.token is empty.",
    )
    parser.add_argument("--config", default="config.yaml", help="config file (config.yaml)")
    args = parser.parse_args()
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


if __name__ == "__main__":
    run_cli(main)
