"""Raw wall posts → bugurts: pure functions, no I/O.

A bugurt is a run of lines separated by lines holding a lone `@`. What a community wall holds
besides (studied on 11,864 posts of БУГУРТ-ТРЕД, see README):
- the signature line `БУГУРТ-ТРЕД` and the credit `предложено через @tgbtbot` under most posts;
- hashtags (`#БТnews`, `#антибугурт`, `#олдтоп@bugurt_thread`), links (medialeaks.ru news links,
  telegra.ph for long bugurts), `[club1|name]` mentions, zero-width characters;
- preambles and editor's notes in blocks of their own (`Основано на реальных событиях`,
  `____` then `Прим. ред.: ...`), announcements, contests, ads, photo-only posts;
- several bugurts bundled into one post, separated by lines of `_`, `-` or `—`.

`clean_post(text)` returns the bugurts of one post's text in the corpus format (one step per
line group, `@` lines between, no blank line). `build_corpus(posts)` applies it to whole posts
(dropping ads and reposts first), removes duplicates and counts why each post went.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from common.corpus import LINE_BREAK

# Characters that change nothing visible: zero-width spaces/joiners, BOM, word joiner.
_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
_SPACES = re.compile(r"[^\S\n]+")  # any whitespace except newline (nbsp, tabs, ...)
_SIGNATURE = re.compile(r"^\W*бугурт[\s\-‐–—]*тред\W*$", re.IGNORECASE)
# Lower case only: an upper-case "ПРЕДЛОЖЕНО ЧЕРЕЗ" is a bugurt's own words.
_CREDIT = re.compile(r"[Пп]редложен[оа]?\s+через\s+@\w+")
# A line of rule characters (3+, or 2+ of `_`/`—`): the admins' divider between bundled
# bugurts or before a note.
_DIVIDER = re.compile(r"^(?:[_\-‐–—=*~]{3,}|[_—]{2,})$")
# An author's or editor's note under a bugurt: it and what follows it go.
_NOTE = re.compile(r"^(?:P\.\s?S\b|PS:|П\.\s?С\.|ПС:|Прим\.?\s*ред)", re.IGNORECASE)
_HASHTAG = re.compile(r"#\w*[^\W\d]\w*(?:@\w+)?")
_VK_MENTION = re.compile(r"\[(?:id|club|public|event)\d+\|([^\]\n]*)\]")
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_.]{2,}")
_TLDS = r"ru|su|рф|ph|me|com|org|net|io|be|ly|tv|gg|info|co|us|to|cc|link|app|site"
_URL = re.compile(
    r"(?:https?://|www\.)\S+"
    rf"|(?<![\w.@])(?:[\w-]+\.)+(?:{_TLDS})(?![\w.])(?:[/?:#]\S*)?",
    re.IGNORECASE,
)
# "Too long a bugurt, read it on Telegraph": the bugurt itself sits behind a link.
_READ_ELSEWHERE = re.compile(r"читайте\s+(?:в|на)\s+(?:телеграф|telegra)", re.IGNORECASE)
# (marker, pattern, replacement): the pattern can only match where the marker occurs.
_LINE_RULES = [
    ("[", _VK_MENTION, r"\1"),
    ("через", _CREDIT, " "),
    (".", _URL, " "),
    ("#", _HASHTAG, " "),
    ("@", _MENTION, " "),
]
_DEDUP_DROP = re.compile(r"[\W_]+")


Line = tuple[str, str]  # (raw, cleaned) text of one line


@dataclass(frozen=True)
class RawPost:
    """What the cleaner needs of a stored wall post."""

    post_id: int
    date: int  # unix seconds
    text: str
    marked_as_ads: bool = False
    is_repost: bool = False


@dataclass
class CorpusResult:
    bugurts: list[str]  # date order, oldest first
    kept_posts: int = 0  # posts that gave at least one bugurt
    dropped: Counter = field(default_factory=Counter)  # reason -> number of posts
    duplicates: int = 0  # bugurts removed as (near) duplicates of an older one

    @property
    def characters(self) -> int:
        return sum(len(b) for b in self.bugurts)


def is_separator(line: str) -> bool:
    """`@`, ` @ `, `@@@`, `//@`, zero-width or combining marks around it: all one separator."""
    stripped = line.strip()
    if stripped == "@":
        return True
    if "@" not in stripped and "＠" not in stripped:
        return False  # most lines: skip the per-character look below
    core = "".join(
        ch for ch in line if unicodedata.category(ch) not in ("Mn", "Me", "Cf")
    ).translate({ord("＠"): "@"})
    core = re.sub(r"[\s/|]+", "", core)
    return bool(core) and set(core) == {"@"}


def clean_line(line: str) -> str:
    """Strip credits, hashtags, links and mentions; normalise spaces (repeated to a fixpoint)."""
    while True:
        before = line
        line = _INVISIBLE.sub("", line)
        # Each pattern runs only where its marker occurs: most lines have none (speed).
        for marker, pattern, replacement in _LINE_RULES:
            if marker in line:
                line = pattern.sub(replacement, line)
        line = _SPACES.sub(" ", line).strip()
        if _SIGNATURE.match(line) or _DIVIDER.match(line):
            line = ""
        if line == before:
            return line


def clean_post(text: str) -> list[str]:
    """The bugurts in one post's text, each in corpus format; [] when there is none."""
    if not isinstance(text, str):
        return []
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [(line, clean_line(line)) for line in text.split("\n")]  # (raw, cleaned)
    bugurts = []
    for piece in _split_at_dividers(lines):
        bugurt = _bugurt_of(piece)
        if bugurt:
            bugurts.append(bugurt)
    return bugurts


