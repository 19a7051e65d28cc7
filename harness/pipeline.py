"""Helpers shared by the tests and the benchmarks (the tests' fixtures built on them are in
tests/conftest.py): a wall, made-up bugurts, one config builder and writer, one tiny trained
model, and the real commands as child processes, with the secrets in their environment only.

The wall is the newest real posts of ../shared/data when it is present, else one built here
with the same furniture (signatures, credits, hashtags, links, ads, reposts, photo-only posts).
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from common.config import config_from_dict
from common.corpus import write_corpus
from harness.fakes.telegram import FakeTelegram
from harness.fakes.vk import TOKEN as VK_TOKEN
from harness.fakes.vk import FakeVk, items_from_jsonl, make_item
from harness.paths import REAL_WALL, REPO

POST_COMMUNITY = 4242  # vk.post_community: the bot publishes to the wall of -4242
CHANNEL = "@neurobugurt_e2e"
ADMIN, READER, OTHER = 11, 22, 33
FAR_CRON = "0 3 1 1 *"  # far away: only a test's rewind or run_now makes the posting job due
# A tiny model: 1 layer of 96 units learns the `LINE / @ / LINE` shape in well under a minute.
# One thread: on a busy 2-core machine two OpenMP threads ran this 15x slower than one.
TINY_MODEL = ("--layers", "1", "--hidden", "96", "--embed", "32", "--batch-size", "32",
              "--seq-len", "64", "--lr", "0.01", "--warmup-steps", "5", "--eval-every", "200",
              "--threads", "1", "--tokenizer", "char")
# The shared tiny model (`bot_model` fixture) and /retrain's trainings: 1 layer of 48 units,
# 300 steps, learns the `LINE / @ / LINE` shape in a few seconds.
TINY_TRAIN = ("--layers", "1", "--hidden", "48", "--embed", "16", "--batch-size", "16",
              "--seq-len", "64", "--lr", "0.01", "--eval-every", "100", "--threads", "1",
              "--tokenizer", "char")  # tiny corpora hold too few words for subword units
_SYLLABLES = "БА ТЯ КО ГДА ПРИ ШЕЛ НА ПА РУ ДО МОЙ МАГ ЗИН КОТ ПРЕ ПОД СО СЕД МА ЛО РЕ ВИ".split()


def wall_items(n: int = 400) -> list[dict]:
    """`wall.get` items of the wall to scrape, oldest first (the fake serves newest first)."""
    if REAL_WALL.exists():
        return items_from_jsonl(REAL_WALL)[-n:]
    return built_wall(n)


def made_up_bugurts(n: int, seed: int = 0) -> list[str]:
    """Bugurts (corpus format) of made-up capital words, varied enough for the novelty gate."""
    rng = random.Random(seed)
    words = sorted({"".join(rng.choices(_SYLLABLES, k=rng.randint(2, 3))) for _ in range(150)})
    return [
        "\n@\n".join(" ".join(rng.choices(words, k=rng.randint(2, 5)))
                      for _ in range(rng.randint(2, 5)))
        for _ in range(n)
    ]


def built_wall(n: int, seed: int = 0) -> list[dict]:
    """A bugurt wall of made-up capital words, with the furniture a real wall has."""
    items = []
    for i, bugurt in enumerate(made_up_bugurts(n, seed), start=1):
        date = 1_600_000_000 + 3600 * i
        text = bugurt + "\n\nпредложено через @tgbtbot\nБУГУРТ-ТРЕД #бугурт"
        extra: dict = {}
        if i % 17 == 0:
            text = "Реклама: лучший VPN по ссылке https://example.com/vpn"
            extra = {"marked_as_ads": 1}
        elif i % 19 == 0:
            text = "Конкурс! Подробности в нашем канале t.me/bugurtthread"
        elif i % 23 == 0:
            text, extra = "", {"attachments": [{"type": "photo"}]}
        elif i % 29 == 0:
            extra = {"copy_history": [{"id": i, "text": text}]}
        items.append(make_item(i, date, text, **extra))
    return items


def bot_config(
    folder: Path,
    model_dir: Path | None = None,
    telegram: FakeTelegram | None = None,
    vk: FakeVk | None = None,
    channel: bool = True,
    env_secrets: bool = False,
    cron: str = FAR_CRON,
    **bot: object,
) -> dict:
    """The config (as parsed YAML) of every command, pointing at the fake servers.

    env_secrets: every secret is a ${ENV} reference (for child processes, see `secrets`), else
    the fake servers' tokens are written in (for `config_from_dict` in this process).
    `bot` overrides bot.* keys.
    """
    token = {"vk": "${VK_TOKEN}", "post": "${VK_POST_TOKEN}", "tg": "${TELEGRAM_TOKEN}"}
    if not env_secrets:
        token = {"vk": "", "post": "", "tg": ""}
    raw: dict = {
        "vk": {"token": token["vk"], "post_token": token["post"], "community": "bugurt_thread"},
        "telegram": {"token": token["tg"], "admins": [ADMIN]},
        "storage": {"db": str(folder / "data" / "neurobugurt.sqlite3")},
        "corpus": {"path": str(folder / "data" / "corpus.txt")},
        "generator": {"model_dir": str(model_dir or folder / "model")},
        "schedule": {"cron": cron, "timezone": "UTC"},
        # English: the suite reads English replies (tests/test_i18n.py covers the ru default).
        "bot": {"cooldown_seconds": 30, "candidates": 8, "language": "en", **bot},
        # A small pool: its worker thread must not load the machine in tests about other things
        # (test_bot_pool sets its own).
        "pool": {"size": 2, "channel_candidates": 4, "reply_candidates": 8},
    }
    if vk is not None:
        raw["vk"].update(api_url=vk.api_url, post_community=POST_COMMUNITY)
        if not env_secrets:
            raw["vk"]["post_token"] = VK_TOKEN
    if telegram is not None:
        raw["telegram"]["api_url"] = telegram.api_url
        if not env_secrets:
            raw["telegram"]["token"] = telegram.token
        if channel:
            raw["telegram"]["channel"] = CHANNEL
    return raw


def write_config(folder: Path, raw: dict) -> Path:
    """`raw` as folder/config.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def process_config(
    folder: Path,
    vk: FakeVk | None = None,
    telegram: FakeTelegram | None = None,
    model_dir: Path | None = None,
) -> Path:
    """config.yaml for child processes: secrets as ${ENV} references, a 1 s cooldown."""
    return write_config(folder, bot_config(folder, model_dir, telegram, vk, env_secrets=True,
                                           cooldown_seconds=1, candidates=16))


