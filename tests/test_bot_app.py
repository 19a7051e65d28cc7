"""The real PTB Application (run_polling) against the fake Bot API and fake VK servers.

Helpers here (tiny corpus and model, config, AppThread) are shared by the other test_bot_*
files. The model is a real one, trained once per session by `python -m generator train` at a
tiny size on a synthetic bugurt corpus.
"""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from common.config import config_from_dict
from common.corpus import write_corpus
from tests.fakes.telegram import BOT_USERNAME, CHANNEL_ID, FakeTelegram
from tests.fakes.vk import TOKEN as VK_TOKEN
from tests.fakes.vk import FakeVk
from tests.paths import REPO

ADMIN, READER, OTHER = 11, 22, 33
TINY_TRAIN = (
    "--layers", "1", "--hidden", "48", "--embed", "16", "--batch-size", "16", "--seq-len", "64",
    "--lr", "0.01", "--eval-every", "100", "--threads", "1",
)


def tiny_posts(posts: int = 300, seed: int = 0) -> list[str]:
    """Bugurt-shaped posts of made-up capital words (varied enough for the novelty gate)."""
    rng = random.Random(seed)
    syllables = "БА ТЯ КО ГДА ПРИ ШЕЛ НА ПА РУ ДО МОЙ МАГ ЗИН КОТ ПРЕ ПОД СО СЕД МА ЛО РЕ ВИ"
    syl = syllables.split()
    words = sorted({"".join(rng.choice(syl) for _ in range(rng.randint(2, 3))) for _ in range(120)})
    texts = []
    for _ in range(posts):
        n_lines = rng.randint(2, 4)
        lines = [" ".join(rng.choices(words, k=rng.randint(2, 4))) for _ in range(n_lines)]
        texts.append("\n@\n".join(lines))
    return texts


def write_tiny_corpus(path: Path, posts: int = 300, seed: int = 0) -> Path:
    write_corpus(path, tiny_posts(posts, seed))
    return path


def train_model(corpus: Path, out: Path, steps: int = 300) -> Path:
    subprocess.run(
        [sys.executable, "-m", "generator", "train", "--corpus", str(corpus), "--out", str(out),
         "--max-steps", str(steps), *TINY_TRAIN],
        cwd=REPO, check=True, capture_output=True, timeout=120,
    )
    return out


