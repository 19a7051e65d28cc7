"""The one module that reads and writes the files of a model directory.

A model directory holds:
- `model.pt`      the best weights so far + vocab + model config + info + primer (what `sample`
                  and `eval` load, and what `--init-from` starts from); "vocab" is the
                  tokenizer's stored form: the characters (a str, as in every char model
                  directory), or {"kind": "unigram", "model": sentencepiece proto bytes};
- `checkpoint.pt` the latest full training state (weights, optimizer, step, hidden state, RNG
                  states, the same "vocab") that `train --resume` continues from exactly;
- `novelty.npz`   the quality gate's index of the training text (its filters: novelty.py);
- `metrics.jsonl` training progress, one JSON object a line, appended as training goes;
- `loss.png`      the picture of those metrics (loss_plot.py) that the bot's /retrain shows;
- `editor_ranker.json` the bot's ranker learnt from editors' and readers' judgements for this
                  model (bot/ranker.py: its weights and held-out accuracy), when one was fitted.
- `starter.txt`   a starter feed: posts `generator feed --save` made for this model, in the
                  sample format, that a bot's pool hands out first (bot/pool.py), so that a
                  fresh bot, or a model just swapped in, has ready posts at once.

Any other file in a model directory is left alone and never read.

Each file written here replaces its old version through `common.atomic.write_atomic`, so a crash
never leaves half of one; metrics.jsonl also grows by appends (see append_metrics).
The .pt files are dicts tagged with FORMAT (or OLD_FORMAT) and VERSION and always load on CPU.
A new kind of file (a second model) gets its name and its save/load pair here, beside these.

Problems with a directory raise `ModelDirError`; it is a `UserError` because the fix is the
user's (train, retrain, point elsewhere), so every command's `run_cli`, the bot's start-up
included, shows it as one line.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from common.atomic import write_atomic, write_bytes_atomic, write_text_atomic
from common.cli import UserError
from generator.model import LSTMModel, ModelConfig
from generator.novelty import NoveltyIndex
from generator.tokenizer import CharVocab, Tokenizer
from generator.unigram import Unigram

# The tag of every .pt file written now. Files tagged OLD_FORMAT, written when every model read
# characters (the bundled model among them, a subword model), load as well: the payload is the
# same, only the name was wrong.
FORMAT = "neurobugurt-lstm"
OLD_FORMAT = "neurobugurt-char-lstm"
VERSION = 1
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
NOVELTY_FILE = "novelty.npz"
METRICS_FILE = "metrics.jsonl"
LOSS_PLOT_FILE = "loss.png"
RANKER_FILE = "editor_ranker.json"
STARTER_FILE = "starter.txt"


class ModelDirError(UserError):
    """A model directory, or a file it needs, is missing or unreadable."""


class ModelFormatError(ModelDirError):
    """A file is there but not in this code's format: another program's, cut short, or written
    by a version of this code whose format this one does not read."""


# ----- model.pt -----
def save_model(model_dir: str | os.PathLike, model: LSTMModel, vocab: str | dict, info: dict,
               primer: list[int] | None = None, dtype: torch.dtype = torch.float32) -> None:
    """model.pt: weights in `dtype` (bf16 halves the file), vocab (`Tokenizer.stored()`),
    config, info, primer.

    `primer` is the tail of the training stream: sampling reads it first, so it starts from the
    state the model has at a text boundary in training (never the untrained all-zero state).
    """
    weights = {k: v.detach().to("cpu", dtype) for k, v in model.state_dict().items()}
    _save_pt(Path(model_dir) / MODEL_FILE, {
        "kind": "model", "model_config": model.config.to_dict(), "vocab": vocab,
        "model": weights, "info": info, "primer": primer or []})


def read_model(model_dir: str | os.PathLike) -> dict:
    """model.pt as stored: "model" (weights), "vocab", "model_config", "info", "primer"."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelDirError(f"model directory {model_dir} not found: train one or fix the path")
    return _load_pt(model_dir / MODEL_FILE)


