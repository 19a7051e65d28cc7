"""`python -m scraper [--config PATH] [--full]`: VK wall → SQLite → cleaned corpus."""

from __future__ import annotations

import argparse

from common.cli import run_cli
from common.config import load_config
from common.log import setup_logging
from scraper.run import scrape


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scraper",
        description="Fetch the new posts of vk.community into storage.db and rewrite corpus.path.",
    )
    parser.add_argument("--config", default="config.yaml", help="config file (config.yaml)")
    parser.add_argument(
        "--full", action="store_true", help="re-read the whole wall (updates edited posts)"
    )
    args = parser.parse_args()
    setup_logging()
    config = load_config(args.config)
    result = scrape(config, full=args.full)
    print(result.summary())
    return 0


if __name__ == "__main__":
    run_cli(main)
