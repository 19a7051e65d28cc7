"""Character vocabulary: corpus characters plus an end-of-post and an unknown symbol.

Posts become one token stream `END post END post END ...`: the blank-line separator of the corpus
format is the single END token ("the post ended"), so sampling knows where to stop, and every post
is predicted from the same END context. Characters rarer than `RARE` of the corpus (zalgo marks,
one-off emoji) map to UNK.
"""

from __future__ import annotations

from collections import Counter

import torch

END, UNK = 0, 1  # token ids of the two symbols that are not characters
SPECIALS = 2
RARE = 5e-6  # a character seen fewer than RARE × corpus length times becomes UNK (18 in 3.6M)


class Vocab:
    def __init__(self, chars: str):
        self.chars = chars  # the characters of ids SPECIALS, SPECIALS+1, ...
        self.index = {ch: i + SPECIALS for i, ch in enumerate(chars)}

    @classmethod
    def build(cls, posts: list[str]) -> Vocab:
        counts = Counter()
        for post in posts:
            counts.update(post)
        min_count = max(1, round(RARE * sum(counts.values())))
        return cls("".join(sorted(ch for ch, n in counts.items() if n >= min_count)))

    def __len__(self) -> int:
        return len(self.chars) + SPECIALS

    def shared_ids(self, other: Vocab) -> tuple[list[int], list[int]]:
        """(ids here, ids in other) of the symbols both vocabularies hold, specials included."""
        both = [ch for ch in other.chars if ch in self.index]
        specials = list(range(SPECIALS))
        mine, theirs = [self.index[ch] for ch in both], [other.index[ch] for ch in both]
        return specials + mine, specials + theirs

    def encode(self, text: str) -> list[int]:
        get = self.index.get
        return [get(ch, UNK) for ch in text]

    def encode_posts(self, posts: list[str]) -> torch.Tensor:
        """The training/eval stream of posts: END p1 END p2 ... END, int64 (len,)."""
        ids = [END]
        for post in posts:
            ids.extend(self.encode(post))
            ids.append(END)
        return torch.tensor(ids, dtype=torch.long)

    def decode(self, ids: list[int]) -> str:
        """Text of character ids; UNK shows as U+FFFD, END is never part of a text."""
        out = []
        for i in ids:
            if i >= SPECIALS:
                out.append(self.chars[i - SPECIALS])
            elif i == UNK:
                out.append("\ufffd")
        return "".join(out)

    def normalize_prime(self, prime: str) -> str:
        """Prime text as the corpus writes it: upper case, CRLF → LF, no blank lines."""
        lines = [line.strip() for line in prime.replace("\r\n", "\n").upper().split("\n")]
        return "\n".join(line for line in lines if line)
