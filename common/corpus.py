"""The corpus file format: UTF-8 text, one post after another, separated by blank lines (a post
holds no blank line; lines of only whitespace count as blank). Inside a bugurt, a line holding a
lone SEPARATOR separates its lines: the cleaner writes it, the quality gate checks for it.

Posts are kept in date order, oldest first, so the train/validation split "by post date" is a
split by position: the newest `VAL_FRACTION` of posts validate. The scraper writes the corpus and
both split files; the generator reads them with the same functions.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from common.atomic import write_text_atomic

VAL_FRACTION = 0.1
SEPARATOR = "@"
LINE_BREAK = f"\n{SEPARATOR}\n"  # between two lines of a post
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n\s*")  # one or more blank lines


def parse_posts(text: str) -> list[str]:
    """Split corpus text into posts; blank lines (also whitespace-only ones) separate posts."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        return []
    return [p.strip("\n") for p in _BLANK_LINES.split(text) if p.strip()]


def format_posts(posts: list[str]) -> str:
    """Corpus text for posts that hold no blank line: one blank line between posts."""
    return "".join(post + "\n\n" for post in posts)


def read_posts(path: str | os.PathLike) -> list[str]:
    return parse_posts(Path(path).read_text(encoding="utf-8"))


def split_posts(
    posts: list[str], val_fraction: float = VAL_FRACTION
) -> tuple[list[str], list[str]]:
    """(train, validation): the last `val_fraction` of date-ordered posts validate (≥ 1 each)."""
    if len(posts) < 2:
        return list(posts), []
    n_val = min(len(posts) - 1, max(1, round(len(posts) * val_fraction)))
    return posts[:-n_val], posts[-n_val:]


def split_paths(corpus_path: str | os.PathLike) -> tuple[Path, Path]:
    """Where the split files of a corpus live: corpus.txt → corpus.train.txt, corpus.val.txt."""
    path = Path(corpus_path)
    return path.with_suffix(".train.txt"), path.with_suffix(".val.txt")


def read_split(corpus_path: str | os.PathLike) -> tuple[list[str], list[str], bool]:
    """(train, validation, from_files) of a corpus: its split files when they hold exactly the
    corpus's posts, else the corpus split here (split files missing, or stale: written by an
    earlier scrape, or a write that was interrupted between files). Raises UnicodeDecodeError."""
    posts = read_posts(corpus_path)
    train_path, val_path = split_paths(corpus_path)
    if train_path.is_file() and val_path.is_file():
        train, val = read_posts(train_path), read_posts(val_path)
        if sorted(train + val) == sorted(posts):
            return train, val, True
    train, val = split_posts(posts)
    return train, val, False


def write_corpus(corpus_path: str | os.PathLike, posts: list[str]) -> tuple[Path, Path]:
    """Write the corpus and its date split; returns the (train, validation) file paths."""
    train, val = split_posts(posts)
    train_path, val_path = split_paths(corpus_path)
    write_text_atomic(train_path, format_posts(train))
    write_text_atomic(val_path, format_posts(val))
    write_text_atomic(corpus_path, format_posts(posts))
    return train_path, val_path
