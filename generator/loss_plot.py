"""The loss picture of a model directory: its training and validation bits per character
(metrics.jsonl) against the characters trained, drawn into loss.png for the bot's /retrain."""

from __future__ import annotations

import os
from pathlib import Path

from common.atomic import write_atomic
from generator.modeldir import LOSS_PLOT_FILE, read_metrics


def loss_curves(model_dir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """{"train": …, "validation": …}: (characters trained, bits per character) points of the
    metrics. Lines written before the trainer logged `train_bpc` (their `train_loss` was nats
    per token, another unit) give no training point."""
    records = read_metrics(model_dir)
    return {name: [(r["chars"], r[key]) for r in records if r.get(key) is not None]
            for name, key in (("train", "train_bpc"), ("validation", "val_bpc"))}


def plot_losses(model_dir: str | os.PathLike) -> Path | None:
    """loss.png: `loss_curves` drawn on one axis; None (nothing written) with no points."""
    # Imported here: only a retrain draws, and matplotlib would slow every bot's start.
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415
    from matplotlib.figure import Figure  # noqa: PLC0415

    curves = loss_curves(model_dir)
    if not any(curves.values()):
        return None
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for (name, points), style in zip(curves.items(), ({"linewidth": 1, "marker": "."},
                                                      {"marker": "o"}), strict=True):
        if points:
            ax.plot(*zip(*points, strict=True), label=name, **style)
    ax.set_xlabel("characters trained")
    ax.set_ylabel("bits per character")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(model_dir) / LOSS_PLOT_FILE
    write_atomic(path, lambda fh: fig.savefig(fh, format="png"))
    return path
