"""A freshly started bot's first minute, with and without its model's starter feed.

    .venv/bin/python bench/first_minute.py [--model generator/bundled] [--users 8] [--after 45]

The real PTB Application (bench_serving's set-up, fake Telegram server, default pool of 20 a
temperature) starts on an empty database; `--after` seconds later `--users` people send
`/bugurt` at once. Reported for the model as it is and for a copy without `starter.txt`, one
after the other in one run: seconds until `--users` posts were ready (polled every 0.2 s, none:
not within the run), and the users' reply times (median, slowest).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bench.bench_serving import fake_telegram, ready_posts, serving_config  # noqa: E402
from common.config import BUNDLED_MODEL_DIR  # noqa: E402
from generator.modeldir import STARTER_FILE  # noqa: E402
from harness.pipeline import AppThread  # noqa: E402
from harness.report import machine  # noqa: E402


def first_minute(folder: Path, model: Path, users: int, after: float) -> dict:
    with fake_telegram() as telegram:
        began = time.monotonic()
        with AppThread(serving_config(folder, model, telegram, size=20)):
            ready_at = None
            while time.monotonic() - began < after:
                if ready_at is None and ready_posts(folder) >= users:
                    ready_at = time.monotonic() - began
                time.sleep(0.2)
            ids = list(range(7000, 7000 + users))
            start = len(telegram.calls)
            sent = time.monotonic()
            telegram.send_burst([("/bugurt", user) for user in ids])
            seconds = [telegram.wait_for("sendMessage", lambda p, u=user: p["chat_id"] == u,
                                         300, start).at - sent for user in ids]
    return {"ready": ready_at, "median": statistics.median(seconds), "max": max(seconds)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=BUNDLED_MODEL_DIR)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--after", type=float, default=45.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"| model | {args.users} posts ready after | /bugurt of {args.users} users at "
          f"{args.after:g} s: median | slowest |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        bare = shutil.copytree(args.model, Path(tmp) / "bare")
        (bare / STARTER_FILE).unlink(missing_ok=True)
        for name, model in (("with its starter feed", args.model), ("without", bare)):
            found = first_minute(Path(tmp) / name, model, args.users, args.after)
            ready = f"{found['ready']:.1f} s" if found["ready"] is not None else \
                f"not within {args.after:g} s"
            print(f"| {name} | {ready} | {found['median']:.3f} s | {found['max']:.3f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
