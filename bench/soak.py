"""The long soak: `python -m bot` under mixed load for MINUTES, its resident memory sampled every
30 s; writes the `soak` section of BENCHMARKS.md and its curve, bench/soak_rss.png.

    nice -n 5 .venv/bin/python bench/soak.py [--minutes 30] [--model DIR]

The real bot process serves the bundled model against the fake Bot API (harness/fakes): a post
to the channel every minute (crontab `* * * * *`), and about every 2 s one of `/bugurt`,
`/bugurt TEXT`, an inline query, or a reader's vote on a channel post, from 200 readers. RSS is
the process's VmRSS; the target (issue 34): growth over the last 20 minutes of a 30-minute soak
at most 5 %, goal flat and under 600 MB.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common.config import BUNDLED_MODEL_DIR  # noqa: E402
from harness.fakes.telegram import CHANNEL_ID, FakeTelegram  # noqa: E402
from harness.pipeline import bot_config, start_bot, write_config  # noqa: E402
from harness.report import machine, write_section  # noqa: E402

SAMPLE_SECONDS = 30.0
PRIMES = ["КОГДА ПРИШЕЛ НА ПАРУ", "ТЫ", "БАТЯ", "СОСЕД ПО ПАРТЕ", "МАГАЗИН", "ЖДУ АВТОБУС"]
PNG = REPO / "bench" / "soak_rss.png"
RESULT = REPO / "bench" / "soak_rss.json"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def one_request(telegram: FakeTelegram, rng: random.Random) -> str:
    """Send one reader's request; its kind."""
    user = rng.randint(1000, 1199)
    kind = rng.choices(["bugurt", "text", "inline", "vote"], weights=[4, 2, 3, 1])[0]
    channel = telegram.messages_in(CHANNEL_ID)
    if kind == "vote" and channel:
        post = rng.choice(channel)
        buttons = post.get("reply_markup", {}).get("inline_keyboard", [[]])[0]
        if buttons:
            telegram.press_button(post, rng.choice(buttons)["callback_data"], user)
            return kind
        kind = "bugurt"
    if kind == "inline":
        telegram.send_inline(rng.choice(["", *PRIMES]), user)
    elif kind == "text":
        telegram.send_command(f"/bugurt {rng.choice(PRIMES)}", user_id=user)
    else:
        telegram.send_command("/bugurt", user_id=user)
    return kind


def soak(minutes: float, model: Path, folder: Path) -> dict:
    telegram = FakeTelegram().start()
    try:
        raw = bot_config(folder, model, telegram, cron="* * * * *", cooldown_seconds=0)
        raw["vk"]["post_token"] = ""
        bot = start_bot(folder, write_config(folder, raw), telegram)
        rng = random.Random(34)
        samples, counts = [], {}
        began = time.monotonic()
        next_sample = began
        while (now := time.monotonic()) < began + minutes * 60:
            if now >= next_sample:
                samples.append((now - began, rss_mb(bot.proc.pid)))
                RESULT.write_text(json.dumps({"samples": samples}))  # kept if the run dies
                next_sample += SAMPLE_SECONDS
            kind = one_request(telegram, rng)
            counts[kind] = counts.get(kind, 0) + 1
            time.sleep(rng.uniform(1.0, 3.0))
            assert bot.alive(), bot.stderr[-3000:]
        samples.append((time.monotonic() - began, rss_mb(bot.proc.pid)))
        answered = len([c for c in telegram.calls if c.method in (
            "sendMessage", "answerInlineQuery", "answerCallbackQuery")])
        posts = len(telegram.messages_in(CHANNEL_ID))
        stopping = time.monotonic()
        assert bot.stop(timeout=600) == 0, bot.stderr[-3000:]  # SIGTERM: the batch in flight ends
        stopped = time.monotonic() - stopping
    finally:
        telegram.stop()
    return {"samples": samples, "requests": counts, "answers": answered, "posts": posts,
            "stop_seconds": stopped}


def plot(samples: list[tuple[float, float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([t / 60 for t, _ in samples], [mb for _, mb in samples], marker=".")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS, MB")
    ax.set_title("python -m bot under mixed load: resident memory")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(result: dict, minutes: float, command: str, host: str) -> str:
    samples = result["samples"]
    last = [mb for t, mb in samples if t >= samples[-1][0] - 20 * 60]
    growth = 100 * (last[-1] - last[0]) / last[0]
    at = {m: next(mb for t, mb in samples if t >= m * 60 - 1) for m in (0, 5, 10)
          if samples[-1][0] >= m * 60}
    table = " | ".join(f"{m} min: {mb:.0f} MB" for m, mb in at.items())
    return f"""## Soak: resident memory over {minutes:g} minutes

    {command}

Machine: {host}. `python -m bot` (bundled model, SQLite, pool on) against the fake Bot API: a
channel post every minute and {sum(result['requests'].values())} requests
({', '.join(f'{n} {k}' for k, n in sorted(result['requests'].items()))}) from 200 readers, one
every 1-3 s; {result['answers']} answers, {result['posts']} channel posts; SIGTERM at the end
took {result['stop_seconds']:.0f} s. VmRSS every {SAMPLE_SECONDS:g} s:

{table} | end: {samples[-1][1]:.0f} MB, peak {max(mb for _, mb in samples):.0f} MB

Growth over the last 20 minutes: **{growth:+.1f} %** (target ≤ 5 %, goal flat under 600 MB).

![RSS over the soak](bench/soak_rss.png)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--model", type=Path, default=Path(BUNDLED_MODEL_DIR))
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    host = machine()
    with tempfile.TemporaryDirectory(prefix="soak-") as folder:
        result = soak(args.minutes, args.model, Path(folder))
    RESULT.write_text(json.dumps(result, indent=1))
    plot(result["samples"], PNG)
    body = report(result, args.minutes, "nice -n 5 .venv/bin/python bench/soak.py"
                  + (f" --minutes {args.minutes:g}" if args.minutes != 30 else ""), host)
    if args.no_write:
        print(body)
    else:
        write_section("soak", body)


if __name__ == "__main__":
    main()
