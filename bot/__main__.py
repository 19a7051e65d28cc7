"""`python -m bot [--config PATH]`: serve Telegram, or a terminal chat when no token is set.

`python -m bot export-judgements --out FILE.jsonl` writes every judgement out (bot/judgements.py);
`python -m bot import-judgements --in FILE.jsonl` appends a file of them (a blind reading's);
`python -m bot fit-ranker` fits the ranker of review candidates on them (bot/ranker.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot import judgements
from bot.settings import RuntimeSettings
from common import db
from common.cli import UserError, run_cli
from common.config import Config, load_config
from common.log import setup_logging


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Neurobugurt bot: Telegram chat and scheduled posting; "
        "a terminal chat on stdin/stdout when telegram.token is empty.",
    )
    parser.add_argument("command", nargs="?",
                        choices=("export-judgements", "import-judgements", "fit-ranker"),
                        help="instead of serving: write out or append the judgements, or fit"
                        " the ranker of review candidates on them")
    parser.add_argument("--config", default="config.yaml", help="config file (config.yaml)")
    parser.add_argument("--out", type=Path, help="export-judgements: the JSON-lines file")
    parser.add_argument("--in", dest="source", type=Path,
                        help="import-judgements: the JSON-lines file")
    parser.add_argument(
        "--health",
        action="store_true",
        help="exit 0 if a bot using this config swept its outbox lately (container HEALTHCHECK)",
    )
    args = parser.parse_args()
    if args.health:
        return health(load_config(args.config))
    if args.command == "fit-ranker":
        return fit_ranker(load_config(args.config))
    if args.command:
        return judgements_command(parser, args)
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


def judgements_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """export-judgements / import-judgements: one line saying how many."""
    path = args.out if args.command == "export-judgements" else args.source
    if path is None:
        parser.error(f"{args.command} needs {'--out' if args.out is None else '--in'} FILE.jsonl")
    export = args.command == "export-judgements"
    database = db.open_storage(load_config(args.config).storage)
    try:
        count = (judgements.export if export else judgements.import_file)(database, path)
    except OSError as exc:
        raise UserError(f"cannot {'write' if export else 'read'} {path}:"
                        f" {exc.strerror or exc}") from None
    finally:
        database.close()
    print(f"wrote {count} judgements to {path}" if export
          else f"added {count} judgements from {path}")
    return 0


def fit_ranker(config: Config) -> int:
    """Fit the ranker for the served model on the stored judgements; say what ranks now."""
    from bot.i18n import texts_for
    from bot.ranker import Ranking  # torch and the generator: not for --health

    database = db.open_storage(config.storage)
    try:
        served = RuntimeSettings(database).served_model(config.generator.model_dir)
        print(Ranking(lambda: served).refit(database)(texts_for(config.bot.language)))
    finally:
        database.close()
    return 0


def health(config: Config, stale_after: float = 120.0) -> int:
    """0 when the running bot's periodic sweep wrote its heartbeat within `stale_after` s."""
    database = db.open_storage(config.storage)
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
