"""The words of a post's lines as the generator compares them: split, and cut to stems.

Russian endings change with person and case, so words are compared by their first STEM_LETTERS
letters: "СЧИТАЕШЬ" and "СЧИТАЕТ" are one stem. The feed's memory (feed.py) compares every word
so; the search's lexical cohesion (search.py) only content words.
"""

from __future__ import annotations

import re

WORD = re.compile(r"\w+")
# Letters a stem keeps; shorter words are mostly function words.
STEM_LETTERS = 5
# The commonest stems of the bugurt validation posts that tie no line to another.
FUNCTION_STEMS = frozenset({
    "КОТОР", "ТОЛЬК", "ПОТОМ", "ПОСЛЕ", "ЧТОБЫ", "КОГДА", "НИЧЕГ", "БУДЕТ", "ПОЧЕМ", "МОЖЕТ",
    "ТЕПЕР", "ЧЕРЕЗ", "СВОЕЙ", "СВОЁЙ", "СВОИМ", "КАКОЙ", "ПРОСТ", "ВМЕСТ", "ОЧЕНЬ", "ВООБЩ",
    "ЗАЧЕМ", "ТАКОЙ", "ТАКОЕ", "ТАКАЯ", "ТАКИЕ", "ВСЕГД", "ОПЯТЬ", "СНОВА", "СРАЗУ", "КОНЕЧ",
    "ПОКАЗ", "НАКОН", "ПОЧТИ", "ЭТОГО", "ЭТОМУ", "БОЛЬШ", "МОЖЕШ",
})


def stems(line: str) -> list[str]:
    """Every word of the line as the feed's memory compares it: upper case, Ё as Е, cut to
    STEM_LETTERS."""
    return [w[:STEM_LETTERS] for w in WORD.findall(line.upper().replace("Ё", "Е"))]


def content_stems(line: str) -> set[str]:
    """The stems of the line's content words: words of at least STEM_LETTERS letters, cut,
    less FUNCTION_STEMS."""
    return {w[:STEM_LETTERS] for w in WORD.findall(line.upper())
            if len(w) >= STEM_LETTERS and w.isalpha()} - FUNCTION_STEMS


def cohesion(lines: list[str]) -> float:
    """The share of lines after the first that reuse a content word of an earlier line."""
    seen, linked = set(), 0
    for i, line in enumerate(lines):
        found = content_stems(line)
        linked += bool(i and found & seen)
        seen |= found
    return linked / max(1, len(lines) - 1)