def secrets(telegram: FakeTelegram | None = None, vk: bool = True) -> dict[str, str]:
    """The environment of a child: the tokens the config refers to, and nothing stale."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VK_TOKEN", "VK_POST_TOKEN", "TELEGRAM_TOKEN")}
    if vk:
        env.update(VK_TOKEN=VK_TOKEN, VK_POST_TOKEN=VK_TOKEN)
    if telegram is not None:
        env["TELEGRAM_TOKEN"] = telegram.token
    return env


def run(*args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """`python -m <args>` from the repository root, to completion."""
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, text=True,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


_LIVE: list[Child] = []  # children started by the running test, for reap()


def reap() -> None:
    """kill -9 what a test left running (it failed before stopping its children)."""
    while _LIVE:
        child = _LIVE.pop()
        if child.alive():
            child.kill()


class Child:
    """A long-running `python -m <args>`; its output goes to files (no pipe fills up)."""

    def __init__(self, folder: Path, *args: str, env: dict[str, str]):
        folder.mkdir(parents=True, exist_ok=True)
        name = "-".join(a for a in args[:2] if not a.startswith("-"))
        self.out_path, self.err_path = folder / f"{name}.out", folder / f"{name}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         text=True)
        _LIVE.append(self)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(encoding="utf-8")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(encoding="utf-8")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no handler, no cleanup, no flush."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (what `docker stop` sends), then the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)


def wait_until(condition, timeout: float, what: str, step: float = 0.02):
    """Poll `condition` until it is truthy (returned) or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(step)
    return value


def query(db: Path, sql: str, *args: object) -> list[tuple]:
    """Rows of one query on the SQLite file, or [] while the file or its tables do not exist."""
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def integrity(db: Path) -> str:
    return query(db, "PRAGMA integrity_check")[0][0]


def rewind_posting_job(db: Path | str, seconds: float) -> None:
    """Move the stored posting job's next run into the past, as if the bot had been down then.

    Uses APScheduler's own job store on the bot's database (a SQLite file, or a storage.url),
    with no scheduler running.
    """
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from bot.schedule import JOB_ID, JOBSTORE
    from common.db import open_database, storage_url

    database = open_database(db if isinstance(db, str) else storage_url(str(db)))
    store = SQLAlchemyJobStore(engine=database.engine)
    store.start(None, JOBSTORE)
    try:
        job = store.lookup_job(JOB_ID)
        assert job is not None, "the bot installed no posting job"
        job.next_run_time = dtm.datetime.now(dtm.UTC) - dtm.timedelta(seconds=seconds)
        store.update_job(job)
    finally:
        store.shutdown()
        database.close()


