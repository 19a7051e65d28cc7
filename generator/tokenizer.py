"""Tokenizers: the `Tokenizer` interface, its two special ids, and the character tokenizer.

`Tokenizer` is what the trainer, sampler and evaluator use of a vocabulary; `CharVocab` (corpus
characters) is one, generator/unigram.py's `Unigram` (learned subword units, the default) the
other. Both keep ids END and UNK, so the post stream and the sampler's banned symbol are the same
for either.

Posts become one token stream `END post END post END ...`: the blank-line separator of the corpus
format is the single END token ("the post ended"), so sampling knows where to stop, and every post
is predicted from the same END context. Characters rarer than `RARE` of the corpus (zalgo marks,
one-off emoji) map to UNK in `CharVocab`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter

import torch

END, UNK = 0, 1  # token ids of the two symbols that are not text
SPECIALS = 2
RARE = 5e-6  # a character seen fewer than RARE × corpus length times becomes UNK (18 in 3.6M)


class Tokenizer(ABC):
    """What the trainer, sampler, evaluator and bot use of a vocabulary."""

    kind: str  # "char" or "unigram": the --tokenizer that builds it
    token_bytes: list[bytes]  # UTF-8 text of each id; b"" for END and UNK

    def __len__(self) -> int:
        return len(self.token_bytes)

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of a text (every text encodes; what the vocabulary lacks becomes UNK)."""

    @abstractmethod
    def decode(self, ids: list[int]) -> str:
        """Text of token ids; END is never part of a text."""

    @abstractmethod
    def stored(self) -> str | dict:
        """What model.pt keeps of it (modeldir.save_model; modeldir.tokenizer_from reads it)."""

    @abstractmethod
    def writes(self, ch: str) -> bool:
        """Whether the model has learned to write `ch` (the bot warns about primes with others)."""

    @abstractmethod
    def shared_ids(self, other: Tokenizer) -> tuple[list[int], list[int]]:
        """(ids here, ids in other) of the symbols both vocabularies hold, specials included:
        the embedding and output rows a warm start carries over."""

    def encode_posts(self, posts: list[str]) -> torch.Tensor:
        """The training/eval stream of posts: END p1 END p2 ... END, int64 (len,)."""
        ids = [END]
        for post in posts:
            ids.extend(self.encode(post))
            ids.append(END)
        return torch.tensor(ids, dtype=torch.long)

    def normalize_prime(self, prime: str) -> str:
        """Prime text as the corpus writes it: upper case, CRLF → LF, no blank lines."""
        lines = [line.strip() for line in prime.replace("\r\n", "\n").upper().split("\n")]
        return "\n".join(line for line in lines if line)

    def heal(self, prime: str) -> tuple[list[int], str]:
        """(ids the model reads, the prime's tail it must write itself): token healing.

        A prime may end inside a token ("АВТОБУС" of "АВТОБУСА"); reading its last tokens as
        typed would forbid that continuation. The sampler reads the ids and then constrains its
        next tokens to ones that spell the returned tail (sample.py). Characters never split.
        """
        return self.encode(prime), ""


class CharVocab(Tokenizer):
    kind = "char"

    def __init__(self, chars: str):
        self.chars = chars  # the characters of ids SPECIALS, SPECIALS+1, ...
        self.index = {ch: i + SPECIALS for i, ch in enumerate(chars)}
        self.token_bytes = [b""] * SPECIALS + [ch.encode() for ch in chars]

    @classmethod
    def build(cls, posts: list[str]) -> CharVocab:
        counts = Counter()
        for post in posts:
            counts.update(post)
        min_count = max(1, round(RARE * sum(counts.values())))
        return cls("".join(sorted(ch for ch, n in counts.items() if n >= min_count)))

    def stored(self) -> str:
        return self.chars  # the format of every character model directory ever written

    def writes(self, ch: str) -> bool:
        return ch in self.index

    def shared_ids(self, other: CharVocab) -> tuple[list[int], list[int]]:
        both = [ch for ch in other.chars if ch in self.index]
        specials = list(range(SPECIALS))
        mine, theirs = [self.index[ch] for ch in both], [other.index[ch] for ch in both]
        return specials + mine, specials + theirs

    def encode(self, text: str) -> list[int]:
        get = self.index.get
        return [get(ch, UNK) for ch in text]

    def decode(self, ids: list[int]) -> str:
        """UNK shows as U+FFFD."""
        out = []
        for i in ids:
            if i >= SPECIALS:
                out.append(self.chars[i - SPECIALS])
            elif i == UNK:
                out.append("\ufffd")
        return "".join(out)
