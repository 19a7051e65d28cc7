"""Fixtures shared by the test files: child reaping, the tiny bot model, fake servers.

Plain helpers (config builder, made-up bugurts, child processes) are in harness/pipeline.py.
"""

from __future__ import annotations

import contextlib

import pytest

from common.db import open_database
from harness import pg, pipeline
from harness.fakes.telegram import FakeTelegram
from harness.fakes.vk import FakeVk


@pytest.fixture(autouse=True)
def _reap_children():
    """No child process started through harness.pipeline outlives its test, whatever its outcome."""
    yield
    pipeline.reap()


@pytest.fixture(scope="session")
def bot_model(tmp_path_factory):
    """A tiny trained model for the bot tests, trained once per session."""
    return pipeline.bot_model(tmp_path_factory.getbasetemp())


@pytest.fixture
def telegram():
    """A fake Telegram Bot API on 127.0.0.1, empty."""
    server = FakeTelegram().start()
    yield server
    server.stop()


@pytest.fixture
def servers(telegram):
    """The fake Telegram Bot API and a fake VK API with an empty wall, (telegram, vk)."""
    with FakeVk() as vk:
        yield telegram, vk


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """An empty, migrated bot database: a SQLite file, then a fresh PostgreSQL schema (store
    suites run the same assertions on both)."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'bot.sqlite3'}"
        else:
            url = stack.enter_context(pg.fresh_schema())
        db = open_database(url)
        stack.callback(db.close)
        yield db


@pytest.fixture
def postgres_database():
    """An empty, migrated PostgreSQL schema: for what only several processes need (on SQLite
    the bot is one process)."""
    with pg.fresh_schema() as url:
        db = open_database(url)
        yield db
        db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """A bot's storage.url, not yet opened: the SQLite file where bot_config puts it, then a
    fresh PostgreSQL schema (for bots in this process or child processes)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'neurobugurt.sqlite3'}"
    else:
        with pg.fresh_schema() as url:
            yield url