def write_tiny_corpus(path: Path, posts: int = 300, seed: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_corpus(path, made_up_bugurts(posts, seed))
    return path


def train_model(corpus: Path, out: Path, steps: int = 300) -> Path:
    """`python -m generator train` of a TINY_TRAIN model on `corpus` into `out`."""
    done = run("generator", "train", "--corpus", str(corpus), "--out", str(out), "--max-steps",
               str(steps), *TINY_TRAIN, env=secrets(vk=False), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def bot_model(basetemp: Path) -> Path:
    """The tiny model of the bot tests, trained once per session under pytest's base temp."""
    root = basetemp / "tiny-bot-model"
    model = root / "model"
    if not (model / "model.pt").exists():
        train_model(write_tiny_corpus(root / "corpus.txt"), model)
    return model


def stored_posts(db: Path) -> list[tuple]:
    """The scraper's stored posts, (owner_id, post_id, date, text) by post id."""
    return query(db, "SELECT owner_id, post_id, date, text FROM posts ORDER BY post_id")


def one_clear_line(stderr: str) -> str:
    """The last line of a failed command: `error: ...`, and no traceback anywhere."""
    assert "Traceback" not in stderr, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and len(last) < 400, stderr[-3000:]
    return last


def start_bot(folder: Path, config: Path, telegram: FakeTelegram) -> Child:
    """`python -m bot` serving the fake Bot API, once it has set its command menu."""
    bot = Child(folder, "bot", "--config", str(config), env=secrets(telegram))
    after = len(telegram.calls_of("setMyCommands"))
    wait_until(lambda: len(telegram.calls_of("setMyCommands")) > after or not bot.alive(), 120,
               "the bot to start")
    assert bot.alive(), bot.stderr[-3000:]
    return bot


def admin_post(telegram: FakeTelegram) -> str:
    """/post from the admin; the bot's one-line answer."""
    after = len(telegram.calls)
    telegram.send_command("/post", user_id=ADMIN)
    return telegram.wait_for("sendMessage", lambda p: p["chat_id"] == ADMIN, 90, after).params[
        "text"]


class AppThread:
    """Runs `Application.run_polling` (the production path) in a thread with its own loop."""

    def __init__(self, raw_config: dict, config_path: str = "config.yaml", **options: object):
        self.config = config_from_dict(raw_config)
        self.config_path = config_path  # what /retrain passes to its child processes
        self.options = options
        self.app: Application | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            # Built in this thread, as in production: the SQLite connection belongs to it.
            self.app = build_application(self.config, self.config_path, **self.options)
            self.runner = self.app.bot_data["runner"]
            self.app.run_polling(
                poll_interval=0, timeout=1, allowed_updates=Update.ALL_TYPES,
                stop_signals=None, close_loop=False,
            )
        except BaseException as exc:  # surfaced by __exit__
            self.error = exc

    def call(self, function, *args):
        """Run a function (or coroutine function) on the app's loop and return its result."""
        async def wrapper():
            result = function(*args)
            return await result if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=120)

    def __enter__(self) -> AppThread:
        self.thread.start()
        deadline = time.monotonic() + 60  # a bound: start-up loads a model, slow under load
        while time.monotonic() < deadline and self.thread.is_alive():
            if self.app is not None and self.app.running:
                return self
            time.sleep(0.01)
        raise AssertionError(f"application did not start: {self.error!r}")

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.app.stop_running)
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "application did not stop"
        self.loop.close()
        if self.error is not None:
            raise self.error


def ask(server: FakeTelegram, text: str, user: int, **kwargs: object) -> str:
    """Send a message and return the text of the bot's next message to that chat."""
    start = len(server.calls)
    update = server.send_text(text, user_id=user, **kwargs)
    chat_id = update["message"]["chat"]["id"]
    call = server.wait_for("sendMessage", lambda p: p["chat_id"] == chat_id, after=start)
    return call.params["text"]


def quiet(server: FakeTelegram, chat_id: int, seconds: float = 0.4) -> list[str]:
    """Texts the bot sends to `chat_id` during the next `seconds` (expected: none)."""
    start = len(server.calls)
    time.sleep(seconds)
    return [c.params["text"] for c in server.calls[start:]
            if c.method == "sendMessage" and c.params["chat_id"] == chat_id]
