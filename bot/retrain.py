"""Admin retraining, one job: scrape → train (separate process, time budget) → evaluate → swap
→ samples → prune.

Training fine-tunes the served model on the fresh corpus (`--init-from`, `bot.retrain_warm_start`):
a from-scratch run of a few minutes would rarely beat weights trained for hours.

Each stage is a real command run as a child process (`python -m scraper`, `python -m generator
train/eval`), so a crash or a memory blow-up in training cannot take the bot down, and the bot
keeps answering with the served model meanwhile. Progress is one chat message edited in place,
read from the trainer's `metrics.jsonl`. The new model is served only when its validation bits
per character beat the served model's on the same fresh validation split.

`RetrainJob.start` marks the job running before it returns, and the flag stays set until the
last step (pruning) is over, so a second /retrain is refused for the whole run. Any exception
ends the run with one failure line in the progress message (or a new message once that one
shows the result) and in the log; what was already done (a swap) is said, never undone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from bot import texts
from bot.chat import Chat
from bot.leader import ProcessLock
from bot.model_slot import ModelSlot
from bot.ratings import Ratings
from common.config import Config
from common.corpus import parse_posts, split_paths
from generator.modeldir import MODEL_FILE, plot_losses, read_metrics

log = logging.getLogger(__name__)
SAMPLES = 3  # posts shown from the trained model at the end


class RetrainFailed(Exception):
    """A stage failed in an expected way; the message says which and why."""


@dataclass(frozen=True)
class Outcome:
    model_dir: Path
    new_bpc: float
    old_bpc: float

    @property
    def better(self) -> bool:
        return self.new_bpc < self.old_bpc


class RetrainJob:
    def __init__(
        self,
        config: Config,
        config_path: str,
        slot: ModelSlot,
        ratings: Ratings,
        models_dir: Path,
        train_args: tuple[str, ...] = (),
        poll_seconds: float = 3.0,
        pause_pool: Callable[[], AbstractContextManager] = nullcontext,
        *,
        lock: ProcessLock,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.slot = slot  # the served model: evaluated against, swapped when beaten
        self.ratings = ratings  # the bandit picks the samples' temperature
        self.models_dir = models_dir
        self.train_args = train_args  # extra `generator train` options (tests: a tiny model)
        self.poll_seconds = poll_seconds  # between progress edits; Telegram limits edit rates
        self.pause_pool = pause_pool  # held while training and evaluating
        self.lock = lock  # held for the whole run: one retrain across the bot's processes
        self.stage = ""
        self.last_result = "none since start"
        self._task: asyncio.Task | None = None
        self._procs: set[asyncio.subprocess.Process] = set()
        self._progress = ""
        self._rng = random.Random()

    @property
    def running(self) -> bool:
        return self._task is not None

    def describe(self) -> str:
        return f"running: {self._progress or self.stage}" if self.running else self.last_result

    def start(self, chat: Chat) -> bool:
        """Start a retrain reporting to `chat`; False (nothing started) if one is running, here
        or in another process sharing the database."""
        if self._task is not None or not self.lock.try_take():
            return False
        self.stage = "starting"
        self._task = asyncio.create_task(self._run(chat))
        return True

    async def wait(self) -> None:
        """Wait for a running retrain to end (it never raises)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    async def stop(self) -> None:
        """Cancel a running retrain and kill its child processes (the bot shuts down)."""
        for proc in list(self._procs):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})

    async def _run(self, chat: Chat) -> None:
        """The whole retrain; every exception ends here as one message to the admin."""
        message: object = None
        final = False  # the progress message shows the result: later news gets its own message
        swapped: str | None = None
        try:
            message = await chat.say(texts.RETRAIN_STARTING)
            served = self.slot.model_dir
            outcome = await self._stages(chat, message, served)
            self.stage, self._progress = "swap", ""
            if outcome.better:
                await self.slot.serve(str(outcome.model_dir))
                swapped = str(outcome.model_dir)
            self.last_result = texts.retrain_result(outcome.new_bpc, outcome.old_bpc, swapped)
            await chat.edit(message, texts.retrain_done(outcome.model_dir, self.last_result))
            final = True
            self.stage, self._progress = "samples", ""
            png = await asyncio.to_thread(plot_losses, outcome.model_dir)
            if png is not None:
                await chat.photo(png, texts.RETRAIN_PLOT)
            posts = await self._samples(outcome.model_dir, swapped is not None)
            await chat.say(texts.retrain_samples(posts, swapped))
            self.stage, self._progress = "prune", ""
            keep = {self.slot.model_dir, self.slot.previous() or "", str(outcome.model_dir),
                    self.config.generator.model_dir}  # served, rollback, latest, configured
            await asyncio.to_thread(prune, self.models_dir, keep)
        except Exception as exc:  # noqa: BLE001 (the edge of a background task: report, log)
            reason = str(exc) if isinstance(exc, RetrainFailed) else f"{type(exc).__name__}: {exc}"
            if final:
                self.last_result += f"; then failed at {self.stage}: {reason}"
            else:
                self.last_result = f"failed at {self.stage}: {reason}"
            log.error("retrain failed at %s: %s", self.stage, reason,
                      exc_info=not isinstance(exc, RetrainFailed))
            await self._tell_failure(chat, message, final, reason, swapped)
        finally:
            self.stage = ""
            self._progress = ""
            self._task = None
            self.lock.release()

    async def _tell_failure(
        self, chat: Chat, message: object, final: bool, reason: str, swapped: str | None
    ) -> None:
        text = texts.retrain_failed(self.stage, reason, swapped)
        try:
            if message is None or final:
                await chat.say(text)
            else:
                await chat.edit(message, text)
        except Exception:  # noqa: BLE001 (the chat itself fails: the log has it)
            log.exception("could not tell the admin that the retrain failed")

    async def _stages(self, chat: Chat, message: object, served_model_dir: str) -> Outcome:
        corpus = Path(self.config.corpus.path)
        if self.config.vk.token:
            await self._set(chat, message, "scrape", texts.RETRAIN_SCRAPING)
            await self._run_child(["scraper", "--config", self.config_path])
        else:
            log.info("retrain: vk.token is empty, training on the existing corpus")
        self.stage = "corpus check"
        val_path = split_paths(corpus)[1]
        if not corpus.exists():
            raise RetrainFailed(texts.retrain_no_corpus(corpus))
        if not val_path.exists():
            raise RetrainFailed(texts.retrain_no_split(val_path, self.config_path))
        out = self.models_dir / time.strftime("%Y%m%d-%H%M%S")
        while out.exists():
            out = out.with_name(out.name + "-1")
        await self._set(chat, message, "train", texts.retrain_training(0.0))
        train = [
            "generator", "train", "--config", self.config_path, "--corpus", str(corpus),
            "--out", str(out), "--minutes", f"{self.config.bot.retrain_minutes:g}",
            *self._warm_start(served_model_dir), *self.train_args,
        ]
        minutes = self.config.bot.retrain_minutes
        with self.pause_pool():  # training gets the cores the pool worker would use
            await self._run_child(train, timeout=minutes * 120 + 300,
                                  progress=(chat, message, out))
            await self._set(chat, message, "evaluate", texts.RETRAIN_EVALUATING)
            # Both on the fresh validation split, side by side (each is its own process).
            new_bpc, old_bpc = await asyncio.gather(
                self._eval(out, val_path), self._eval(Path(served_model_dir), val_path)
            )
        return Outcome(out, new_bpc, old_bpc)

    async def _samples(self, model_dir: Path, served: bool) -> list[str]:
        """SAMPLES posts of the new model. A served one samples in the bot's sampling thread,
        queued with the users; a rejected one in a child process, so that sampling a model
        nobody asked for never holds up the users' queue."""
        temperature = self.ratings.choose_temperature(self.config.bot.temperatures, self._rng)
        if served:
            return await self.slot.generate(None, temperature, n=SAMPLES)
        try:
            out = await self._run_child(
                ["generator", "sample", "--config", self.config_path, "--model", str(model_dir),
                 "-n", str(SAMPLES), "--temperature", f"{temperature:g}", "--threads", "1"])
        except RetrainFailed as exc:  # `sample` fails when no post passes the gate
            log.info("retrain: the rejected model wrote no post (%s)", exc)
            return []
        return parse_posts(out)

    def _warm_start(self, served_model_dir: str) -> list[str]:
        """`--init-from` the served model when configured and it has weights to start from."""
        served = Path(served_model_dir) / MODEL_FILE
        if self.config.bot.retrain_warm_start and served.is_file():
            return ["--init-from", served_model_dir]
        return []

    async def _set(self, chat: Chat, message: object, stage: str, text: str) -> None:
        self.stage = stage
        self._progress = text
        await self._show(chat, message, text)

    @staticmethod
    async def _show(chat: Chat, message: object, text: str) -> None:
        """Edit the progress message; one the chat cannot take (the platform unreachable) is
        skipped with a log line: progress is news, the run goes on (its end is not skipped)."""
        try:
            await chat.edit(message, texts.retrain_progress(text))
        except Exception as exc:  # noqa: BLE001 (whatever the platform raised)
            log.warning("retrain: progress %r not shown (%s); going on", text, exc)

    async def _eval(self, model_dir: Path, val_path: Path) -> float:
        out = await self._run_child(
            ["generator", "eval", "--config", self.config_path, "--model", str(model_dir),
             "--text", str(val_path)]
        )
        lines = out.strip().splitlines()
        if not lines or not lines[-1].startswith("bits_per_char:"):
            raise RetrainFailed(f"eval of {model_dir} printed no bits_per_char line")
        return float(lines[-1].split(":", 1)[1])

    async def _run_child(
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
                    raise RetrainFailed(f"{args[0]} ran past {timeout:.0f} s and was stopped")
            stdout, stderr = done.result()
        finally:
            self._procs.discard(proc)
            if proc.returncode is None:  # stopped early (time out, a failed progress edit)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(Exception):
                    await done  # reap it
        if proc.returncode != 0:
            tail = stderr.decode("utf-8", "replace").replace("\r", "\n").strip().splitlines()
            # the command's own "error: ..." line (a progress bar may redraw itself after it)
            errors = [line[line.index("error: "):] for line in tail if "error: " in line]
            reason = (errors or tail or [f"exit status {proc.returncode}"])[-1]
            command = " ".join(a for a in args[:2] if not a.startswith("-"))  # "generator train"
            raise RetrainFailed(f"python -m {command}: {reason}")
        return stdout.decode("utf-8", "replace")

    async def _report(self, chat: Chat, message: object, out: Path) -> None:
        records = read_metrics(out)
        if not records:
            return
        last = records[-1]
        bpcs = [r["val_bpc"] for r in records if r.get("val_bpc") is not None]
        text = texts.retrain_training(
            float(last.get("progress") or 0),
            float(last.get("chars_per_sec") or 0),
            bpcs[-1] if bpcs else None,
        )
        if text != self._progress:
            self._progress = text
            await self._show(chat, message, text)


def prune(models_dir: Path, keep: set[str]) -> list[Path]:
    """Delete the model dirs in `models_dir` (earlier retrains) except those in `keep`."""
    if not models_dir.is_dir():
        return []
    kept = {Path(k).resolve() for k in keep if k}
    removed = [
        path for path in sorted(models_dir.iterdir())
        if path.is_dir() and path.resolve() not in kept
    ]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed old model %s", path)
    return removed
