"""The feed: posts as the product makes and hands them out in a row, each new to its readers.

A post is the best, by likelihood (`Generator.best_first`), of `searches` line searches run
side by side (search.py). Likelihood favours the corpus's stock lines, so a pick by it alone
repeats itself across a feed (44% of a channel's lines were in another of its 15 posts) and
copies the corpus (26% of lines). Rules against both are applied to each line as it is drawn: a
refused line is as if it had never been drawn, so the search spends its effort on new lines.
(Penalising finished posts in the pick instead cost the pick its coherence: 2.80 → 2.47.)

- **Memory**: a line of one of the last `memory` posts handed out, or a line sharing a
  `phrase_words`-word phrase with one of them, is refused. Words are compared by their stems
  (words.stems: their first letters, Ё read as Е), so that "ВСЕРЬЁЗ СЧИТАЕШЬ СЕБЯ ДУМЕРОМ"
  repeats "ВСЕРЬЕЗ СЧИТАЕТ СЕБЯ ДУМЕРОМ" (Russian endings change with person and case).
- **Copies**: a line of at least `copy_words` words that is a line of the training corpus (the
  novelty index's line filter) is refused. Real posts copy 5.6% of their lines, nearly all of
  them of one or two words ("ПРОСЫПАЕШЬСЯ"); of 3 words or more, 1.5% (the validation split
  against the training split).
- **Openings**: an opening line whose first word opened one of the last `opening_window` posts
  is refused. "ТЫ" opens 25% of real posts and 93% of the likelihood's picks.

The bot keeps the memory in its database (bot/pool.py), shared by every process; `python -m
generator feed` keeps it in memory, so its output is the feed a channel would show.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from common.corpus import SEPARATOR
from generator.novelty import NoveltyIndex
from generator.sample import Candidate, Generator
from generator.tag import TAG
from generator.words import WORD, stems


@dataclass(frozen=True)
class FeedRules:
    memory: int = 200  # posts remembered: a month of a channel posting six a day
    phrase_words: int = 4  # a phrase this long shared with a remembered post is a repeat
    copy_words: int = 3  # a corpus line of at least this many words may not be copied
    opening_window: int = 3  # openings whose first word may not open the next post


def lines_of(post: str) -> list[str]:
    """The text lines of a post (without its @ separators and its tag)."""
    return [line for line in post.split("\n") if line not in (SEPARATOR, TAG) and line.strip()]


def phrases(line: str, words: int) -> list[str]:
    found = stems(line)
    return [" ".join(found[i : i + words]) for i in range(len(found) - words + 1)]


def first_word(line: str) -> str:
    found = WORD.findall(line)
    return found[0] if found else ""


class FeedMemory:
    """The lines, phrases and openings of the last `rules.memory` posts of a feed."""

    def __init__(self, rules: FeedRules, novelty: NoveltyIndex, posts: Sequence[str] = ()):
        self.rules, self.novelty = rules, novelty
        self.posts: deque[list[str]] = deque()
        self.lines: Counter[str] = Counter()
        self.phrases: Counter[str] = Counter()
        self.openings: deque[str] = deque(maxlen=rules.opening_window)
        for post in posts:  # oldest first
            self.add(post)

    def add(self, post: str) -> None:
        """Remember a post handed out (the oldest is forgotten past `rules.memory`)."""
        lines = lines_of(post)
        if not lines or not self.rules.memory:
            return
        self.posts.append(lines)
        self._count(lines, +1)
        if self.rules.opening_window:
            self.openings.append(first_word(lines[0]))
        if len(self.posts) > self.rules.memory:
            self._count(self.posts.popleft(), -1)

    def _count(self, lines: list[str], sign: int) -> None:
        for line in lines:
            _tally(self.lines, " ".join(stems(line)), sign)
            for phrase in phrases(line, self.rules.phrase_words):
                _tally(self.phrases, phrase, sign)

    def refuses(self, line: str, depth: int) -> bool:
        """Whether a line drawn at `depth` (0: the opening) would repeat the feed or copy
        the corpus."""
        if " ".join(stems(line)) in self.lines:
            return True
        if any(p in self.phrases for p in phrases(line, self.rules.phrase_words)):
            return True
        if depth == 0 and first_word(line) in self.openings:
            return True
        return (len(WORD.findall(line)) >= self.rules.copy_words
                and self.novelty.copies_line(line))


def _tally(counts: Counter[str], key: str, sign: int) -> None:
    """Count a key up or down; a key counted down to zero leaves (no longer remembered)."""
    counts[key] += sign
    if counts[key] <= 0:
        del counts[key]


def next_post(generator: Generator, memory: FeedMemory | None, searches: int,
              temperature: float, rng: torch.Generator) -> Candidate | None:
    """The best of `searches` searched posts under the memory's rules, tagged; None when no
    search finished a post."""
    found = searched(generator, memory, searches, temperature, rng)
    return found[0] if found else None


def searched(generator: Generator, memory: FeedMemory | None, searches: int,
             temperature: float, rng: torch.Generator) -> list[Candidate]:
    """The posts that `searches` searches under the memory's rules finished, best first."""
    avoid = memory.refuses if memory is not None else None
    return generator.best_first(generator.searched_many(searches, temperature, rng, avoid=avoid))


def feed(generator: Generator, n: int, searches: int, temperatures: tuple[float, ...],
         rules: FeedRules, seed: int) -> Iterator[str]:
    """n posts in a row as a channel shows them, each as soon as it is made: the best of
    `searches` searches at a temperature drawn from `temperatures`, remembered for the next.
    The same seed gives the same feed. Fewer than n when rounds finish no post (at most 2n
    rounds)."""
    memory = FeedMemory(rules, generator.novelty)
    pick = random.Random(seed)
    rng = torch.Generator().manual_seed(seed)
    made = 0
    for _ in range(n * 2):
        post = next_post(generator, memory, searches, pick.choice(temperatures), rng)
        if post is not None:
            memory.add(post.text)
            made += 1
            yield post.text
        if made == n:
            return
