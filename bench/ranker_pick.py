"""Top picks of the same candidate pools by likelihood and by likelihood + ranker, for a blind
reading (issue 11, "A ranker": keep the ranker only if its picks read better).

For a model directory with a ranker (`python -m generator ranker --model DIR`), draws `--pools`
pools of `--size` gated candidates each (fixed seeds; pool k at the k-th of `--temperatures`,
round robin, as the channel's gatherings move between the bandit's arms), and writes the best
of each pool twice, one post per block separated by blank lines, untagged:
  OUT/likelihood.txt  the highest mean log-likelihood per character (the ranking without ranker)
  OUT/combined.txt    the highest ranker.combine score at `--weight`
Prints the ranker's held-out accuracy, how many pools picked the same post both ways, and the
mean length of each file's picks (likelihood favours short posts).

    .venv/bin/python bench/ranker_pick.py --model generator/bundled --out /tmp/ranker_picks
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator.sample import Candidate, Generator  # noqa: E402


def pool(gen: Generator, size: int, temperature: float, seed: int) -> list[Candidate]:
    """`size` distinct gated candidates drawn in batches of 64 from one seed."""
    rng = torch.Generator().manual_seed(seed)
    found: dict[str, Candidate] = {}
    while len(found) < size:
        for c in gen.gated(64, temperature, rng):
            found.setdefault(c.text, c)
    return list(found.values())[:size]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="generator/bundled")
    p.add_argument("--out", default="/tmp/ranker_picks")
    p.add_argument("--pools", type=int, default=10)
    p.add_argument("--size", type=int, default=64, help="gated candidates per pool")
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.7, 0.85, 1.0])
    p.add_argument("--weight", type=float, default=1.0, help="generator.ranker_weight")
    p.add_argument("--seed", type=int, default=1000)
    args = p.parse_args()
    gen = Generator.load(args.model, ranker_weight=args.weight)
    if gen.ranker is None:
        sys.exit(f"{args.model} has no ranker: run python -m generator ranker --model "
                 f"{args.model}")
    print(f"ranker: {gen.ranker.info}")
    started = time.perf_counter()
    by_likelihood, by_combined = [], []
    for k in range(args.pools):
        candidates = pool(gen, args.size, args.temperatures[k % len(args.temperatures)],
                          args.seed + k)
        scores = gen.combined(candidates)
        by_likelihood.append(max(candidates, key=lambda c: c.likelihood).text)
        by_combined.append(candidates[max(range(len(candidates)), key=scores.__getitem__)].text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, picks in (("likelihood", by_likelihood), ("combined", by_combined)):
        (out / f"{name}.txt").write_text("\n\n".join(picks) + "\n", encoding="utf-8")
        print(f"{name}: mean {sum(map(len, picks)) / len(picks):.0f} characters "
              f"-> {out / name}.txt")
    same = sum(a == b for a, b in zip(by_likelihood, by_combined, strict=True))
    print(f"held-out accuracy {gen.ranker.info['held_out_accuracy']:.3f}; {same} of "
          f"{args.pools} pools picked the same post both ways; "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
