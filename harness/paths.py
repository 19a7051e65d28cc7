"""Where the repository and the real data of ../shared/data are; skip cleanly without the data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
REAL_WALL = SHARED_DATA / "bugurtthread" / "messages-2020-2022.jsonl"  # the real posts, JSONL


def shared_file(relative: str) -> Path:
    """A file of ../shared/data, or skip the test: a user's fresh clone has no shared data."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs {path} (shared data, present in CI only)")
    return path
