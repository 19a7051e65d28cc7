"""Write the pretraining mixture as a corpus `generator train` reads: general Russian, then the
bugurt training posts repeated, shuffled; the bugurt validation posts validate.

    .venv/bin/python bench/pretrain_mix.py [--bugurts data/bugurt/corpus.txt]
        [--out data/mix/corpus.txt] [--bugurt-repeats 3] [--informal-repeats 1] [--no-upper]

The general text is ../shared/data/ru-pretrain/ (informal.txt.xz, literature.txt.xz). It is
upper-cased by default: the bugurts are upper case, and a model whose general units are lower
case would learn two spellings of every word. Validation is the bugurt validation split, so the
run's best weights are the ones that model bugurts best (`generator eval` gives any other text).
"""

from __future__ import annotations

import argparse
import lzma
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from common.corpus import format_posts, parse_posts, read_split, split_paths  # noqa: E402

PRETRAIN = REPO.parent / "shared" / "data" / "ru-pretrain"


def general_posts(name: str, upper: bool, folder: Path = PRETRAIN) -> list[str]:
    with lzma.open(folder / name, "rt", encoding="utf-8") as f:
        posts = parse_posts(f.read())
    return [p.upper() for p in posts] if upper else posts


def mixture(train: list[str], bugurt_repeats: int = 3, informal_repeats: int = 1,
            upper: bool = True, seed: int = 0, folder: Path = PRETRAIN) -> list[str]:
    """The general posts of `folder` and the bugurt training posts repeated, shuffled."""
    mix = (general_posts("literature.txt.xz", upper, folder)
           + general_posts("informal.txt.xz", upper, folder) * informal_repeats
           + train * bugurt_repeats)
    random.Random(seed).shuffle(mix)
    return mix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bugurts", type=Path, default=Path("data/bugurt/corpus.txt"))
    parser.add_argument("--out", type=Path, default=Path("data/mix/corpus.txt"))
    parser.add_argument("--bugurt-repeats", type=int, default=3)
    parser.add_argument("--informal-repeats", type=int, default=1)
    parser.add_argument("--no-upper", action="store_true", help="keep the general text's case")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for needed in (args.bugurts, PRETRAIN / "literature.txt.xz"):
        if not needed.exists():
            print(f"error: {needed} not found: build the bugurt corpus with "
                  "bench/bugurt_corpus.py; ru-pretrain is shared data", file=sys.stderr)
            return 2
    train, val, _ = read_split(args.bugurts)
    mix = mixture(train, args.bugurt_repeats, args.informal_repeats, not args.no_upper,
                  args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    train_path, val_path = split_paths(args.out)
    train_path.write_text(format_posts(mix), encoding="utf-8")
    val_path.write_text(format_posts(val), encoding="utf-8")
    args.out.write_text(format_posts(mix + val), encoding="utf-8")
    chars = sum(map(len, mix))
    bugurt_chars = sum(map(len, train)) * args.bugurt_repeats
    print(f"mixture: {len(mix)} documents, {chars:,} characters "
          f"({bugurt_chars / chars:.1%} bugurts), validation {len(val)} bugurts -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
