"""CPU seconds of one line-by-line search, the search's own draw against torch.multinomial.

    .venv/bin/python bench/search_speed.py [--searches 40] [--model generator/bundled]

Both ways run in one process on one thread, alternating search by search from the same seeds,
so the machine's load falls on both alike; CPU seconds are the process's own. Each way draws
other posts (the random numbers are used differently), so the lines a search writes are
reported too: a draw that made posts longer would cost more steps, not less.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_generator import machine  # noqa: E402
from common.corpus import LINE_BREAK  # noqa: E402
from generator import search  # noqa: E402
from generator.sample import Generator  # noqa: E402
from generator.search import LineSearch, SearchConfig  # noqa: E402

OWN_DRAW = search.draw


def multinomial_draw(probs: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """The draw the search used before `search.draw`."""
    return torch.multinomial(probs, 1, generator=rng)[:, 0]


def one_search(gen: Generator, seed: int) -> tuple[float, int]:
    """(CPU seconds, lines written) of one search with the defaults."""
    rng = torch.Generator().manual_seed(seed)
    started = time.process_time()
    found = LineSearch(gen, SearchConfig()).post(rng)
    lines = len(found[0].split(LINE_BREAK)) if found else 0
    return time.process_time() - started, lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="generator/bundled")
    parser.add_argument("--searches", type=int, default=40)
    args = parser.parse_args()
    gen = Generator.load(args.model)  # sets one thread
    print(f"machine: {machine()}")
    ways = {"search.draw (cumulative sum)": OWN_DRAW, "torch.multinomial": multinomial_draw}
    spent: dict[str, list[float]] = {name: [] for name in ways}
    lines: dict[str, list[int]] = {name: [] for name in ways}
    one_search(gen, -1)  # warm-up
    for seed in range(args.searches):
        for name, way in ways.items():
            search.draw = way  # the module's function, which _draw_lines calls
            seconds, written = one_search(gen, seed)
            spent[name].append(seconds)
            lines[name].append(written)
    search.draw = OWN_DRAW
    print("| draw | CPU s a search (median) | mean | lines a search |\n|---|---:|---:|---:|")
    for name in ways:
        print(f"| {name} | {statistics.median(spent[name]):.3f} | "
              f"{statistics.mean(spent[name]):.3f} | {statistics.mean(lines[name]):.2f} |")
    own, old = (statistics.mean(spent[name]) for name in ways)
    print(f"mean CPU a search: {own / old:.2f}× torch.multinomial's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