def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained model, made once per test session and shared by the bot test files."""
    root = tmp_path_factory.getbasetemp() / "bot-tiny-model"
    model = root / "model"
    if not (model / "model.pt").exists():
        root.mkdir(exist_ok=True)
        train_model(write_tiny_corpus(root / "corpus.txt"), model)
    return model


def bot_config(
    tmp_path: Path,
    model_dir: Path,
    telegram: FakeTelegram | None = None,
    vk: FakeVk | None = None,
    channel: bool = True,
    **bot: object,
) -> dict:
    """A config (as parsed YAML) pointing at the fake servers; `bot` overrides bot.* keys."""
    raw: dict = {
        "storage": {"db": str(tmp_path / "data" / "bot.sqlite3")},
        "corpus": {"path": str(tmp_path / "data" / "corpus.txt")},
        "generator": {"model_dir": str(model_dir)},
        "telegram": {"token": "", "admins": [ADMIN]},
        "vk": {"token": "", "post_token": ""},
        "schedule": {"cron": "0 */4 * * *", "timezone": "UTC"},
        "bot": {"cooldown_seconds": 30, "candidates": 8, **bot},
    }
    if telegram is not None:
        raw["telegram"].update(token=telegram.token, api_url=telegram.api_url)
        if channel:
            raw["telegram"]["channel"] = "@neurobugurt_test"
    if vk is not None:
        raw["vk"].update(api_url=vk.api_url, post_token=VK_TOKEN, post_community=4242)
    return raw


def write_config(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


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

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=30)

    def __enter__(self) -> AppThread:
        self.thread.start()
        deadline = time.monotonic() + 15
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


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model(tmp_path_factory)


@pytest.fixture
def telegram():
    server = FakeTelegram().start()
    yield server
    server.stop()


def test_chat_commands_and_bad_input(tmp_path, model_dir, telegram):
    with AppThread(bot_config(tmp_path, model_dir, telegram, channel=False)):
        assert "/bugurt" in ask(telegram, "/start", READER)
        post = ask(telegram, "/bugurt", READER)
        assert post.endswith("\n#neurobugurt") and "\n@\n" in post
        assert ask(telegram, "/bugurt", READER).startswith("Please wait")
        telegram.send_text("/bugurt", user_id=READER)  # a flood gets one line, not one per message
        assert quiet(telegram, READER) == []

        assert "at most 150" in ask(telegram, "/bugurt " + "БУГУРТ " * 1500, OTHER)
        assert "no characters I can write" in ask(telegram, "/bugurt 😀🔥\x07", OTHER)
        start = len(telegram.calls)
        telegram.send_text("/bugurt кот 😀\x07\x1b", user_id=OTHER)
        note = telegram.wait_for("sendMessage", after=start).params["text"]
        assert note.startswith("I left out") and "😀" in note
        post = telegram.wait_for("sendMessage", lambda p: "#neurobugurt" in p["text"], after=start)
        assert post.params["text"].startswith("КОТ")

        got = ask(telegram, "/frobnicate", OTHER)
        assert got.startswith("I don't know /frobnicate."), got
        assert ask(telegram, "просто текст", OTHER).startswith("I answer commands")
        assert "#neurobugurt" in ask(telegram, f"/bugurt@{BOT_USERNAME}", ADMIN)
        assert ask(telegram, "/post", OTHER) == "/post is for the bot's admins only."
        assert "Nothing to publish to" in ask(telegram, "/post", ADMIN)

        # Ignored on purpose: another bot's command, an edit, a command in a channel.
        telegram.send_text("/bugurt@otherbot", user_id=OTHER)
        telegram.send_text("/help", user_id=OTHER, kind="edited_message")
        telegram.send_text("/bugurt", user_id=OTHER, chat_id=CHANNEL_ID, kind="channel_post")
        telegram.send_text("hello", user_id=OTHER, chat_id=-100, chat_type="group")
        assert quiet(telegram, OTHER) == [] and quiet(telegram, CHANNEL_ID, 0.1) == []
        assert quiet(telegram, -100, 0.1) == []
        admin_help = ask(telegram, "/help", ADMIN)
        public_help = ask(telegram, "/help", OTHER)
        assert admin_help.startswith(public_help + "\n\nAdmin commands:\n/post: ")
        assert "/rollback" in admin_help and "Admin commands" not in public_help
        assert public_help.startswith("/bugurt: a fresh bugurt\n")
        # The command menu lists the public commands, each with a description.
        (menu,) = telegram.calls_of("setMyCommands")
        listed = {c["command"]: c["description"] for c in menu.params["commands"]}
        assert set(listed) == {"start", "bugurt", "top", "help"} and all(listed.values())


def test_sampling_runs_off_the_event_loop(tmp_path, model_dir, telegram):
    with AppThread(bot_config(tmp_path, model_dir, telegram, channel=False, candidates=256)):
        start = len(telegram.calls)
        telegram.send_text("/bugurt", user_id=ADMIN)
        time.sleep(0.05)
        telegram.send_text("/help", user_id=READER)
        post = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == ADMIN, after=start)
        help_ = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == READER, after=start)
        assert help_.at < post.at  # /help was answered while the post was being sampled


def test_admin_commands_scheduled_post_votes_and_flood_control(tmp_path, model_dir, telegram):
    with FakeVk() as vk, AppThread(bot_config(tmp_path, model_dir, telegram, vk)) as bot:
        assert ask(telegram, "/pause", READER) == "/pause is for the bot's admins only."
        assert ask(telegram, "/pause", ADMIN).startswith("Scheduled posting paused")
        assert "paused" in ask(telegram, "/status", ADMIN)
        assert ask(telegram, "/resume", ADMIN).startswith("Scheduled posting resumed")
        assert "hour field '25'" in ask(telegram, "/schedule 0 25 * * *", ADMIN)
        assert ask(telegram, "/schedule 30 9 * * 1", ADMIN).startswith("Schedule set: 30 9 * * 1")

        bot.call(bot.runner.schedule.run_now)  # its time has come
        call = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == "@neurobugurt_test")
        text = call.params["text"]
        assert text.endswith("#neurobugurt")
        deadline = time.monotonic() + 10
        while not vk.published and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p["message"] for p in vk.published] == [text]
        assert vk.published[0]["owner_id"] == "-4242"
        (posted,) = telegram.messages_in(CHANNEL_ID)

        for user, vote in ((READER, "1"), (READER, "-1"), (ADMIN, "1"), (OTHER, "1")):
            start = len(telegram.calls)
            telegram.press_button(posted, f"vote:1:{vote}", user)
            answer = telegram.wait_for("answerCallbackQuery", after=start)
            assert answer.params["text"].startswith("Thanks")
        edit = telegram.wait_for(
            "editMessageReplyMarkup",
            lambda p: p["reply_markup"]["inline_keyboard"][0][0]["text"] == "👍 2",
        )
        assert edit.params["reply_markup"]["inline_keyboard"][0][1]["text"] == "👎 1"
        assert "#1 👍2 👎1" in ask(telegram, "/top", READER)
        start = len(telegram.calls)
        telegram.press_button(posted, "vote:77:1", READER)  # a post the database never had
        answer = telegram.wait_for("answerCallbackQuery", after=start)
        assert answer.params["text"] == "This post is not in my records any more."

        # Flood control on the channel: the rate limiter waits retry_after, then sends once.
        telegram.fail("sendMessage", retry_after=1)
        began = time.monotonic()
        reply = ask(telegram, "/post", ADMIN)
        assert reply.startswith("Post #2") and "telegram: sent" in reply and "vk: sent" in reply
        assert time.monotonic() - began >= 1.0
        assert len(telegram.messages_in(CHANNEL_ID)) == 2 and len(vk.published) == 2
        status = ask(telegram, "/status", ADMIN)
        assert "Outbox: 0 pending, 4 sent, 0 failed" in status and "Last post: #2" in status
        arms = re.findall(r"([\d.]+) \(👍(\d+) 👎(\d+), (\d+) posts\)", status)
        assert [a[0] for a in arms] == ["0.7", "0.85", "1"]
        assert sum(int(a[3]) for a in arms) == 2  # two posts published
        assert [(int(a[1]), int(a[2])) for a in arms if a[1] != "0" or a[2] != "0"] == [(2, 1)]

    with FakeVk() as vk, AppThread(bot_config(tmp_path, model_dir, telegram, vk)):
        status = ask(telegram, "/status", ADMIN)  # after a restart
        assert "Schedule: 30 9 * * 1 (UTC), next" in status and "4 sent" in status