def _split_at_dividers(lines: list[Line]) -> list[list[Line]]:
    """Pieces between divider lines; a `P.S.` / `Прим. ред.` note runs to the next divider."""
    pieces: list[list[Line]] = [[]]
    in_note = False
    for raw, cleaned in lines:
        if _DIVIDER.match(_INVISIBLE.sub("", raw).strip()):
            pieces.append([])
            in_note = False
        elif in_note or _NOTE.match(cleaned):
            in_note = True
        else:
            pieces[-1].append((raw, cleaned))
    return pieces


def _bugurt_of(lines: list[Line]) -> str | None:
    """Keep the blank-line blocks that hold `@` steps; drop preambles, notes, signatures."""
    steps: list[list[str]] = []
    for block in _blocks(lines):
        block_steps = [s for s in block if s]  # doubled `@` leaves empty steps
        if len(block_steps) >= 2:  # a block without a separator is a note, not a bugurt
            steps.extend(block_steps)
    # Two steps with words or numbers, one with a word at least: `...` / `...` is no bugurt.
    worded = [s for s in steps if any(ch.isalnum() for line in s for ch in line)]
    lettered = any(ch.isalpha() for s in worded for line in s for ch in line)
    if len(worded) < 2 or not lettered:
        return None
    return LINE_BREAK.join("\n".join(step) for step in steps)


def _blocks(lines: list[Line]) -> list[list[list[str]]]:
    """Blank-line blocks, each a list of steps (cleaned lines between separators).

    A blank line next to a separator does not end a block (`A\n@\n\nB` is one bugurt); a
    line that cleaning empties (a signature, a link, a hashtag line) is skipped.
    """
    blocks: list[list[list[str]]] = [[[]]]
    pending_break = False
    for line, cleaned in lines:
        if is_separator(line) or is_separator(cleaned):
            blocks[-1].append([])
            pending_break = False
        elif cleaned:
            if pending_break and blocks[-1][-1]:
                blocks.append([[]])
            blocks[-1][-1].append(cleaned)
            pending_break = False
        elif not line.strip():
            pending_break = True
    return blocks


def dedup_key(bugurt: str) -> str:
    """Two bugurts are the same if they differ only in case, punctuation and whitespace."""
    return _DEDUP_DROP.sub("", bugurt.lower().replace("ё", "е"))


# Why a post gives no bugurt (the keys of CorpusResult.dropped):
DROP_REASONS = {
    "ad": "marked_as_ads",
    "repost": "a repost (copy_history)",
    "empty": "no text once signature, credit, hashtags and links are gone (photo posts)",
    "link": "no `@` lines, holds a link (the bugurt is on telegra.ph, news links)",
    "no_separator": "no `@` lines: announcements, contests, one-liners",
    "too_short": "`@` lines but fewer than two steps with words",
    "duplicate": "every bugurt in it is a (near) duplicate of an older one",
}


def drop_reason(post: RawPost) -> str:
    """Why a post gives no bugurt (a key of DROP_REASONS other than "duplicate")."""
    if post.marked_as_ads:
        return "ad"
    if post.is_repost:
        return "repost"
    text = post.text if isinstance(post.text, str) else ""
    if not any(clean_line(line) for line in text.split("\n")):
        return "empty"  # photo-only, or only a signature / credit / hashtags
    if not any(is_separator(line) for line in text.split("\n")):
        linked = _URL.search(text) or _READ_ELSEWHERE.search(text)
        return "link" if linked else "no_separator"
    return "too_short"


def build_corpus(posts: Iterable[RawPost]) -> CorpusResult:
    """Bugurts of all posts, date-ordered, first occurrence of each (near) duplicate kept."""
    result = CorpusResult(bugurts=[])
    seen: set[str] = set()
    for post in sorted(posts, key=lambda p: (p.date, p.post_id)):
        bugurts = [] if post.marked_as_ads or post.is_repost else clean_post(post.text)
        if not bugurts:
            result.dropped[drop_reason(post)] += 1
            continue
        fresh = []
        for bugurt in bugurts:
            key = dedup_key(bugurt)
            if key in seen:
                result.duplicates += 1
            else:
                seen.add(key)
                fresh.append(bugurt)
        if fresh:
            result.kept_posts += 1
            result.bugurts.extend(fresh)
        else:
            result.dropped["duplicate"] += 1
    return result
