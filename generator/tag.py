"""The tag every published post ends with, on a line of its own."""

from __future__ import annotations

TAG = "#neurobugurt"


def finish(text: str) -> str:
    """The published form: the post, then the tag on its own last line."""
    return f"{text}\n{TAG}"
