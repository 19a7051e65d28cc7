"""Novelty: whether a post copies the training text, the quality gate's second check (gate.py).

It works without the corpus, from a compact index saved beside the weights: Bloom filters (bit
arrays; a lookup can give a rare false "seen", never a false "unseen"):
- word shingles: every run of SHINGLE_WORDS consecutive words of a training post; a candidate
  whose shingles are ≥ SHINGLE_LIMIT seen reproduces training text;
- character windows: the WINDOW-character substrings of every training post that start at a
  multiple of STRIDE; a candidate shares a substring of ≥ WINDOW + STRIDE - 1 (= 47) characters with
  a training post exactly when that substring covers one stored window, which the candidate's
  windows at every position find;
- lines: every text line of a training post, so that the feed (feed.py) can refuse a line
  copied verbatim. Indexes written before it have none, and copy nothing by it.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from common.corpus import SEPARATOR
from generator.words import WORD

SHINGLE_WORDS = 3  # words of a shingle
SHINGLE_LIMIT = 0.6  # share of a post's shingles seen in training that makes it a copy
WINDOW, STRIDE = 32, 16  # characters of a stored window, and between two stored windows' starts


def _hashes(items: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes per item (for double hashing)."""
    raw = b"".join(hashlib.blake2b(s.encode("utf-8"), digest_size=16).digest() for s in items)
    pairs = np.frombuffer(raw, dtype=np.uint64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1] | np.uint64(1)


class Bloom:
    def __init__(self, bits: np.ndarray, k: int):
        self.bits, self.k, self.m = bits, k, np.uint64(len(bits) * 8)

    @classmethod
    def build(cls, items: set[str], false_positive: float) -> Bloom:
        n = max(1, len(items))
        m = max(64, math.ceil(-n * math.log(false_positive) / math.log(2) ** 2))
        bloom = cls(np.zeros((m + 7) // 8, dtype=np.uint8), max(1, round(m / n * math.log(2))))
        if items:
            pos = bloom._positions(sorted(items))
            np.bitwise_or.at(bloom.bits, pos >> 3, (1 << (pos & 7)).astype(np.uint8))
        return bloom

    def _positions(self, items: list[str]) -> np.ndarray:
        h1, h2 = _hashes(items)
        i = np.arange(self.k, dtype=np.uint64)[:, None]
        with np.errstate(over="ignore"):
            return ((h1[None, :] + i * h2[None, :]) % self.m).ravel()

    def contains(self, items: list[str]) -> np.ndarray:
        """bool (len(items),): True where the item was (probably) added."""
        if not items:
            return np.zeros(0, dtype=bool)
        pos = self._positions(items)
        hit = (self.bits[pos >> 3] >> (pos & 7).astype(np.uint8)) & 1
        return hit.reshape(self.k, len(items)).all(axis=0)


def shingles(text: str) -> list[str]:
    words = WORD.findall(text)
    return [" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)]


class NoveltyIndex:
    def __init__(self, shingle_filter: Bloom, window_filter: Bloom,
                 line_filter: Bloom | None = None):
        self.shingle_filter, self.window_filter = shingle_filter, window_filter
        self.line_filter = line_filter

    @classmethod
    def build(cls, posts: list[str]) -> NoveltyIndex:
        words, windows = set(), set()
        for post in posts:
            words.update(shingles(post))
            windows.update(post[i : i + WINDOW] for i in range(0, len(post) - WINDOW + 1, STRIDE))
        # ~500 lookups per candidate: 1e-5 per window keeps false "copies" under 1% of candidates;
        # a search looks up hundreds of lines a post: 1e-4 refuses a new line once in 10,000
        return cls(Bloom.build(words, 1e-3), Bloom.build(windows, 1e-5),
                   Bloom.build(lines_of_posts(posts), 1e-4))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index as named arrays (what modeldir stores in novelty.npz)."""
        arrays = {"shingle_bits": self.shingle_filter.bits,
                  "shingle_k": np.array(self.shingle_filter.k),
                  "window_bits": self.window_filter.bits,
                  "window_k": np.array(self.window_filter.k),
                  "params": np.array([SHINGLE_WORDS, WINDOW, STRIDE])}
        if self.line_filter is not None:
            arrays.update(line_bits=self.line_filter.bits, line_k=np.array(self.line_filter.k))
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> NoveltyIndex:
        """The index of `to_arrays`' output; ValueError when built with other parameters (its
        shingles or windows would not match the ones looked up now)."""
        if tuple(arrays["params"]) != (SHINGLE_WORDS, WINDOW, STRIDE):
            raise ValueError("novelty index built with other parameters")
        lines = (Bloom(arrays["line_bits"], int(arrays["line_k"])) if "line_bits" in arrays
                 else None)
        return cls(Bloom(arrays["shingle_bits"], int(arrays["shingle_k"])),
                   Bloom(arrays["window_bits"], int(arrays["window_k"])), lines)

    def copies_line(self, line: str) -> bool:
        """Whether `line` is (probably) a text line of a training post; False for an index
        without lines."""
        return self.line_filter is not None and bool(self.line_filter.contains([line])[0])

    def copy_reason(self, text: str) -> str | None:
        """Why `text` reproduces training text, or None when it is new."""
        windows = [text[i : i + WINDOW] for i in range(len(text) - WINDOW + 1)]
        if self.window_filter.contains(windows).any():
            return f"shares a {WINDOW + STRIDE - 1}+ character run with a training post"
        found = self.shingle_filter.contains(shingles(text))
        if len(found) and found.mean() >= SHINGLE_LIMIT:
            return f"{found.mean():.0%} of its word shingles occur in the training posts"
        return None


def lines_of_posts(posts: list[str]) -> set[str]:
    """The distinct text lines (not the @ separators) of posts."""
    return {line for post in posts for line in post.split("\n") if line != SEPARATOR}

