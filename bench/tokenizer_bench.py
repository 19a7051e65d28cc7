"""Characters per token of the corpus for subword vocabularies of several sizes.

    .venv/bin/python bench/tokenizer_bench.py [--corpus data/bugurt/corpus.txt]
                                              [--sizes 2000 4000 8000]

Trains the unigram tokenizer of `train --tokenizer unigram` (generator/tokenizer.py) on the
corpus's training posts for each size and reports, on the training and validation posts:
- chars/token: the posts' characters per non-END token (the speed-up of one LSTM step over a
  character model's, which reads 1);
- stream chars/token: the bpc denominator (posts + their blank-line separators) per predicted
  token of the END-separated stream, what one training step's tokens cover of the text;
- bytes: the share of tokens that are byte-fallback pieces (characters without a piece).
The char row is the character vocabulary, for reference. Takes about a minute per size.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from common.corpus import read_split  # noqa: E402
from generator.tokenizer import Unigram  # noqa: E402
from generator.vocab import END, CharVocab, Tokenizer  # noqa: E402


def measure(tokenizer: Tokenizer, posts: list[str]) -> dict:
    """chars/token, stream chars/token and the byte-piece share of `posts` (see the docstring)."""
    ids = tokenizer.encode_posts(posts)
    pieces = ids[ids != END]
    byte = sum(1 for i in pieces.tolist() if isinstance(tokenizer, Unigram)
               and tokenizer.sp.is_byte(i))
    chars = sum(map(len, posts))
    return {"chars_per_token": chars / len(pieces),
            "stream_chars_per_token": (chars + 2 * len(posts)) / (len(ids) - 1),
            "byte_share": byte / len(pieces)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/bugurt/corpus.txt"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000, 8000])
    args = parser.parse_args()
    train_posts, val_posts, _ = read_split(args.corpus)
    print(f"corpus {args.corpus}: {len(train_posts)} train posts "
          f"({sum(map(len, train_posts)):,} chars), {len(val_posts)} validation posts")
    print("| vocab | build s | train chars/token | val chars/token | val stream chars/token "
          "| val bytes |")
    print("|---|---|---|---|---|---|")
    for size in [None, *args.sizes]:
        started = time.perf_counter()
        tokenizer = (CharVocab.build(train_posts) if size is None
                     else Unigram.train(train_posts, size))
        seconds = time.perf_counter() - started
        train, val = measure(tokenizer, train_posts), measure(tokenizer, val_posts)
        name = f"char ({len(tokenizer)})" if size is None else f"unigram {size}"
        print(f"| {name} | {seconds:.1f} | {train['chars_per_token']:.3f} "
              f"| {val['chars_per_token']:.3f} | {val['stream_chars_per_token']:.3f} "
              f"| {val['byte_share']:.2%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
