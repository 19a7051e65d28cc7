"""Feeds of the product under variants of its rules, and how much each repeats itself and copies.

    .venv/bin/python bench/feed_bench.py make --out runs/feeds/new.txt -n 30 --seed 1 \
        [--searches 64] [--temperatures 0.4,0.45,0.5] [--rule memory=0 --rule opening_window=0]
    .venv/bin/python bench/feed_bench.py stats --corpus data/bugurt/corpus.txt FILE...
    .venv/bin/python bench/feed_bench.py plot --sheet bench/readings/DIR --out PNG LABEL=FILE...

`make` writes n consecutive posts of `generator.feed.feed` (what `python -m generator feed`
prints) with FeedRules changed by each --rule; `--rule memory=0 --rule opening_window=0 --rule
copy_words=999` is the pick before the feed's rules. `stats` prints, for each file of posts (the
sample format), as a Markdown table: lines also found in another post of the file, pairs of
posts sharing two lines or more, lines copied verbatim from the corpus's training split, the
share of posts opening with "ТЫ", mean lines a post, and the same for windows of the validation
split's real posts of the file's size (median and 90th percentile over every window). `plot`
draws the trade-off: each feed a point, its readers' mean coherence (from the sheet's key and
every `ratings*.jsonl` in it, the file's LABEL being its source there) against the share of its
lines found in another post of the feed, and its humour against the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from common.corpus import read_split  # noqa: E402
from generator import feed  # noqa: E402
from generator.feed import FeedRules  # noqa: E402
from generator.sample import Generator  # noqa: E402
from harness.report import machine  # noqa: E402


def make(args) -> int:
    rules = FeedRules()
    for rule in args.rule:
        key, _, value = rule.partition("=")
        rules = dataclasses.replace(rules, **{key: int(value)})
    gen = Generator.load(args.model)
    temperatures = tuple(float(t) for t in args.temperatures.split(","))
    began = time.process_time()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    posts = []
    with open(args.out, "w", encoding="utf-8") as out:  # each post as it comes
        for post in feed.feed(gen, args.n, args.searches, temperatures, rules, args.seed):
            out.write(post + "\n\n")
            out.flush()
            posts.append(post)
    seconds = time.process_time() - began
    print(f"{args.out}: {len(posts)} posts, {rules}, best of {args.searches}, "
          f"{seconds / max(1, len(posts)):.1f} CPU s a post on {machine()}")
    return 0


def measure(posts: list[list[str]], corpus_lines: set[str]) -> dict[str, float]:
    """Repetition and copying of posts given as their text lines."""
    lines = [line for post in posts for line in post]
    in_posts = Counter(line for post in posts for line in set(post))
    pairs = sum(len(set(a) & set(b)) >= 2 for i, a in enumerate(posts) for b in posts[i + 1:])
    return {"shared": sum(in_posts[line] > 1 for line in lines) / len(lines),
            "pairs": pairs,
            "copied": sum(line in corpus_lines for line in lines) / len(lines),
            "ty": sum(feed.first_word(post[0]) == "ТЫ" for post in posts) / len(posts),
            "lines": len(lines) / len(posts)}


def stats(args) -> int:
    train, val, _ = read_split(Path(args.corpus))
    corpus_lines = {line for post in train for line in feed.lines_of(post)}
    print("| posts | n | lines also in another post | pairs sharing ≥ 2 lines | lines copied "
          "from the corpus | open with ТЫ | lines a post |\n|---|---:|---:|---:|---:|---:|---:|")
    sizes = set()
    for name in args.files:
        text = Path(name).read_text(encoding="utf-8")
        posts = [feed.lines_of(p) for p in text.split("\n\n") if p.strip()]
        sizes.add(len(posts))
        m = measure(posts, corpus_lines)
        print(f"| {Path(name).stem} | {len(posts)} | {m['shared']:.1%} | {m['pairs']} | "
              f"{m['copied']:.1%} | {m['ty']:.0%} | {m['lines']:.1f} |")
    real = [feed.lines_of(p) for p in val]
    for size in sorted(sizes):
        windows = [measure(real[i : i + size], corpus_lines) for i in range(len(real) - size)]
        for q, name in ((0.5, "median"), (0.9, "p90")):
            cut = {k: statistics.quantiles([w[k] for w in windows], n=100)[int(q * 100) - 1]
                   if q < 1 else 0 for k in windows[0]}
            print(f"| real validation posts, {name} of windows | {size} | {cut['shared']:.1%} | "
                  f"{cut['pairs']:g} | {cut['copied']:.1%} | {cut['ty']:.0%} | "
                  f"{cut['lines']:.1f} |")
    return 0


def plot(args) -> int:
    import matplotlib  # noqa: PLC0415 - a development dependency of this command only

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # noqa: PLC0415

    from tools.reading import read_ratings  # noqa: PLC0415

    train, _, _ = read_split(Path(args.corpus))
    corpus_lines = {line for post in train for line in feed.lines_of(post)}
    sheet = Path(args.sheet)
    rated = [r for f in sorted(sheet.glob("ratings*.jsonl")) for r in read_ratings(sheet, str(f))]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for spec in args.files:
        label, _, path = spec.partition("=")
        posts = [feed.lines_of(p) for p in Path(path).read_text("utf-8").split("\n\n")
                 if p.strip()]
        shared = measure(posts, corpus_lines)["shared"]
        mine = [r for source, r in rated if source.startswith(f"file:{label}#")]
        for axis, key in zip(axes, ("coherence", "humour"), strict=True):
            value = statistics.mean(r[key] for r in mine)
            axis.scatter(shared * 100, value)
            axis.annotate(label, (shared * 100, value), textcoords="offset points",
                          xytext=(4, 4))
    for axis, key in zip(axes, ("coherence", "humour"), strict=True):
        axis.set_xlabel("lines also in another post of the feed, %")
        axis.set_ylabel(f"{key} 1–5, mean of the readers")
        axis.grid(alpha=0.3)
    fig.suptitle(f"Feeds of 30 posts: repetition against what readers rated ({sheet.name})")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make")
    m.add_argument("--model", default="generator/bundled")
    m.add_argument("--out", required=True)
    m.add_argument("-n", type=int, default=30)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--searches", type=int, default=64)
    m.add_argument("--temperatures", default="0.4,0.45,0.5")
    m.add_argument("--rule", action="append", default=[], help="FIELD=INT of FeedRules")
    s = sub.add_parser("stats")
    s.add_argument("--corpus", default="data/bugurt/corpus.txt")
    s.add_argument("files", nargs="+")
    p = sub.add_parser("plot")
    p.add_argument("--corpus", default="data/bugurt/corpus.txt")
    p.add_argument("--sheet", required=True, help="a reading's folder: key.json, ratings*.jsonl")
    p.add_argument("--out", required=True)
    p.add_argument("files", nargs="+", metavar="LABEL=FILE")
    args = parser.parse_args()
    return {"make": make, "stats": stats, "plot": plot}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
