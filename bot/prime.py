"""A user's text as the beginning of a post: cleaned, upper-cased, checked against the model."""

from __future__ import annotations

import unicodedata

from generator.sample import Generator

MAX_PRIME_CHARS = 150  # the quality gate refuses lines over 200: leave the model some room


def clean_prime(text: str) -> str:
    """The user's text as a post beginning: printable characters only, upper case like bugurts."""
    kept = "".join(
        ch for ch in text if ch == "\n" or not unicodedata.category(ch).startswith("C")
    )
    lines = [" ".join(line.split()) for line in kept.split("\n")]
    return "\n".join(line for line in lines if line).upper()


def unknown_chars(generator: Generator, text: str) -> list[str]:
    """Characters of `text` outside the model's vocabulary (line breaks are structure)."""
    writes = generator.vocab.writes
    return sorted({ch for ch in text if ch != "\n" and not writes(ch)})


def writable(generator: Generator, text: str) -> tuple[str, list[str]]:
    """(the cleaned beginning without the characters the model has no symbol for, those)."""
    prime = clean_prime(text)
    unknown = unknown_chars(generator, prime)
    if unknown:  # emoji and the like: the model has no symbol for them, its posts would fail
        prime = clean_prime("".join(ch for ch in prime if ch not in unknown))
    return prime, unknown
