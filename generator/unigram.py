"""Learned subword units (a sentencepiece unigram model) beside characters (tokenizer.CharVocab).

`--tokenizer unigram` trains one on the training posts only. It is set up so that a post's text
comes back exactly and the post stream keeps the character stream's shape:
- identity normalisation, no dummy prefix, no whitespace folding: decode(encode(post)) == post;
- the `@` line separator "\\n@\\n" and "\\n" are user-defined symbols: a piece never spans a
  line, and a separator is one token (4k units: 2.78 characters a token, against 2.49 when it
  took three); pieces split at spaces (sentencepiece's `▁WORD`);
- byte fallback: a character outside the pieces is written as its UTF-8 bytes, so any text
  encodes (UNK stays banned in sampling and never comes out of encode);
- ids END and UNK are those of tokenizer.py (sentencepiece's eos and unk), no bos or pad.
The trained model's proto bytes are kept inside model.pt and checkpoint.pt (modeldir).
"""

from __future__ import annotations

import random
import re

import sentencepiece as spm

from common.corpus import LINE_BREAK
from generator.tokenizer import END, UNK, Tokenizer

# Units of `--tokenizer unigram` when --vocab-size is not given: 2.78 characters a unit on the
# validation posts (2k: 2.37, 8k: 3.16), and 8k trains at 0.78× the characters a second, its
# output layer doubled (BENCHMARKS.md#decisions)
DEFAULT_VOCAB_SIZE = 4000
SPACE = "\u2581"  # sentencepiece's visible space "▁"
# Characters rarer than this share of the training text get no piece of their own and are
# written as UTF-8 bytes (zalgo marks, one-off emoji: tokenizer.RARE's characters).
CHARACTER_COVERAGE = 0.99995
# Units are learned from at most this many characters of posts, drawn at random (seeded) when a
# corpus holds more: a pretraining mixture of 94M characters took 201 s to learn from on an idle
# core and 22 minutes on a busy one, and the units of a 12M sample of it hardly differ. The
# bugurt corpus (3.5M) is read whole.
UNITS_SAMPLE_CHARS = 12_000_000


class VocabSizeError(ValueError):
    """The corpus cannot give the asked number of units (the CLI says what to pass instead)."""


class Unigram(Tokenizer):
    kind = "unigram"

    def __init__(self, proto: bytes):
        self.proto = proto  # the serialized sentencepiece ModelProto
        self.sp = spm.SentencePieceProcessor(model_proto=proto)
        self.token_bytes = [self._piece_bytes(i) for i in range(self.sp.get_piece_size())]
        # characters with a piece of their own (not only bytes): what `writes` says yes to
        self.alphabet = {ch for i, tb in enumerate(self.token_bytes) if not self.sp.is_byte(i)
                         for ch in tb.decode()}
        self.index = {self.sp.id_to_piece(i): i for i in range(len(self.token_bytes))}

    def _piece_bytes(self, i: int) -> bytes:
        piece = self.sp.id_to_piece(i)
        if self.sp.is_byte(i):  # "<0xD0>"
            return bytes([int(piece[3:5], 16)])
        if self.sp.is_control(i) or self.sp.is_unknown(i):
            return b""
        return piece.replace(SPACE, " ").encode()

    @classmethod
    def train(cls, posts: list[str], vocab_size: int) -> Unigram:
        """A unigram model of `vocab_size` units learned from `posts` (one sentence a post)."""
        proto = _ProtoWriter()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(_sample(posts, UNITS_SAMPLE_CHARS)), model_writer=proto,
                model_type="unigram",
                vocab_size=vocab_size, normalization_rule_name="identity",
                add_dummy_prefix=False, remove_extra_whitespaces=False,
                split_by_whitespace=True, user_defined_symbols=[LINE_BREAK, "\n"],
                byte_fallback=True,
                character_coverage=CHARACTER_COVERAGE, eos_id=END, unk_id=UNK, bos_id=-1,
                pad_id=-1, max_sentence_length=1 << 20, minloglevel=2, num_threads=2)
        except RuntimeError as exc:
            raise VocabSizeError(_size_problem(str(exc), vocab_size)) from None
        return cls(proto.data)

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        """UNK shows as U+FFFD, as do the bytes of a character cut short."""
        table = self.token_bytes
        text = b"".join(b"\xef\xbf\xbd" if i == UNK else table[i] for i in ids)
        return text.decode("utf-8", errors="replace")

    def stored(self) -> dict:
        return {"kind": self.kind, "model": self.proto}

    def writes(self, ch: str) -> bool:
        return ch in self.alphabet

    def shared_ids(self, other: Unigram) -> tuple[list[int], list[int]]:
        both = [(i, self.index[p]) for p, i in other.index.items() if p in self.index]
        return [mine for _, mine in both], [theirs for theirs, _ in both]

    def heal(self, prime: str) -> tuple[list[int], str]:
        """Backs off the prime's last word: from its first piece (the one that starts with a
        space, or follows a line break) the sampler spells the word anew, so it may pick a
        longer piece (`ЖДУ АВТОБУС` → `▁АВТОБУСА`). Pieces never span a word, and the bytes of one
        character never start with a space, so the kept ids end on a character boundary."""
        ids = self.encode(prime)
        cut = len(ids)
        while cut > 0:
            cut -= 1
            piece = self.token_bytes[ids[cut]]
            if piece.endswith(b"\n"):  # "\n" or the "\n@\n" separator: a line starts after it
                cut += 1
                break
            if piece.startswith(b" "):
                break
        kept = self.decode(ids[:cut])
        return ids[:cut], prime[len(kept):]


class _ProtoWriter:
    """The file-like `model_writer` sentencepiece writes the trained proto to."""

    data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def _sample(posts: list[str], chars: int) -> list[str]:
    """All posts when they hold at most `chars` characters, else a seeded random draw of them
    that does (the same draw for the same posts)."""
    if sum(map(len, posts)) <= chars:
        return posts
    picked, total = [], 0
    for post in random.Random(0).sample(posts, len(posts)):
        if total + len(post) > chars:
            break
        picked.append(post)
        total += len(post)
    return picked


def _size_problem(message: str, vocab_size: int) -> str:
    """sentencepiece's size errors as one sentence that says what to pass instead."""
    high = re.search(r"Vocabulary size too high.*<= (\d+)", message)
    if high:
        return (f"the corpus gives at most {high.group(1)} subword units, fewer than "
                f"--vocab-size {vocab_size}: pass a smaller --vocab-size, or --tokenizer char")
    low = re.search(r"smaller than required_chars\. \d+ vs (\d+)", message)
    if low:
        return (f"--vocab-size {vocab_size} is below the {low.group(1)} units the corpus's "
                f"characters and the 256 bytes need: pass a larger --vocab-size")
    return f"sentencepiece could not train on the corpus ({message.splitlines()[0][:200]})"

