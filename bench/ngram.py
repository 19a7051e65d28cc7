"""Character n-gram baseline: interpolated modified Kneser–Ney (Chen & Goodman), in numpy.

It reads the same token stream as the LSTM (generator/tokenizer.py: END between posts, UNK for rare
characters) and reports bits per character the same way (bits of the stream over the characters
of the text), so the two figures compare directly.

    .venv/bin/python bench/ngram.py --corpus data/bugurt/corpus.txt --orders 5 6 7 8

Every n-gram gets a dense id (n-gram ending at i = (n−1)-gram ending at i−1, extended by token i),
so counting is `np.unique`/`np.bincount` over the whole stream and scoring is vectorised.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from common.corpus import format_posts, read_posts, split_paths  # noqa: E402
from generator.tokenizer import CharVocab  # noqa: E402


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified KN discounts D(0..3+) from the count-of-counts of one order."""
    n = [max(1, int((counts == k).sum())) for k in (1, 2, 3, 4)]
    y = n[0] / (n[0] + 2 * n[1])
    return np.array([0.0, 1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1],
                     3 - 4 * y * n[3] / n[2]]).clip(0)


def kneser_ney_bits(train: np.ndarray, val: np.ndarray, order: int,
                    vocab: int | None = None) -> float:
    """Total −log2 p of val[1:] (val[0] is the END that starts it) under a model of `train`;
    the order-0 distribution is uniform over `vocab` symbols (default: those in the stream)."""
    return float(-np.log2(kneser_ney_probs(train, val, order, vocab)).sum())


def kneser_ney_probs(train: np.ndarray, val: np.ndarray, order: int,
                     vocab: int | None = None) -> np.ndarray:
    """p(val[i] | val[:i], train) for i = 1 .. len(val) − 1."""
    stream = np.concatenate([train, val[1:]]).astype(np.int64)
    n_train = len(train)
    vocab = max(vocab or 0, int(stream.max()) + 1)
    ids = [None, stream]  # ids[n][i]: dense id of the n-gram ending at i, -1 where none
    for n in range(2, order + 1):
        prev = np.full(len(stream), -1, dtype=np.int64)
        prev[1:] = ids[n - 1][:-1]
        key = np.where(prev >= 0, prev * vocab + stream, -1)
        dense = np.full(len(stream), -1, dtype=np.int64)
        dense[key >= 0] = np.unique(key[key >= 0], return_inverse=True)[1]
        ids.append(dense)
    where = np.arange(len(stream))
    is_train = where < n_train
    is_val = ~is_train
    is_val[n_train - 1] = False  # the first target is stream[n_train]
    p = np.full(is_val.sum(), 1.0 / vocab)
    for n in range(1, order + 1):
        g = ids[n]
        size = int(g.max()) + 1
        seen = is_train & (g >= 0)
        if n == order:  # raw counts at the top order, continuation counts below it
            counts = np.bincount(g[seen], minlength=size).astype(np.float64)
        else:
            up = ids[n + 1]
            first = np.unique(up[is_train & (up >= 0)], return_index=True)[1]
            rows = where[is_train & (up >= 0)][first]
            counts = np.bincount(g[rows], minlength=size).astype(np.float64)
        discount = _discounts(counts[counts > 0])
        if n == 1:
            context = np.zeros(size, dtype=np.int64)
            ctx_at = np.zeros(len(stream), dtype=np.int64)
        else:
            ctx_at = np.full(len(stream), -1, dtype=np.int64)
            ctx_at[1:] = ids[n - 1][:-1]
            context = np.zeros(size, dtype=np.int64)
            context[g[g >= 0]] = ctx_at[g >= 0]
        n_ctx = int(context.max()) + 1
        total = np.bincount(context, weights=counts, minlength=n_ctx)
        level = np.minimum(counts, 3).astype(np.int64)
        gamma = np.bincount(context, weights=discount[level], minlength=n_ctx)
        g_val, ctx_val = g[is_val], ctx_at[is_val]
        ok = (ctx_val >= 0) & (g_val >= 0)
        tot = np.where(ok, total[np.where(ok, ctx_val, 0)], 0.0)
        c = np.where(ok, counts[np.where(ok, g_val, 0)], 0.0)
        gam = np.where(ok, gamma[np.where(ok, ctx_val, 0)], 0.0)
        d = discount[np.minimum(c, 3).astype(np.int64)]
        mixed = (np.maximum(c - d, 0) + gam * p) / np.where(tot > 0, tot, 1)
        p = np.where(tot > 0, mixed, p)
    return p


def corpus_bpc(corpus: Path, orders: list[int]) -> dict[int, float]:
    """Validation bits per character of each order on a corpus's train/val split files."""
    train_path, val_path = split_paths(corpus)
    train_posts, val_posts = read_posts(train_path), read_posts(val_path)
    vocab = CharVocab.build(train_posts)
    train = vocab.encode_posts(train_posts).numpy()
    val = vocab.encode_posts(val_posts).numpy()
    chars = len(format_posts(val_posts))
    return {n: kneser_ney_bits(train, val, n, len(vocab)) / chars for n in orders}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", required=True, type=Path, help="corpus.txt with split files")
    p.add_argument("--orders", type=int, nargs="+", default=[5, 6, 7, 8])
    args = p.parse_args()
    started = time.perf_counter()
    for n, bpc in corpus_bpc(args.corpus, args.orders).items():
        print(f"order {n}: val bpc {bpc:.4f}")
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
