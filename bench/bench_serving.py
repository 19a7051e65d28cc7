"""Serving latency and load against the fake Telegram server, side by side in one run; writes the
`serving` section of BENCHMARKS.md.

    .venv/bin/python bench/bench_serving.py [--model DIR] [--requests 15] [--burst 50]

The real PTB Application (in a thread, as the tests run it) or the real `python -m bot` process
serves the bundled model. Compared: `/bugurt` from the pool vs today's on-demand path (pool off,
at most 8 waiting, what the bot did before the pool), `/bugurt TEXT`, the first `/bugurt` after a
restart (a fresh process), the pool worker's CPU share (the process's CPU time over wall time
while it fills the pool), and a burst of users sending `/bugurt` at once.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bot.i18n import texts_for  # noqa: E402
from common.config import BUNDLED_MODEL_DIR  # noqa: E402
from harness.fakes.telegram import FakeTelegram  # noqa: E402
from harness.pipeline import (  # noqa: E402
    AppThread,
    ask,
    bot_config,
    query,
    start_bot,
    wait_until,
    write_config,
)
from harness.report import machine, write_section  # noqa: E402

TODAY = {"size": 0, "channel_candidates": 0, "queue_limit": 8}  # the bot before the pool
DB = ("data", "neurobugurt.sqlite3")


@contextlib.contextmanager
def fake_telegram(first_update_id: int = 1) -> Iterator[FakeTelegram]:
    server = FakeTelegram(first_update_id=first_update_id).start()
    try:
        yield server
    finally:
        server.stop()


def serving_config(folder: Path, model: Path, telegram: FakeTelegram, env: bool = False,
                   **pool: object) -> dict:
    """A bot's config for these benchmarks: no channel, no cooldown, `pool` over its defaults."""
    raw = bot_config(folder, model, telegram, channel=False, env_secrets=env, cooldown_seconds=0,
                     candidates=16)
    raw["vk"]["post_token"] = ""
    raw["pool"] = {"channel_candidates": 0, **pool}
    return raw


def ready_posts(folder: Path) -> int:
    """Posts waiting in the pool of the bot whose folder this is."""
    return query(folder.joinpath(*DB), "SELECT COUNT(*) FROM pool WHERE used_at IS NULL")[0][0] \
        if folder.joinpath(*DB).exists() else 0


def _timed(telegram: FakeTelegram, text: str, user: int) -> float:
    began = time.perf_counter()
    reply = ask(telegram, text, user)
    assert reply.endswith("#neurobugurt"), reply
    return time.perf_counter() - began


def latencies(folder: Path, model: Path, n: int, pool: dict, prime: str = "") -> list[float]:
    """Seconds per sequential `/bugurt [prime]` from distinct users (the pool full first)."""
    with fake_telegram() as telegram, AppThread(serving_config(folder, model, telegram, **pool)):
        if pool.get("size"):
            wait_until(lambda: ready_posts(folder) >= n, 600, "a full pool", step=0.5)
        return [_timed(telegram, f"/bugurt {prime}".strip(), 1000 + i) for i in range(n)]


def burst(folder: Path, model: Path, users: int, pool: dict) -> dict:
    """`users` people send /bugurt at once: posts, refusals, median and slowest reply."""
    with fake_telegram() as telegram, AppThread(serving_config(folder, model, telegram, **pool)):
        if pool.get("size"):
            wait_until(lambda: ready_posts(folder) >= users, 900, "a full pool", step=0.5)
        ids = list(range(5000, 5000 + users))
        start = len(telegram.calls)
        began = time.monotonic()
        telegram.send_burst([("/bugurt", user) for user in ids])
        replies = {}
        for user in ids:
            call = telegram.wait_for("sendMessage", lambda p, u=user: p["chat_id"] == u, 300,
                                     start)
            replies[user] = (call.params["text"], call.at - began)
    posts = [s for text, s in replies.values() if text.endswith("#neurobugurt")]
    busy = sum(text == texts_for("en").t("busy") for text, _ in replies.values())
    return {"posts": len(posts), "busy": busy, "median": statistics.median(posts),
            "max": max(posts)}


def first_after_restart(folder: Path, model: Path, pool: dict) -> tuple[float, float]:
    """(seconds to the first /bugurt's reply once a fresh process is up, process start to up).
    The updates go on from where the folder's earlier run left them, as Telegram's do: the bot's
    inbox drops an update number it has already seen."""
    with fake_telegram(first_update_id=1_000_000) as telegram:
        config = write_config(folder, serving_config(folder, model, telegram, env=True, **pool))
        began = time.perf_counter()
        bot = start_bot(folder / "logs", config, telegram)
        up = time.perf_counter() - began
        try:
            return _timed(telegram, "/bugurt", 77), up
        finally:
            bot.stop()


