"""The quality gate a sampled post passes before it leaves: well-formed, then novel.

Well-formed: text lines joined by lone @ lines, none empty or over MAX_LINE characters, none
repeating itself in a loop. Novel: it copies no training text (novelty.py's index).
"""

from __future__ import annotations

import re
from collections import Counter

from common.corpus import SEPARATOR
from generator.novelty import NoveltyIndex

MAX_LINE = 200  # characters in one line of a post
_LOOP = re.compile(r"(.{2,}?)\1{3,}")  # a unit of ≥ 2 characters repeated ≥ 4 times in a row


def passes(text: str, novelty: NoveltyIndex) -> bool:
    """Whether an untagged post passes the gate: well-formed and new."""
    return form_reason(text) is None and novelty.copy_reason(text) is None


def form_reason(text: str) -> str | None:
    """Why `text` is not a well-formed bugurt (text lines joined by lone @ lines), or None."""
    lines = text.split("\n")
    body = [line for line in lines if line != SEPARATOR]
    if len(body) < 2 or SEPARATOR not in lines:
        return "fewer than two text lines joined by @"
    if lines[0] == SEPARATOR or lines[-1] == SEPARATOR:
        return "starts or ends with @"
    if any(not line.strip() for line in lines):
        return "has an empty line"
    if any(a != SEPARATOR and b != SEPARATOR for a, b in zip(lines, lines[1:], strict=False)):
        return "two text lines without @ between them"
    if "\ufffd" in text or any(len(line) > MAX_LINE for line in body):
        return "unknown character or overlong line"
    if Counter(body).most_common(1)[0][1] > 2 or any(_LOOP.search(line) for line in body):
        return "repeats itself in a loop"
    return None


def cut_at_line(text: str, keep: int = 0) -> str:
    """A post that hit the length cap: whole lines only and no trailing @, never shorter than
    its first `keep` characters (a user's prime, which the post must start with)."""
    cut = text.rfind("\n", keep)  # the last line is unfinished
    body = text[:cut] if cut >= 0 else text[:keep]
    while body == SEPARATOR or (body.endswith("\n" + SEPARATOR)
                                and len(body) - len(SEPARATOR) - 1 >= keep):
        body = body[: max(0, len(body) - len(SEPARATOR) - 1)]
    return body

