"""How fast the pool worker refills: CPU seconds of one ready reply as the default config makes
it (the worker's own draw: with `pool.search: lines` the best of `pool.reply_searches` searched
posts), and what that makes the time to refill a burst at a `pool.cpu_share`.

    .venv/bin/python bench/pool_refill.py [--replies 8] [--burst 50] [--model DIR]
    .venv/bin/python bench/pool_refill.py --live [--burst 50] [--model DIR]

`--live` measures instead: the real worker thread (default config: `pool.cpu_share` 0.5 and
`pool.idle_share`) fills an empty pool of the model without its starter feed, and the wall time
until `--burst` posts are ready is printed with the CPU the others on the machine used meanwhile
(the idle share applies only while they leave a core and a half idle).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bot.idle_cpu import IdleMeter  # noqa: E402
from bot.model_slot import ModelSlot  # noqa: E402
from bot.pool import Pool  # noqa: E402
from bot.settings import RuntimeSettings  # noqa: E402
from common.config import BUNDLED_MODEL_DIR, Config  # noqa: E402
from common.db import open_database, storage_url  # noqa: E402
from generator.modeldir import STARTER_FILE  # noqa: E402
from harness.report import machine  # noqa: E402

SHARES = (0.5, 0.75, 1.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--replies", type=int, default=8)
    p.add_argument("--burst", type=int, default=50)
    p.add_argument("--model", default=str(BUNDLED_MODEL_DIR))
    p.add_argument("--live", action="store_true", help="time the real worker filling the pool")
    args = p.parse_args()
    if args.live:
        return live(args.model, args.burst)
    config = Config()
    with tempfile.TemporaryDirectory() as tmp:
        database = open_database(storage_url(str(Path(tmp) / "pool.sqlite3")))
        slot = ModelSlot(RuntimeSettings(database), args.model, config.bot.candidates)
        pool = Pool(database, slot, config)
        rng, seconds = random.Random(1), []
        for k in range(args.replies):
            temperature = config.bot.temperatures[k % len(config.bot.temperatures)]
            began = time.thread_time()
            pool._draw(slot.generator, "reply", temperature, rng)  # noqa: SLF001 (the worker's draw)
            seconds.append(time.thread_time() - began)
        slot.close()
        database.close()
    each = statistics.median(seconds)
    made = (f"best of {config.pool.reply_searches} searches" if config.pool.search == "lines"
            else f"best of {config.pool.reply_candidates} whole posts")
    print(f"one reply ({made}): median {each:.2f} CPU s "
          f"(min {min(seconds):.2f}, max {max(seconds):.2f}) over {args.replies}")
    for share in SHARES:
        print(f"cpu_share {share:g}: {share / each * 60:.1f} replies a minute; "
              f"a burst of {args.burst} refilled in {args.burst * each / share:.0f} s")


def live(model: str, burst: int) -> None:
    """Wall seconds until the worker has `burst` ready replies in an empty pool."""
    config = Config()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "model"  # without starter.txt: the worker makes every post
        shutil.copytree(model, copy, ignore=shutil.ignore_patterns(STARTER_FILE))
        database = open_database(storage_url(str(Path(tmp) / "pool.sqlite3")))
        slot = ModelSlot(RuntimeSettings(database), str(copy), config.bot.candidates)
        pool = Pool(database, slot, config)
        meter = IdleMeter()
        print(f"machine: {machine()}; pool.cpu_share {config.pool.cpu_share:g}, "
              f"pool.idle_share {config.pool.idle_share:g}, {burst} posts to make")
        began, cpu = time.monotonic(), time.process_time()
        pool.start()
        made = 0
        while made < burst:
            time.sleep(1.0)
            made = sum(pool.store.ready(str(copy)).values())
        seconds = time.monotonic() - began
        others = meter.others_cores()
        pool.close()
        slot.close()
        database.close()
    rest = "unknown" if others is None else f"{others:.2f} cores busy"
    print(f"{burst} ready posts in {seconds:.0f} s ({(time.process_time() - cpu) / seconds:.2f}"
          f" of a core for this process; the rest of the machine kept {rest})")


if __name__ == "__main__":
    main()
