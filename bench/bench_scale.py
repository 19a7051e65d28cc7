"""`/bugurt` throughput and latency of one or two webhook bot processes, SQLite vs PostgreSQL;
writes the `scale` section of BENCHMARKS.md.

    .venv/bin/python bench/bench_scale.py [--model DIR] [--requests 500] [--users 100]

Each setup is real `python -m bot` processes in webhook mode against the fake Bot API, which
POSTs a burst of `--requests` `/bugurt` from `--users` users (queued at once, up to 40 in
flight as Telegram's default `max_connections`) to the processes in turn. The shared pool is
filled beforehand, so what is measured is serving (webhook, database, reply), not sampling.
Latency: from the burst's start to each reply reaching the fake server; throughput: replies
over the time to the last one. Needs the PostgreSQL server of harness/pg.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from common.config import BUNDLED_MODEL_DIR  # noqa: E402
from common.db import storage_url  # noqa: E402
from harness import pg  # noqa: E402
from harness.fakes.webhook import WebhookTelegram  # noqa: E402
from harness.peers import prefill, start_webhook_bot  # noqa: E402
from harness.pipeline import bot_config, wait_until  # noqa: E402
from harness.report import machine, write_section  # noqa: E402

READING = """
Reading: absolute rates move with the machine's load (see the load average); the order is what
to read. One process on PostgreSQL is a
little slower than on SQLite (each `/bugurt` makes a few round trips to the server instead of
file reads); two processes on PostgreSQL answer the burst fastest, the second process adding
CPU for PTB's update handling and the replies. Each process's `AIORateLimiter` holds its replies
to 30 a second (Telegram's limit for a bot); Telegram counts that limit per bot, not per
process, so N processes may send up to N×30 a second and get flood-control answers, which the
limiter waits out and retries. Every update also passes through the inbox (two short
transactions: recorded before it is acknowledged, marked done after), which a kill -9 needs.
"""


def run_burst(folder: Path, model: Path, url: str, processes: int, requests: int,
              users: int) -> dict:
    """One setup: `processes` bots on `url`, one burst; throughput, median and p99 latency."""
    prefill(url, str(model), per_temperature=-(-requests // 3) + 1)
    server = WebhookTelegram(senders=40).start()
    bots = []
    try:
        for i in range(processes):
            raw = bot_config(folder / f"bot{i}", model, server, channel=False,
                             cooldown_seconds=0, candidates=16)
            raw["vk"]["post_token"] = ""
            raw["storage"]["url"] = url
            raw["pool"] = {"size": 1, "channel_candidates": 0, "channel_searches": 0}
            bot, hook = start_webhook_bot(folder / f"bot{i}", raw, server)
            bots.append(bot)
            server.targets.append(hook)
        ids = [10_000 + i % users for i in range(requests)]
        start = len(server.calls)
        began = time.monotonic()
        for user in ids:
            server.send_command("/bugurt", user_id=user)
        wait_until(lambda: len(_replies(server, start)) >= requests, 600, "every reply", 0.05)
        seconds = sorted(at - began for at in _replies(server, start))
    finally:
        for bot in bots:
            bot.stop()
        server.stop()
    return {"throughput": requests / seconds[-1], "median": statistics.median(seconds),
            "p99": seconds[max(0, round(0.99 * len(seconds)) - 1)]}


def _replies(server: WebhookTelegram, start: int) -> list[float]:
    return [c.at for c in server.calls[start:]
            if c.method == "sendMessage" and c.params["chat_id"] >= 10_000]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR))
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--users", type=int, default=100)
    args = parser.parse_args()
    model, n, users = Path(args.model), args.requests, args.users
    pg.require_or_exit()
    where = machine()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results["one process, SQLite"] = run_burst(
            root / "lite", model, storage_url(str(root / "lite.sqlite3")), 1, n, users)
        for processes, name in ((1, "one process, PostgreSQL"), (2, "two processes, PostgreSQL")):
            with pg.fresh_schema() as url:
                results[name] = run_burst(root / f"pg{processes}", model, url, processes, n,
                                          users)
    rows = "\n".join(f"| {name} | {r['throughput']:.0f} /s | {r['median']:.2f} s |"
                     f" {r['p99']:.2f} s |" for name, r in results.items())
    write_section("scale", f"""
## Several processes: `/bugurt` burst, SQLite vs PostgreSQL (webhook mode, fake Telegram server)

{where}. A burst of {n} `/bugurt` from {users} users, queued at once and POSTed to the bot
processes in turn, at most 40 in flight; answers come from a pool filled beforehand. Latency is
from the burst's start to each reply. Command:

    .venv/bin/python bench/bench_scale.py --requests {n} --users {users}

| setup | throughput | median latency | p99 latency |
|---|---:|---:|---:|
{rows}
{READING}""")


if __name__ == "__main__":
    main()
