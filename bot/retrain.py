"""Admin retraining: scrape → train (separate process, time budget) → evaluate → decide.

Training fine-tunes the served model on the fresh corpus (`--init-from`, `bot.retrain_warm_start`):
a from-scratch run of a few minutes would rarely beat weights trained for hours.

Each stage is a real command run as a child process (`python -m scraper`, `python -m generator
train/eval`), so a crash or a memory blow-up in training cannot take the bot down, and the bot
keeps answering with the served model meanwhile. Progress is one chat message edited in place,
read from the trainer's `metrics.jsonl`. The new model is only proposed for serving when its
validation bits per character beat the served model's on the same fresh validation split; the
caller swaps and remembers the previous model for /rollback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from common.config import Config
from common.corpus import split_paths
from generator.modeldir import MODEL_FILE, read_metrics

if TYPE_CHECKING:
    from bot.runner import Chat

log = logging.getLogger(__name__)


class RetrainFailed(Exception):
    """A stage failed; the message says which and why (the served model stays)."""


@dataclass(frozen=True)
class Outcome:
    model_dir: Path
    new_bpc: float
    old_bpc: float

    @property
    def better(self) -> bool:
        return self.new_bpc < self.old_bpc


class Retrainer:
    def __init__(
        self,
        config: Config,
        config_path: str,
        models_dir: Path,
        train_args: tuple[str, ...] = (),
        poll_seconds: float = 3.0,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.models_dir = models_dir
        self.train_args = train_args  # extra `generator train` options (tests: a tiny model)
        self.poll_seconds = poll_seconds  # between progress edits; Telegram limits edit rates
        self.stage = ""
        self.last_result = "none since start"
        self._procs: set[asyncio.subprocess.Process] = set()
        self._progress = ""

    @property
    def running(self) -> bool:
        return bool(self.stage)

    def describe(self) -> str:
        return f"running: {self._progress or self.stage}" if self.running else self.last_result

    async def run(self, chat: Chat, served_model_dir: str) -> Outcome | None:
        """The whole retrain, reporting into one edited message; the outcome, None on failure."""
        self.stage = "starting"
        message = await chat.say("Retrain: starting…")
        try:
            outcome = await self._stages(chat, message, served_model_dir)
        except RetrainFailed as exc:
            self.last_result = f"failed at {self.stage}: {exc}"
            await chat.edit(message, f"Retrain failed at {self.stage}: {exc}\n"
                            "The served model is unchanged.")
            log.error("retrain failed at %s: %s", self.stage, exc)
            return None
        finally:
            self.stage = ""
            self._progress = ""
        verdict = (
            "better: now serving it" if outcome.better else "not better: keeping the served model"
        )
        self.last_result = (
            f"val bpc {outcome.new_bpc:.3f} vs {outcome.old_bpc:.3f}, {verdict}"
        )
        done = f"Retrain done. New model {outcome.model_dir}: {self.last_result}."
        await chat.edit(message, done)
        png = outcome.model_dir / "loss.png"
        if png.exists():
            await chat.photo(png, "Bits per character while training: train and validation")
        return outcome

    async def _stages(self, chat: Chat, message: object, served_model_dir: str) -> Outcome:
        corpus = Path(self.config.corpus.path)
        if self.config.vk.token:
            await self._set(chat, message, "scrape", "scraping new posts")
            await self._run(["scraper", "--config", self.config_path])
        else:
            log.info("retrain: vk.token is empty, training on the existing corpus")
        self.stage = "corpus check"
        val_path = split_paths(corpus)[1]
        if not corpus.exists() or not val_path.exists():
            raise RetrainFailed(f"no corpus at {corpus}: set vk.token so the scrape can make one")
        out = self.models_dir / time.strftime("%Y%m%d-%H%M%S")
        while out.exists():
            out = out.with_name(out.name + "-1")
        await self._set(chat, message, "train", "training 0%")
        train = [
            "generator", "train", "--config", self.config_path, "--corpus", str(corpus),
            "--out", str(out), "--minutes", f"{self.config.bot.retrain_minutes:g}",
            *self._warm_start(served_model_dir), *self.train_args,
        ]
        minutes = self.config.bot.retrain_minutes
        await self._run(train, timeout=minutes * 120 + 300, progress=(chat, message, out))
        await self._set(chat, message, "evaluate", "evaluating both models")
        # Both on the fresh validation split, side by side (each is its own process).
        new_bpc, old_bpc = await asyncio.gather(
            self._eval(out, val_path), self._eval(Path(served_model_dir), val_path)
        )
        await asyncio.to_thread(plot_losses, out / "metrics.jsonl", out / "loss.png")
        return Outcome(out, new_bpc, old_bpc)

    def _warm_start(self, served_model_dir: str) -> list[str]:
        """`--init-from` the served model when configured and it has weights to start from."""
        served = Path(served_model_dir) / MODEL_FILE
        if self.config.bot.retrain_warm_start and served.is_file():
            return ["--init-from", served_model_dir]
        return []

    async def _set(self, chat: Chat, message: object, stage: str, text: str) -> None:
        self.stage = stage
        self._progress = text
        await chat.edit(message, f"Retrain: {text}")

    async def _eval(self, model_dir: Path, val_path: Path) -> float:
        out = await self._run(
            ["generator", "eval", "--config", self.config_path, "--model", str(model_dir),
             "--text", str(val_path)]
        )
        lines = out.strip().splitlines()
        if not lines or not lines[-1].startswith("bits_per_char:"):
            raise RetrainFailed(f"eval of {model_dir} printed no bits_per_char line")
        return float(lines[-1].split(":", 1)[1])

    async def _run(
        self, args: list[str], timeout: float = 3600, progress: tuple | None = None
    ) -> str:
        """Run `python -m ARGS`; its stdout, or RetrainFailed with its last stderr line."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        self._procs.add(proc)
        done = asyncio.ensure_future(proc.communicate())
        deadline = time.monotonic() + timeout
        try:
            while not done.done():
                await asyncio.wait({done}, timeout=self.poll_seconds)
                if progress is not None and not done.done():
                    await self._report(*progress)
                if time.monotonic() > deadline:
                    proc.kill()
                    raise RetrainFailed(f"{args[0]} ran past {timeout:.0f} s and was stopped")
            stdout, stderr = done.result()
        finally:
            self._procs.discard(proc)
        if proc.returncode != 0:
            tail = stderr.decode("utf-8", "replace").strip().splitlines()
            reason = tail[-1] if tail else f"exit status {proc.returncode}"
            raise RetrainFailed(f"python -m {' '.join(args[:2])}: {reason}")
        return stdout.decode("utf-8", "replace")

    async def _report(self, chat: Chat, message: object, out: Path) -> None:
        records = read_metrics(out / "metrics.jsonl")
        if not records:
            return
        last = records[-1]
        bpcs = [r["val_bpc"] for r in records if r.get("val_bpc") is not None]
        text = f"training {100 * float(last.get('progress') or 0):.0f}%"
        if last.get("chars_per_sec"):
            text += f", {float(last['chars_per_sec']):,.0f} chars/s"
        if bpcs:
            text += f", val bpc {bpcs[-1]:.3f}"
        if text != self._progress:
            self._progress = text
            await chat.edit(message, f"Retrain: {text}")

    def prune(self, keep: set[str]) -> list[Path]:
        """Delete earlier retrains' model dirs except `keep` (served, rollback, latest)."""
        if not self.models_dir.is_dir():
            return []
        kept = {Path(k).resolve() for k in keep | {self.config.generator.model_dir} if k}
        removed = [
            path for path in sorted(self.models_dir.iterdir())
            if path.is_dir() and path.resolve() not in kept
        ]
        for path in removed:
            shutil.rmtree(path, ignore_errors=True)
            log.info("removed old model %s", path)
        return removed

    async def stop(self) -> None:
        """Kill the children of a retrain when the bot shuts down."""
        for proc in list(self._procs):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()


def plot_losses(metrics_path: Path, png_path: Path) -> Path | None:
    """Train and validation bits per character against characters trained, as a PNG."""
    records = read_metrics(metrics_path)
    if not records:
        return None
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    # train_loss is cross-entropy in nats per character: / ln 2 puts it in bits, like val_bpc.
    train = [
        (r["chars"], r["train_loss"] / math.log(2))
        for r in records
        if r.get("train_loss") is not None
    ]
    val = [(r["chars"], r["val_bpc"]) for r in records if r.get("val_bpc") is not None]
    if train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1, marker=".")
    if val:
        ax.plot(*zip(*val, strict=True), label="validation", marker="o")
    ax.set_xlabel("characters trained")
    ax.set_ylabel("bits per character")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    return png_path
