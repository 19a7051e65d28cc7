"""The served model: its Generator, its directory, and the one thread that samples from it.

/retrain's job and /rollback change the served model only through `serve`, which loads the new
model off the event loop, switches to it (requests in flight finish on the old one) and records
the model served before it in the runtime settings, for /rollback.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bot.settings import RuntimeSettings
from generator.sample import Generator

log = logging.getLogger(__name__)


class ModelSlot:
    def __init__(self, settings: RuntimeSettings, configured: str, candidates: int) -> None:
        self.settings = settings
        self.configured = configured  # generator.model_dir: runtime swaps hold while it stays
        self.candidates = candidates  # bot.candidates: samples drawn per post
        self.model_dir = settings.served_model(configured)
        self.generator = self.load(self.model_dir)
        self.waiting = 0  # sampling calls queued (first come, first served) or running
        self.on_swap: list[Callable[[str], None]] = []  # told the new model dir after a swap
        self._sampler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sample")

    def load(self, model_dir: str) -> Generator:
        """A model directory's Generator (blocking: seconds)."""
        return Generator.load(model_dir)

    def warm_up(self) -> None:
        """Sampling's first call is slow (lazy torch set-up): start paying it now."""
        self._sampler.submit(self.generator.generate, n=1, candidates=1, seed=0)

    def submit(self, prime: str | None, temperature: float, n: int = 1
               ) -> asyncio.Future[list[str]]:
        """Queue a sampling call of the served model now (first come, first served); the future
        of its posts."""
        call = functools.partial(
            self.generator.generate,
            n=n,
            prime=prime,
            temperature=temperature,
            candidates=self.candidates,
        )
        self.waiting += 1
        future = asyncio.get_running_loop().run_in_executor(self._sampler, call)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: asyncio.Future) -> None:
        self.waiting -= 1

    async def generate(self, prime: str | None, temperature: float, n: int = 1) -> list[str]:
        """Sample off the event loop, queued behind the calls submitted before."""
        return await self.submit(prime, temperature, n)

    def previous(self) -> str | None:
        """The model served before the last swap, if it still exists (what /rollback serves)."""
        return self.settings.previous_model(self.configured)

    async def serve(self, model_dir: str) -> None:
        """Load `model_dir` off the loop, then serve it; the model it replaces becomes previous."""
        generator = await asyncio.to_thread(self.load, model_dir)
        previous = self.model_dir
        self.settings.swap_model(self.configured, model_dir, previous)
        log.info("serving model %s (previous %s)", model_dir, previous)
        self._switch(generator, model_dir)

    async def follow(self) -> bool:
        """Serve the model another bot process swapped in (read from the shared runtime
        settings), if it differs from ours; whether it did."""
        model_dir = self.settings.served_model(self.configured)
        if model_dir == self.model_dir:
            return False
        generator = await asyncio.to_thread(self.load, model_dir)
        log.info("serving model %s (swapped in by another process)", model_dir)
        self._switch(generator, model_dir)
        return True

    def _switch(self, generator: Generator, model_dir: str) -> None:
        self.generator, self.model_dir = generator, model_dir
        for listener in self.on_swap:
            listener(model_dir)

    def close(self) -> None:
        self._sampler.shutdown(wait=True, cancel_futures=True)
