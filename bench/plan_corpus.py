"""The bugurt corpus with a plan before every post: a model that writes its plan first, then the
post (plan-and-write, Yao et al. 2019), for a reading against the bundle.

    .venv/bin/python bench/plan_corpus.py --corpus data/bugurt/corpus.txt --out data/plan/corpus.txt

Each post is preceded by one line `ПЛАН: K1 K2 …`, one key word a line of the post, in order: of
each line's content words (four letters or more, not a function word), the one whose stem is the
rarest in the training posts, among stems seen at least MIN_COUNT times (a misspelt word would
make a plan no other post shares). A line without one adds none. Sampled, the model writes a
plan, a handful of concrete words, and then lines that follow it: one situation kept through
the post is what readers found missing (BENCHMARKS.md, sheets T–V). The split is the bugurt
corpus's (same posts, same order).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.corpus import LINE_BREAK, read_split, write_corpus  # noqa: E402
from generator.gate import WORD  # noqa: E402
from generator.search import FUNCTION_STEMS, STEM_LETTERS  # noqa: E402

PLAN = "ПЛАН:"
MIN_COUNT = 3
# short words the search's function stems (five letters) do not cover
SHORT_FUNCTION = frozenset({"ТЕБЯ", "ТЕБЕ", "СЕБЯ", "СЕБЕ", "ЭТОТ", "ЭТОМ", "ЭТОЙ", "ЕСЛИ", "ПОКА",
                            "ТОЖЕ", "ЧТОБ", "ВСЕХ", "ВСЕМ", "ТАМ", "ЕЩЁ", "УЖЕ", "ДАЖЕ", "ВСЁ",
                            "ЕГО", "ЕЁ", "ОНИ", "ОНА", "ОНО", "НЕТ", "ДА", "КАК", "ТАК", "ЧТО"})


def stem(word: str) -> str:
    return word[:STEM_LETTERS]


def content_words(line: str) -> list[str]:
    return [w for w in WORD.findall(line.upper()) if len(w) >= 4 and w.isalpha()
            and w not in SHORT_FUNCTION and stem(w) not in FUNCTION_STEMS]


def plan(post: str, counts: Counter) -> list[str]:
    """One key word a line that has one: its rarest stem seen at least MIN_COUNT times."""
    keys = []
    for line in post.split(LINE_BREAK):
        usable = [w for w in content_words(line) if counts[stem(w)] >= MIN_COUNT]
        if usable:
            keys.append(min(usable, key=lambda w: counts[stem(w)]))
    return keys


def planned(post: str, counts: Counter) -> str:
    return " ".join([PLAN, *plan(post, counts)]) + "\n" + post


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("data/bugurt/corpus.txt"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    train, val, _ = read_split(args.corpus)
    counts = Counter(stem(w) for post in train for w in content_words(post))
    posts = [planned(p, counts) for p in train + val]
    write_corpus(args.out, posts)
    keys = [len(plan(p, counts)) for p in train]
    print(f"{len(posts)} posts, {sum(keys) / len(keys):.1f} key words a plan; {args.out}")
    print(posts[0][:300])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
