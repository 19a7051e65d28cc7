"""Review mode in real `python -m bot` processes: killed with -9 between the review and the tap,
two processes on one PostgreSQL each taking one of two editors' taps, the terminal's typed
answer, and the judgements written out and read back by the export command."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json

import pytest

from bot import judgements
from bot.terminal import run_terminal
from common.config import config_from_dict
from common.db import open_database
from harness import pg
from harness.fakes.telegram import CHANNEL_ID
from harness.fakes.vk import FakeVk
from harness.fakes.webhook import WebhookTelegram
from harness.peers import start_webhook_bot
from harness.pipeline import (
    ADMIN,
    OTHER,
    bot_config,
    run,
    secrets,
    start_bot,
    wait_until,
    write_config,
)
from tests.test_bot_review import EDITORS, _gather, _pages, _post

pytestmark = pytest.mark.slow


def _review_config(folder, bot_model, telegram, url: str = "") -> dict:
    raw = bot_config(folder, bot_model, telegram, env_secrets=True, cooldown_seconds=0)
    raw["vk"]["post_token"] = ""  # the channel only
    raw["telegram"]["admins"] = list(EDITORS)
    raw["pool"] = {"size": 0, "channel_candidates": 0, "channel_searches": 0}
    raw["review"] = {"mode": "editors"}
    if url:
        raw["storage"].update(url=url, models_dir=str(folder / "models"))
    return raw


def _open_updates(url: str) -> int:
    database = open_database(url)
    try:
        with database.read() as conn:
            return conn.exec_driver_sql(
                "SELECT COUNT(*) FROM inbox WHERE done_at IS NULL").scalar_one()
    finally:
        database.close()


def test_a_review_outlives_kill_9_and_its_judgements_export(tmp_path, bot_model, telegram,
                                                            storage_url):
    best_first = _gather(storage_url, str(bot_model))
    config = write_config(tmp_path, _review_config(tmp_path, bot_model, telegram, storage_url))
    bot = start_bot(tmp_path / "first", config, telegram)
    assert _post(telegram).startswith("Review #1 sent to 2 editor chat(s)")
    (page,) = wait_until(lambda: _pages(telegram, OTHER), 60, "a page")
    wait_until(lambda: _open_updates(storage_url) == 0, 30,
               "/post marked handled")  # else the next process would handle it again
    bot.kill()  # kill -9 between the review and the tap

    bot = start_bot(tmp_path / "second", config, telegram)
    start = len(telegram.calls)
    telegram.press_button(page, "review:1:p3", OTHER)
    answer = telegram.wait_for("answerCallbackQuery", after=start, timeout=60)
    assert answer.params["text"].startswith("Published as post #1")
    assert [m["text"] for m in telegram.messages_in(CHANNEL_ID)] == [best_first[2]]
    assert bot.stop() == 0

    out = tmp_path / "judgements.jsonl"
    done = run("bot", "export-judgements", "--config", str(config), "--out", str(out),
               env=secrets(telegram), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote 5 judgements to {out}"
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["kind"], r["text"]) for r in rows if r["value"] == 1] == [("pick", best_first[2])]
    assert sorted(r["text"] for r in rows if r["kind"] == "pass") == sorted(
        best_first[:2] + best_first[3:5])

    # read back into another bot's database: the same judgements, numbered there
    other = write_config(tmp_path / "other", bot_config(tmp_path / "other", bot_model))
    done = run("bot", "import-judgements", "--config", str(other), "--in", str(out),
               env=secrets(), timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"added 5 judgements from {out}"
    again = tmp_path / "again.jsonl"
    run("bot", "export-judgements", "--config", str(other), "--out", str(again), env=secrets(),
        timeout=120)
    assert again.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")

    done = run("bot", "export-judgements", "--config", str(other), "--out",
               str(tmp_path / "no" / "such" / "folder.jsonl"), env=secrets(), timeout=120)
    assert done.returncode == 2 and done.stderr.strip().startswith("error: cannot write ")

    out.write_text('{"kind": "like", "text": "X"}\n', encoding="utf-8")
    done = run("bot", "import-judgements", "--config", str(other), "--in", str(out),
               env=secrets(), timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().startswith(f"error: {out}:1: not a judgement")


def test_two_processes_take_one_tap_each_and_publish_once(tmp_path, bot_model):
    hooked = WebhookTelegram().start()
    with pg.fresh_schema() as url, contextlib.ExitStack() as stack:
        stack.callback(hooked.stop)
        best_first = _gather(url, str(bot_model))
        urls = []
        for name in ("a", "b"):
            raw = _review_config(tmp_path / name, bot_model, hooked, url)
            urls.append(start_webhook_bot(tmp_path / name, raw, hooked)[1])
        hooked.targets = urls
        _post(hooked)
        pages = {chat: wait_until(lambda c=chat: _pages(hooked, c), 60, "a page")[0]
                 for chat in EDITORS}
        before = len(hooked.delivered)
        start = len(hooked.calls)
        taps = [hooked.press_button(pages[ADMIN], "review:1:p1", ADMIN),
                hooked.press_button(pages[OTHER], "review:1:p4", OTHER)]
        hooked.wait_delivered(before + 2)
        assert {hooked.delivered[t["update_id"]] for t in taps} == set(urls)  # one each
        wait_until(lambda: len(hooked.calls_of("answerCallbackQuery")) >= 2, 60, "two answers")
        answers = sorted(c.params["text"] for c in hooked.calls[start:]
                         if c.method == "answerCallbackQuery")
        assert answers[0].startswith("Published as post #1")
        assert answers[1].startswith("Review #1 has already ended")
        channel = [m["text"] for m in hooked.messages_in(CHANNEL_ID)]
        assert channel in ([best_first[0]], [best_first[3]])


def test_the_terminal_shows_a_review_and_takes_the_typed_answer(tmp_path, bot_model):
    url = f"sqlite:///{tmp_path / 'data' / 'neurobugurt.sqlite3'}"
    with FakeVk() as vk:
        raw = bot_config(tmp_path, bot_model, vk=vk)
        raw["pool"] = {"size": 0, "channel_candidates": 0, "channel_searches": 0}
        raw["review"] = {"mode": "editors", "choices": 2}
        best_first = _gather(url, str(bot_model), n=3)
        lines = ["/post", "7", "next", "edit 3", "edit 3 КАНДИДАТ ТРИ @ ПОПРАВЛЕН", "2",
                 "/review", "hello", ""]
        out = io.StringIO()
        asyncio.run(run_terminal(config_from_dict(raw), "config.yaml",
                                 stdin=io.StringIO("\n".join(lines)), stdout=out))
        text = out.getvalue()
        assert "Review #1: posts 1–2 of 3" in text and "Type a number" in text
        assert "That post was not shown in this review" in text  # 7
        assert "Review #1: posts 3–3 of 3" in text
        assert "Review #1 ended: a corrected post 3 published" in text
        assert text.count("Type a number") == 3  # two pages, and the edit without its text
        assert text.count("No review is waiting for the editors.") == 2  # "2" and /review
        assert "I answer commands" in text  # hello
        assert [p["message"] for p in vk.published] == [
            "КАНДИДАТ ТРИ\n@\nПОПРАВЛЕН\n#neurobugurt"]
    database = open_database(url)
    judged = judgements.read(database)
    database.close()
    assert [(j.kind, j.text, j.source) for j in judged if j.kind == "edit"] == [
        ("edit", best_first[2], "editor:0")]
