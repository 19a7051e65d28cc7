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
import functools
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
from bot.i18n import N_, Say, Texts, texts_for
from bot.leader import ProcessLock
from bot.model_slot import ModelSlot
from bot.ratings import Ratings
from common.config import Config
from common.corpus import parse_posts, split_paths
from generator.loss_plot import plot_losses
from generator.modeldir import MODEL_FILE, read_metrics
from generator.result import BITS_PER_CHAR, read_result

log = logging.getLogger(__name__)
SAMPLES = 3  # posts shown from the trained model at the end
STARTER_POSTS = 8  # a better model's starter feed: a burst of 8 readers served at once


class RetrainFailed(Exception):
    """A stage failed in an expected way; `say` puts why into a reader's language (the
    exception's own message, for the log, is the English)."""

    def __init__(self, say: Say) -> None:
        super().__init__(say(texts_for("en")))
        self.say = say


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
        fit_ranker: Callable[[], Say] | None = None,
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
        self.fit_ranker = fit_ranker  # refits the judgements' ranker for the served model
        self.stage = ""  # a message id (N_): translated where it is shown
        self.last_result: Say = lambda tr: tr.t("retrain.none_yet")
        self.tr = texts_for(config.bot.language)  # that of the admin who started the last run
        self._task: asyncio.Task | None = None
        self._procs: set[asyncio.subprocess.Process] = set()
        self._progress: Say | None = None
        self._shown = ""  # the progress line last shown in the starter's language
        self._rng = random.Random()

    @property
    def running(self) -> bool:
        return self._task is not None

    def describe(self, tr: Texts) -> str:
        """The running retrain's stage and progress, or how the last one ended (/status)."""
        if not self.running:
            return self.last_result(tr)
        return tr.t("retrain.state", progress=(self._progress or _said(self.stage))(tr))

    def start(self, chat: Chat, tr: Texts) -> bool:
        """Start a retrain reporting to `chat` in `tr`'s language; False (nothing started) if
        one is running, here or in another process sharing the database."""
        if self._task is not None or not self.lock.try_take():
            return False
        self.tr = tr
        self.stage = N_("retrain.stage.starting")
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
        tr = self.tr
        try:
            message = await chat.say(tr.t("retrain.starting"))
            served = self.slot.model_dir
            outcome = await self._stages(chat, message, served)
            if outcome.better:
                await self._set(chat, message, N_("retrain.stage.starter"),
                                _said(N_("retrain.writing_starter")))
                await self._starter(outcome.model_dir)
            self._at(N_("retrain.stage.swap"))
            if outcome.better:
                await self.slot.serve(str(outcome.model_dir))
                swapped = str(outcome.model_dir)
            self.last_result = functools.partial(
                texts.retrain_result, new_bpc=outcome.new_bpc, old_bpc=outcome.old_bpc,
                swapped=swapped)
            await chat.edit(message, tr.t("retrain.done", model_dir=outcome.model_dir,
                                          result=self.last_result(tr)))
            final = True
            self._at(N_("retrain.stage.samples"))
            png = await asyncio.to_thread(plot_losses, outcome.model_dir)
            if png is not None:
                await chat.photo(png, tr.t("retrain.plot"))
            posts = await self._samples(outcome.model_dir, swapped is not None)
            await chat.say(texts.retrain_samples(tr, posts, swapped))
            if self.fit_ranker is not None:
                self._at(N_("retrain.stage.ranker"))
                await chat.say((await asyncio.to_thread(self.fit_ranker))(tr))
            self._at(N_("retrain.stage.prune"))
            keep = {self.slot.model_dir, self.slot.previous() or "", str(outcome.model_dir),
                    self.config.generator.model_dir}  # served, rollback, latest, configured
            await asyncio.to_thread(prune, self.models_dir, keep)
        except Exception as exc:  # noqa: BLE001 (the edge of a background task: report, log)
            reason = exc.say if isinstance(exc, RetrainFailed) else _said_error(exc)
            self.last_result = _failed(self.stage, reason, self.last_result if final else None)
            log.error("retrain failed at %s: %s", texts_for("en").t(self.stage),
                      reason(texts_for("en")), exc_info=not isinstance(exc, RetrainFailed))
            await self._tell_failure(chat, message, final, reason(tr), swapped)
        finally:
            self._at("")
            self._task = None
            self.lock.release()

    def _at(self, stage: str) -> None:
        """Enter a stage with no progress line of its own yet."""
        self.stage, self._progress, self._shown = stage, None, ""

    async def _tell_failure(
        self, chat: Chat, message: object, final: bool, reason: str, swapped: str | None
    ) -> None:
        text = texts.retrain_failed(self.tr, self.stage, reason, swapped)
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
            await self._set(chat, message, N_("retrain.stage.scrape"),
                            _said(N_("retrain.scraping")))
            await self._run_child(["scraper", "--config", self.config_path])
        else:
            log.info("retrain: vk.token is empty, training on the existing corpus")
        self._at(N_("retrain.stage.corpus_check"))
        val_path = split_paths(corpus)[1]
        if not corpus.exists():
            raise RetrainFailed(lambda tr: tr.t("retrain.no_corpus", corpus=corpus))
        if not val_path.exists():
            raise RetrainFailed(lambda tr: tr.t("retrain.no_split", val_path=val_path,
                                                config_path=self.config_path))
        out = self.models_dir / time.strftime("%Y%m%d-%H%M%S")
        while out.exists():
            out = out.with_name(out.name + "-1")
        await self._set(chat, message, N_("retrain.stage.train"),
                        functools.partial(texts.retrain_training, progress=0.0))
        train = [
            "generator", "train", "--config", self.config_path, "--corpus", str(corpus),
            "--out", str(out), "--minutes", f"{self.config.bot.retrain_minutes:g}",
            *self._warm_start(served_model_dir), *self.train_args,
        ]
        minutes = self.config.bot.retrain_minutes
        with self.pause_pool():  # training gets the cores the pool worker would use
            await self._run_child(train, timeout=minutes * 120 + 300,
                                  progress=(chat, message, out))
            await self._set(chat, message, N_("retrain.stage.evaluate"),
                            _said(N_("retrain.evaluating")))
            # Both on the fresh validation split, side by side (each is its own process).
            new_bpc, old_bpc = await asyncio.gather(
                self._eval(out, val_path), self._eval(Path(served_model_dir), val_path)
            )
        return Outcome(out, new_bpc, old_bpc)

    async def _starter(self, model_dir: Path) -> None:
        """The new model's starter feed (`generator feed --save`), written before the swap so
        that its pool hands out ready posts at once; without one (it failed) the pool samples
        them after the swap, as it would anyway."""
        try:
            await self._run_child(
                ["generator", "feed", "--config", self.config_path, "--model", str(model_dir),
                 "-n", str(STARTER_POSTS), "--kind", "reply", "--save", "--threads", "1"])
        except RetrainFailed as exc:
            log.warning("retrain: no starter feed for %s (%s)", model_dir, exc)

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

    async def _set(self, chat: Chat, message: object, stage: str, progress: Say) -> None:
        self._at(stage)
        await self._show(chat, message, progress)

    async def _show(self, chat: Chat, message: object, progress: Say) -> None:
        """Edit the progress message to `progress` unless it already says that; an edit the
        chat cannot take (the platform unreachable) is skipped with a log line: progress is
        news, the run goes on (its end is not skipped)."""
        self._progress = progress
        text = progress(self.tr)
        if text == self._shown:
            return
        self._shown = text
        try:
            await chat.edit(message, self.tr.t("retrain.progress", text=text))
        except Exception as exc:  # noqa: BLE001 (whatever the platform raised)
            log.warning("retrain: progress %r not shown (%s); going on", text, exc)

    async def _eval(self, model_dir: Path, val_path: Path) -> float:
        out = await self._run_child(
            ["generator", "eval", "--config", self.config_path, "--model", str(model_dir),
             "--text", str(val_path)]
        )
        result = read_result(out, BITS_PER_CHAR)
        if not result:
            raise RetrainFailed(lambda tr: tr.t("retrain.no_bpc_line", model_dir=model_dir))
        return result[BITS_PER_CHAR]

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
                    raise RetrainFailed(lambda tr: tr.n("retrain.timeout", round(timeout),
                                                        command=args[0]))
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
            raise RetrainFailed(lambda tr: tr.t("retrain.child_failed", command=command,
                                                reason=reason))
        return stdout.decode("utf-8", "replace")

    async def _report(self, chat: Chat, message: object, out: Path) -> None:
        records = read_metrics(out)
        if not records:
            return
        last = records[-1]
        bpcs = [r["val_bpc"] for r in records if r.get("val_bpc") is not None]
        await self._show(chat, message, functools.partial(
            texts.retrain_training,
            progress=float(last.get("progress") or 0),
            chars_per_sec=float(last.get("chars_per_sec") or 0),
            val_bpc=bpcs[-1] if bpcs else None,
        ))


def _said(msgid: str) -> Say:
    return lambda tr: tr.t(msgid)


def _said_error(exc: Exception) -> Say:
    """An unexpected error: its type and message are the same in every language."""
    return lambda tr: f"{type(exc).__name__}: {exc}"


def _failed(stage: str, reason: Say, before: Say | None) -> Say:
    """How a retrain ended that failed at `stage` (after a result `before`, if it had one)."""
    if before is None:
        return lambda tr: tr.t("retrain.last_failed", stage=tr.t(stage), reason=reason(tr))
    return lambda tr: tr.t("retrain.then_failed", result=before(tr), stage=tr.t(stage),
                           reason=reason(tr))


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
