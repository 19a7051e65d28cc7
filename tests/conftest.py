"""Fixtures shared by the process-level tests: child reaping, a tiny bot model, fake servers."""

from __future__ import annotations

import pytest

from tests import pipeline
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vk import FakeVk


@pytest.fixture(autouse=True)
def _reap_children():
    """No child process started through tests.pipeline outlives its test, whatever its outcome."""
    yield
    pipeline.reap()


@pytest.fixture(scope="module")
def bot_model(tmp_path_factory):
    """A tiny trained model for bot processes (trained once per session by tests.pipeline)."""
    return pipeline.bot_model(tmp_path_factory.getbasetemp())


@pytest.fixture
def servers():
    """A fake Telegram Bot API and a fake VK API on 127.0.0.1, empty."""
    telegram, vk = FakeTelegram().start(), FakeVk().start()
    yield telegram, vk
    telegram.stop()
    vk.stop()
