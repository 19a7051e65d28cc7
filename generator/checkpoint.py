"""The one module that owns the model-directory file format.

A model directory holds:
- `model.pt`      the best weights so far + vocab + model config + info (what `sample`/`eval` load);
- `checkpoint.pt` the latest full training state (weights, optimizer, step, hidden state, RNG
                  states, metrics history) that `train --resume` continues from exactly;
- `novelty.npz`   the quality gate's index of training text (see gate.py);
- `metrics.jsonl` training progress, one JSON object a line.

Both .pt files are dicts tagged with FORMAT and VERSION, written atomically (temp file, fsync,
rename, fsync of the directory) so a crash never leaves half a file, and always loadable on CPU.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from common.cli import UserError

FORMAT = "neurobugurt-char-lstm"
VERSION = 1
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
NOVELTY_FILE = "novelty.npz"
METRICS_FILE = "metrics.jsonl"


def save(path: str | os.PathLike, payload: dict) -> None:
    """Write payload (plain containers + tensors) atomically, tagged with the format version."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX: the directory entry is data of the directory)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load(path: str | os.PathLike) -> dict:
    """Read a file written by save(), on CPU; a clear UserError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: train a model first (python -m generator train)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError) as exc:  # OSError: torch reads past the end of a cut zip archive
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise UserError(
            f"{path} is truncated or not a neurobugurt model file ({reason}): "
            "retrain it or restore it from git"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a neurobugurt model file: point to a model directory")
    if payload.get("version") != VERSION:
        raise UserError(
            f"{path} has format version {payload.get('version')}, this code reads {VERSION}: "
            "retrain the model with this version"
        )
    return payload