def cpu_share(folder: Path, model: Path, share: float, seconds: float,
              idle_share: float) -> tuple[float, int]:
    """(the bot process's CPU seconds per wall second while its worker fills an empty pool,
    posts it made meanwhile)."""
    with fake_telegram() as telegram:
        config = write_config(folder, serving_config(folder, model, telegram, env=True, size=500,
                                              cpu_share=share, idle_share=idle_share))
        bot = start_bot(folder / "logs", config, telegram)
        try:
            wait_until(lambda: ready_posts(folder) >= 1, 120, "the first pooled post", step=0.1)
            before, began, posts = _cpu(bot.proc.pid), time.monotonic(), ready_posts(folder)
            time.sleep(seconds)
            used = _cpu(bot.proc.pid) - before
            return used / (time.monotonic() - began), ready_posts(folder) - posts
        finally:
            bot.stop()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, clock ticks of 1/100 s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(BUNDLED_MODEL_DIR))
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--cpu-seconds", type=float, default=20.0)
    args = parser.parse_args()
    model, n = Path(args.model), args.requests
    where = machine()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        full = {"size": max(n, 5), "cpu_share": 1.0}
        per_temperature = -(-args.burst // 3)  # bot.temperatures has three
        today = latencies(root / "today", model, n, TODAY)
        pooled = latencies(root / "pool", model, n, full)
        primed = latencies(root / "text", model, 5, full, prime="ПРИШЕЛ НА ПАРУ")
        restart_pool = first_after_restart(root / "pool", model, full)  # its pool is on disk
        restart_today = first_after_restart(root / "today2", model, TODAY)
        share, made = cpu_share(root / "cpu", model, 0.5, args.cpu_seconds, idle_share=0.5)
        idle, idle_made = cpu_share(root / "idle", model, 0.5, args.cpu_seconds, idle_share=1.0)
        bursts = {
            "today (no pool, 8 waiting at most)": burst(root / "b1", model, args.burst, TODAY),
            f"pool of {3 * per_temperature} ({per_temperature} per temperature)":
                burst(root / "b2", model, args.burst, {"size": per_temperature, "cpu_share": 1}),
            "pool empty, queue of 64": burst(root / "b3", model, args.burst,
                                             {"size": 0, "queue_limit": 64}),
        }

    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.3f} s (max {max(values):.3f})"

    first = [f"{r[0]:.3f} s" for r in (restart_today, restart_pool)]
    up = [f"{r[1]:.1f} s" for r in (restart_today, restart_pool)]
    rows = "\n".join(
        f"| {name} | {b['posts']} | {b['busy']} | {b['median']:.2f} s | {b['max']:.2f} s |"
        for name, b in bursts.items()
    )
    write_section("serving", f"""
## Serving: `/bugurt` from the pool vs on demand (fake Telegram server, {model.name} model)

{where}. Real PTB Application against the fake Bot API; `bot.candidates: 16`; each row is
measured in this one run, side by side. Command:

    .venv/bin/python bench/bench_serving.py --requests {n} --burst {args.burst}

| request | today (on demand) | with the pool | target |
|---|---:|---:|---:|
| `/bugurt`, median of {n} | {med(today)} | {med(pooled)} | ≤ 0.1 s |
| `/bugurt ПРИШЕЛ НА ПАРУ`, median of 5 | – | {med(primed)} | ≤ 1.5 s |
| first `/bugurt` after a restart (fresh process) | {first[0]} | {first[1]} | ≤ 0.5 s |
| process start until it answers (getMe, menu) | {up[0]} | {up[1]} | – |

Pool worker at `pool.cpu_share: 0.5` (`idle_share` 0.5 too): the whole bot process used
{share:.2f} CPU seconds per second over {args.cpu_seconds:g} s while its worker filled an empty
pool ({made} posts made); with the default `idle_share` 1.0, on this otherwise idle machine,
{idle:.2f} ({idle_made} posts made).

Burst: {args.burst} users send `/bugurt` at once (one getUpdates batch).

| setting | posts | "busy" | median reply | slowest reply |
|---|---:|---:|---:|---:|
{rows}
""")


if __name__ == "__main__":
    main()
