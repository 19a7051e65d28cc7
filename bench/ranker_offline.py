"""The ranker learnt from judgements, offline: on held-out pairs, split by post as the bot splits
them, its pairwise accuracy and likelihood's; on the held-out posts of blind readings, Spearman
of each one's order against the readers' mean grade.

    .venv/bin/python tools/reading.py judgements --dir runs/reading --sheet W ... \
        --out bench/readings/W/judgements.jsonl
    .venv/bin/python bench/ranker_offline.py bench/readings/*/judgements.jsonl [export.jsonl]

Files are JSON lines of judgements (bench/readings/, `python -m bot export-judgements`). It
fits the same ranker the bot fits (bot/ranker.py) and writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bot.judgements import Judgement, load  # noqa: E402
from bot.ranker import Ranker, fit, held_out  # noqa: E402


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation of a and b (tied values take distinct ranks)."""
    ra, rb = (torch.tensor(x).argsort().argsort().float() for x in (a, b))
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def reader_orders(judged: list[Judgement], ranker: Ranker) -> dict[str, float] | None:
    """Spearman against the readers' mean grade on the held-out read posts, for the ranker and
    for likelihood; None with fewer than 3 such posts."""
    grades: dict[str, list[float]] = defaultdict(list)
    features = {}
    for j in judged:
        if j.kind == "reading" and held_out(j.text) and ranker.score(j.features) is not None:
            grades[j.text].append(j.value)
            features[j.text] = j.features
    if len(grades) < 3:
        return None
    texts = sorted(grades)
    mean = [statistics.mean(grades[t]) for t in texts]
    return {"ranker": spearman([ranker.score(features[t]) for t in texts], mean),
            "likelihood": spearman([features[t]["likelihood"] for t in texts], mean),
            "posts": len(texts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="judgements, JSON lines")
    args = parser.parse_args()
    judged = [j for path in args.files for j in load(path)]
    ranker = fit(judged)
    print(f"judgements: {len(judged)}; pairs trained on: {ranker.trained}, held out:"
          f" {ranker.held_out}")
    print("| order | held-out pairwise accuracy | Spearman vs readers |\n|---|---|---|")
    orders = reader_orders(judged, ranker)
    for name, accuracy in (("ranker", ranker.accuracy), ("likelihood",
                                                          ranker.likelihood_accuracy)):
        rho = f"{orders[name]:+.2f} ({orders['posts']} posts)" if orders else "too few posts"
        print(f"| {name} | {accuracy:.1%} | {rho} |")
    print(f"the bot would rank by {'the ranker' if ranker.used else 'likelihood'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
