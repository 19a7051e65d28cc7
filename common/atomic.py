"""The one way this project replaces a file: all of it or none of it, and durably.

`write_atomic` writes a temp file beside the target, flushes and fsyncs it, renames it over the
target (`os.replace`, atomic on POSIX) and fsyncs the directory, so neither a crash nor a power
loss leaves half a file or a rename that did not reach the disk: readers see the old file or the
new one. Every file the project writes in place of another goes through it (corpus and its split
files, every file of a model directory).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from common.cli import disk_full


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Replace `path` with what `write(fh)` puts into a binary file; the old file stays when
    `write` raises (the temp file is removed) or the process dies before the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fixed temp name: a run killed mid-write leaves one stale file, overwritten next time.
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        full = disk_full(exc)
        if full is not None and full.filename is None:  # name the file the disk refused
            raise OSError(full.errno, full.strerror, str(path)) from exc
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    write_atomic(path, lambda fh: fh.write(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX: the directory entry is data of the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