def load_model(model_dir: str | os.PathLike) -> tuple[LSTMModel, Tokenizer, dict]:
    """(model in fp32 eval mode on CPU, tokenizer, info + "primer" tokens) of a model directory."""
    payload = read_model(model_dir)
    tokenizer = tokenizer_of(payload, Path(model_dir) / MODEL_FILE)
    model = LSTMModel(ModelConfig(**payload["model_config"]))
    model.load_state_dict({k: v.float() for k, v in payload["model"].items()})
    model.eval()
    info = dict(payload.get("info", {}))
    info["primer"] = list(payload.get("primer", []))
    return model, tokenizer, info


def tokenizer_from(stored: str | dict) -> Tokenizer:
    """The tokenizer of model.pt / checkpoint.pt's "vocab" (Tokenizer.stored); ValueError
    for another form."""
    if isinstance(stored, str):  # every char model directory since the first
        return CharVocab(stored)
    if isinstance(stored, dict) and stored.get("kind") == "unigram":
        return Unigram(stored["model"])
    raise ValueError(f"unknown tokenizer {str(stored)[:60]}")


def tokenizer_of(payload: dict, path: str | os.PathLike) -> Tokenizer:
    """The tokenizer of a loaded model.pt or checkpoint.pt (`path`, for the error)."""
    try:
        return tokenizer_from(payload["vocab"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: a bad proto
        raise ModelFormatError(f"{path} holds no readable tokenizer ({_reason(exc)}): "
                               "retrain the model") from None


# ----- checkpoint.pt -----
def save_checkpoint(model_dir: str | os.PathLike, state: dict) -> None:
    """checkpoint.pt: the trainer's full state (plain containers and tensors)."""
    _save_pt(Path(model_dir) / CHECKPOINT_FILE, {"kind": "train", **state})


def load_checkpoint(model_dir: str | os.PathLike) -> dict:
    return _load_pt(Path(model_dir) / CHECKPOINT_FILE)


def holds_training(model_dir: str | os.PathLike) -> bool:
    """Whether a run has written weights here (a new run must not overwrite them)."""
    return any((Path(model_dir) / name).exists() for name in (MODEL_FILE, CHECKPOINT_FILE))


# ----- novelty.npz -----
def save_novelty(model_dir: str | os.PathLike, index: NoveltyIndex) -> None:
    write_atomic(Path(model_dir) / NOVELTY_FILE, lambda fh: np.savez(fh, **index.to_arrays()))


def load_novelty(model_dir: str | os.PathLike) -> NoveltyIndex:
    path = Path(model_dir) / NOVELTY_FILE
    if not path.exists() and (Path(model_dir) / MODEL_FILE).is_file():
        raise ModelDirError(f"{model_dir} has weights but no {NOVELTY_FILE}: a base model "
                            "(generator export --base) is for fine-tuning, not sampling; train "
                            f"from it with --init-from {model_dir}")
    try:
        with np.load(path) as arrays:
            return NoveltyIndex.from_arrays(arrays)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ModelDirError(f"{path} is missing or unreadable ({_reason(exc)}): retrain the model"
                            ) from None


# ----- editor_ranker.json -----
def save_ranker(model_dir: str | os.PathLike, ranker: dict) -> None:
    """The bot's judgement-learnt ranker (a JSON object) beside the model it ranks for."""
    try:
        write_text_atomic(Path(model_dir) / RANKER_FILE, json.dumps(ranker, indent=1) + "\n")
    except OSError as exc:
        raise ModelDirError(f"cannot write {RANKER_FILE} into {model_dir}: {_reason(exc)}"
                            " (make the model directory writable)") from None


def load_ranker(model_dir: str | os.PathLike) -> dict | None:
    """The stored ranker, or None when none was fitted (or its file cannot be read: the bot
    then ranks by likelihood, as without one)."""
    try:
        return json.loads((Path(model_dir) / RANKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ranker_mtime(model_dir: str | os.PathLike) -> float | None:
    """When the stored ranker was last written (None: none), to notice another process's fit."""
    try:
        return (Path(model_dir) / RANKER_FILE).stat().st_mtime
    except OSError:
        return None


# ----- starter.txt -----
def save_starter(model_dir: str | os.PathLike, posts: list[str]) -> None:
    write_text_atomic(Path(model_dir) / STARTER_FILE, "".join(p + "\n\n" for p in posts))


def load_starter(model_dir: str | os.PathLike) -> list[str]:
    """The starter feed's posts, in order; none when the directory has no (readable) one."""
    try:
        text = (Path(model_dir) / STARTER_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [post.strip("\n") for post in text.split("\n\n") if post.strip()]


# ----- metrics.jsonl -----
def append_metrics(model_dir: str | os.PathLike, record: dict) -> None:
    """One progress line. An append, not a replace: a reader polling the file while training
    runs sees every finished line, and a line cut short by a kill is skipped by read_metrics and
    dropped by trim_metrics on resume."""
    with open(Path(model_dir) / METRICS_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def read_metrics(model_dir: str | os.PathLike) -> list[dict]:
    """The progress records of a model directory's metrics.jsonl so far; a missing file is no
    records, a half-written last line is skipped."""
    try:
        lines = (Path(model_dir) / METRICS_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def trim_metrics(model_dir: str | os.PathLike, step: int) -> None:
    """Drop progress lines written after the checkpoint a resumed run restarts from."""
    path = Path(model_dir) / METRICS_FILE
    if path.exists():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if _step_of(ln) <= step]
        write_text_atomic(path, "".join(ln + "\n" for ln in lines))


def clear_metrics(model_dir: str | os.PathLike) -> None:
    """Forget the progress lines of a run killed before its first checkpoint."""
    (Path(model_dir) / METRICS_FILE).unlink(missing_ok=True)


def _step_of(line: str) -> float:
    """The step of a metrics line; a line cut short by a crash counts as past any checkpoint."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


# ----- the directory as a whole -----
SERVING_EXTRAS = (NOVELTY_FILE, METRICS_FILE, STARTER_FILE)
BASE_EXTRAS = (METRICS_FILE,)  # a base is fine-tuned from, never served: no novelty index


def copy_extras(src: str | os.PathLike, dst: str | os.PathLike,
                names: tuple[str, ...] = SERVING_EXTRAS) -> None:
    """Copy the files `names` of `src` that exist into `dst` (export writes model.pt itself):
    by default the novelty index and metrics a served model needs."""
    for name in names:
        if (Path(src) / name).exists():
            write_bytes_atomic(Path(dst) / name, (Path(src) / name).read_bytes())


# ----- the .pt container -----
def _save_pt(path: Path, payload: dict) -> None:
    write_atomic(path, lambda fh: torch.save({"format": FORMAT, "version": VERSION, **payload}, fh))


def _load_pt(path: Path) -> dict:
    """A file written by _save_pt, on CPU; ModelDirError / ModelFormatError for anything else."""
    if not path.is_file():
        raise ModelDirError(f"{path} not found: train a model first (python -m generator train)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError) as exc:  # OSError: torch reads past the end of a cut zip archive
        raise ModelFormatError(
            f"{path} is truncated or not a neurobugurt model file ({_reason(exc)}): "
            "retrain it or restore it from git"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") not in (FORMAT, OLD_FORMAT):
        raise ModelFormatError(
            f"{path} is not a neurobugurt model file: point to a model directory")
    if payload.get("version") != VERSION:
        raise ModelFormatError(
            f"{path} has format version {payload.get('version')}, this code reads {VERSION}: "
            "retrain the model with this version"
        )
    return payload


def _reason(exc: Exception) -> str:
    """The first line of an exception's message, short enough for a one-line error."""
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
