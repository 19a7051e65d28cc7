"""Review mode against the fake Telegram server, on SQLite and PostgreSQL: editors' taps, the
first decision winning, the deadline both ways, an edit by reply, refused and late taps, a
restart between the review and the tap, and every judgement stored."""

from __future__ import annotations

import contextlib
import json
import threading

import pytest

from bot import judgements
from bot.i18n import texts_for
from bot.outbox import Outbox
from bot.pool_store import PoolStore
from bot.review import PICK, Candidate, Decision, ReviewStore
from common.db import open_database
from generator.sample import Candidate as Sampled
from harness.fakes.telegram import CHANNEL_ID, FakeTelegram
from harness.pipeline import ADMIN, OTHER, READER, AppThread, ask, bot_config, wait_until

EDITORS = (ADMIN, OTHER)
GATHERED = 7  # channel candidates in the pool: pages of 5 and 2
RU = texts_for("ru")


def _config(tmp_path, bot_model, telegram: FakeTelegram, url: str, **review) -> dict:
    raw = bot_config(tmp_path, bot_model, telegram, cooldown_seconds=0)
    raw["telegram"]["admins"] = list(EDITORS)
    raw["storage"]["url"] = url
    # No worker: the pool holds the channel candidates the test gathered, and nothing else.
    raw["pool"] = {"size": 0, "channel_candidates": 0, "channel_searches": 0}
    raw["review"] = {"mode": "editors", **review}
    return raw


def _gather(url: str, model_dir: str, n: int = GATHERED) -> list[str]:
    """Channel candidates in the pool, scores falling with their number; texts best first."""
    database = open_database(url)
    try:
        posts = [Sampled(f"КАНДИДАТ {i}\n@\nСТРОКА {i}\n#neurobugurt", -1.0 - i / 10)
                 for i in range(n)]
        shuffled = posts[3:] + posts[:3]  # gathered in another order than their scores'
        PoolStore(database).add(model_dir, "channel", 0.45, shuffled,
                                [c.likelihood for c in shuffled])
    finally:
        database.close()
    return [c.text for c in posts]


def _pages(telegram: FakeTelegram, chat: int, after: int = 0) -> list[dict]:
    """The review pages sent to a chat (messages with review buttons), oldest first."""
    return [m for m in telegram.messages_in(chat)
            if "review:" in json.dumps(m.get("reply_markup", {})) and m["message_id"] > after]


def _tap(telegram: FakeTelegram, message: dict, data: str, user: int) -> str:
    """Press a button; the bot's answer to the tap."""
    start = len(telegram.calls)
    query_id = telegram.press_button(message, data, user)["callback_query"]["id"]
    return telegram.wait_for("answerCallbackQuery",
                             lambda p: str(p["callback_query_id"]) == query_id,
                             after=start).params.get("text", "")


def _post(telegram: FakeTelegram) -> str:
    """/post from an admin (who is an editor: the pages come to that chat too); the answer."""
    start = len(telegram.calls)
    telegram.send_command("/post", user_id=ADMIN)
    return telegram.wait_for("sendMessage", lambda p: p["chat_id"] == ADMIN
                             and not p.get("reply_markup"), after=start).params["text"]


def _judged(url: str) -> list[judgements.Judgement]:
    database = open_database(url)
    try:
        return judgements.read(database)
    finally:
        database.close()


def _channel(telegram: FakeTelegram) -> list[str]:
    return [m["text"] for m in telegram.messages_in(CHANNEL_ID)]


def test_editors_see_the_best_first_and_the_first_of_two_taps_wins(tmp_path, bot_model,
                                                                     telegram, storage_url):
    best_first = _gather(storage_url, str(bot_model))
    with AppThread(_config(tmp_path, bot_model, telegram, storage_url)):
        assert _post(telegram).startswith("Review #1 sent to 2 editor chat(s)")
        pages = {chat: wait_until(lambda c=chat: _pages(telegram, c), 30, "a page")
                 for chat in EDITORS}
        first = pages[ADMIN][0]
        shown = [line for line in first["text"].split("\n") if line.startswith("КАНДИДАТ")]
        assert shown == [text.split("\n")[0] for text in best_first[:5]]  # by likelihood
        assert "#1 (admin): 5 of 7 posts shown" in ask(telegram, "/review", ADMIN)

        # a reader's tap, on an editor's message: refused, nothing published
        assert _tap(telegram, first, "review:1:p1", READER).startswith("Only the channel's")
        assert _tap(telegram, first, "review:1:next", ADMIN) == "Showing posts 6–7."
        second = {chat: wait_until(lambda c=chat: _pages(telegram, c)[1:], 30, "page 2")[0]
                  for chat in EDITORS}
        assert "posts 6–7 of 7" in second[OTHER]["text"]
        assert _tap(telegram, second[ADMIN], "review:1:next", ADMIN).startswith("There are no")

        answers: dict[int, str] = {}
        taps = [threading.Thread(target=lambda u, d, m: answers.__setitem__(u, _tap(
            telegram, m, d, u)), args=(user, data, message))
            for user, data, message in ((ADMIN, "review:1:p2", first),
                                        (OTHER, "review:1:p6", second[OTHER]))]
        for tap in taps:
            tap.start()
        for tap in taps:
            tap.join(60)
        (published,) = wait_until(lambda: _channel(telegram), 30, "the channel post")
        winner = ADMIN if published == best_first[1] else OTHER
        assert published == (best_first[1] if winner == ADMIN else best_first[5])
        loser = OTHER if winner == ADMIN else ADMIN
        assert answers[winner].startswith("Published as post #1")
        assert answers[loser].startswith("Review #1 has already ended")
        # every editor's messages say what was chosen and by whom; no buttons left
        chosen = 2 if winner == ADMIN else 6
        for chat in EDITORS:
            wait_until(lambda c=chat: all(
                m["text"].startswith(f"Review #1 ended: post {chosen} published by")
                and "reply_markup" not in m
                for m in telegram.messages_in(c) if m["message_id"] in
                {p["message_id"] for p in pages[c] + [second[c]]}), 30, "the pages ended")
        assert _tap(telegram, first, "review:1:p3", ADMIN).startswith("Review #1 has already")
        assert _tap(telegram, first, "review:9:p1", ADMIN).startswith("This review is not")
        assert ask(telegram, "/review", ADMIN) == "No review is waiting for the editors."
        assert ("Review: editors, none pending; 1 decided, 1 published, 7.0 posts shown per"
                " published post") in ask(telegram, "/status", ADMIN)
        assert _channel(telegram) == [published]

        (post,) = telegram.messages_in(CHANNEL_ID)
        telegram.press_button(post, "vote:1:1", READER)
        wait_until(lambda: any(j.kind == "vote" for j in _judged(storage_url)), 30, "the vote")

    judged = _judged(storage_url)
    picks = [j for j in judged if j.kind == "pick"]
    passes = [j for j in judged if j.kind == "pass"]
    assert [(j.text, j.source, j.value, j.outbox_id) for j in picks] == [
        (published, f"editor:{winner}", 1.0, 1)]
    assert sorted(j.text for j in passes) == sorted(set(best_first) - {published})
    assert all(j.value == 0 and j.review_id == 1 for j in passes)
    assert all(j.model_dir == str(bot_model) and j.features["likelihood"] <= -1
               and j.features["lines"] == 2 for j in picks + passes)
    (vote,) = [j for j in judged if j.kind == "vote"]
    assert (vote.text, vote.source, vote.value, vote.outbox_id) == (
        published, f"reader:{READER}", 1.0, 1)
    assert vote.features == picks[0].features  # the post's features, kept in the outbox


@pytest.mark.parametrize("on_timeout", ["publish_best", "skip"])
def test_the_deadline_publishes_the_best_or_skips(tmp_path, bot_model, telegram, on_timeout,
                                                  storage_url):
    url = storage_url
    best_first = _gather(url, str(bot_model))
    raw = _config(tmp_path, bot_model, telegram, url, timeout_minutes=0.05,  # 3 s
                  on_timeout=on_timeout)
    with AppThread(raw, sweep_seconds=0.2):
        assert _post(telegram).startswith("Review #1 sent")
        (page,) = wait_until(lambda: _pages(telegram, OTHER), 30, "a page")
        ended = wait_until(lambda: [m for m in telegram.messages_in(OTHER)
                                    if m["text"].startswith("Review #1 ended")], 30, "the end")
        if on_timeout == "publish_best":
            assert ended[0]["text"].startswith(
                "Review #1 ended: no decision in time; the first post was published.")
            wait_until(lambda: _channel(telegram), 30, "the channel post")
            assert _channel(telegram) == [best_first[0]]
        else:
            assert ended[0]["text"] == "Review #1 ended: no decision in time; nothing published."
            assert _channel(telegram) == []
        assert _tap(telegram, page, "review:1:p2", ADMIN).startswith(
            "Review #1 has already ended (no decision in time")
        assert len(_channel(telegram)) == (on_timeout == "publish_best")
    assert _judged(url) == []  # no editor judged anything


def test_an_edit_by_reply_publishes_the_corrected_text(tmp_path, bot_model, telegram,
                                                       storage_url):
    best_first = _gather(storage_url, str(bot_model))
    with AppThread(_config(tmp_path, bot_model, telegram, storage_url)):
        _post(telegram)
        (page,) = wait_until(lambda: _pages(telegram, OTHER), 30, "a page")
        corrected = "КАНДИДАТ 3\n@\nСТРОКА ПОЛУЧШЕ"
        start = len(telegram.calls)
        # the same message id in a reader's own chat is no review there: a plain text
        telegram.send_text(corrected, user_id=READER, reply_to=page)
        plain = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == READER, after=start)
        assert plain.params["text"].startswith("I answer commands")
        telegram.send_text(corrected, user_id=OTHER, reply_to=page)
        answer = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == OTHER, after=start)
        assert answer.params["text"].startswith("Published as post #1")
        assert _channel(telegram) == [corrected + "\n#neurobugurt"]
    judged = _judged(storage_url)
    (edit,) = [j for j in judged if j.kind == "edit"]
    assert (edit.text, edit.edited, edit.source) == (
        best_first[3], corrected + "\n#neurobugurt", f"editor:{OTHER}")
    assert sorted(j.text for j in judged if j.kind == "pass") == sorted(
        best_first[:3] + best_first[4:5])


def test_a_review_survives_a_restart_and_its_buttons_still_work(tmp_path, bot_model, telegram,
                                                                storage_url):
    best_first = _gather(storage_url, str(bot_model))
    raw = _config(tmp_path, bot_model, telegram, storage_url)
    with AppThread(raw):
        _post(telegram)
        (page,) = wait_until(lambda: _pages(telegram, ADMIN), 30, "a page")
    with AppThread(raw):  # a new process: the review is in the database
        assert "#1 (admin)" in ask(telegram, "/review", ADMIN)
        assert _tap(telegram, page, "review:1:p4", ADMIN).startswith("Published as post #1")
        assert _channel(telegram) == [best_first[3]]


def test_review_mode_with_nothing_gathered_samples_candidates_now(tmp_path, bot_model,
                                                                   telegram):
    url = f"sqlite:///{tmp_path / 'data' / 'neurobugurt.sqlite3'}"
    raw = _config(tmp_path, bot_model, telegram, url, choices=3)
    with AppThread(raw) as bot:
        wait_until(lambda: bot.call(bot.runner.schedule.job), 30, "the posting job")
        bot.call(bot.runner.schedule.run_now)  # the scheduled time: a review, not a post
        (page,) = wait_until(lambda: _pages(telegram, ADMIN), 60, "a page")
        assert "posts 1–3 of 3" in page["text"] and page["text"].count("#neurobugurt") == 3
        assert _tap(telegram, page, "review:1:none", OTHER) == "Review #1: nothing published."
        assert _channel(telegram) == []
    judged = _judged(url)
    assert [j.kind for j in judged] == ["pass"] * 3
    assert all(j.features["likelihood"] is None for j in judged)  # sampled: no score kept


def test_the_first_decision_wins_across_database_connections(database):
    """Two processes' connections decide one review at once: one wins, one post is stored."""
    url = database.engine.url.render_as_string(hide_password=False)
    store = ReviewStore(database, Outbox(database, []))
    candidates = [Candidate(i, f"ПОСТ {i}", 0.45, {"likelihood": -1.0}) for i in (1, 2, 3)]
    review_id = store.open("schedule", "m", "likelihood", candidates, 3, deadline=1e12)
    others = [open_database(url) for _ in range(4)]
    results: list = [None] * len(others)
    barrier = threading.Barrier(len(others))

    def decide(i: int) -> None:
        theirs = ReviewStore(others[i], Outbox(others[i], []))
        review = theirs.get(review_id)
        number = 1 + i % 3
        (chosen,) = theirs.candidates(review_id, number, number)
        barrier.wait(30)
        results[i] = theirs.decide(review, Decision(PICK, number, user_id=100 + i), chosen)

    try:
        threads = [threading.Thread(target=decide, args=(i,)) for i in range(len(others))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for other in others:
            with contextlib.suppress(Exception):
                other.close()
    won = [r for r in results if r is not None]
    assert len(won) == 1 and won[0].status == "published"
    with database.read() as conn:
        outbox = conn.exec_driver_sql("SELECT text FROM outbox").all()
    assert outbox == [(f"ПОСТ {won[0].chosen}",)]
    judged = judgements.read(database)
    assert sorted(j.kind for j in judged) == ["pass", "pass", "pick"]
    assert {j.source for j in judged} == {f"editor:{won[0].decided_by}"}


def test_auto_mode_publishes_the_best_as_before_and_keeps_the_votes(tmp_path, bot_model,
                                                                   telegram):
    url = f"sqlite:///{tmp_path / 'data' / 'neurobugurt.sqlite3'}"
    best_first = _gather(url, str(bot_model))
    raw = _config(tmp_path, bot_model, telegram, url)
    del raw["review"]  # the default: auto
    with AppThread(raw):
        assert ask(telegram, "/post", ADMIN).startswith("Post #1 (temperature 0.45)")
        assert _channel(telegram) == [best_first[0]]
        assert _pages(telegram, ADMIN) == [] and _pages(telegram, OTHER) == []
        assert "Review: auto" in ask(telegram, "/status", ADMIN)
        (post,) = telegram.messages_in(CHANNEL_ID)
        for value in ("1", "1", "-1"):  # the same vote twice is one judgement; a change another
            _tap(telegram, post, f"vote:1:{value}", READER)
    database = open_database(url)
    try:
        with database.read() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM reviews").scalar_one() == 0
        judged = judgements.read(database)
    finally:
        database.close()
    assert [(j.kind, j.value, j.text, j.model_dir) for j in judged] == [
        ("vote", 1.0, best_first[0], str(bot_model)), ("vote", -1.0, best_first[0], str(bot_model))]


def test_pages_speak_bot_language_and_each_editor_is_answered_in_theirs(tmp_path, bot_model,
                                                                        telegram, storage_url):
    """bot.language ru: the shared pages, buttons and ended lines are Russian; an English editor's
    tap is answered in English, a Russian one's in Russian."""
    best_first = _gather(storage_url, str(bot_model))
    raw = _config(tmp_path, bot_model, telegram, storage_url)
    raw["bot"]["language"] = "ru"
    telegram.speaks(ADMIN, "ru")  # OTHER keeps the fake's English language_code
    with AppThread(raw):
        assert _post(telegram).startswith("Отбор #1 ушёл редакторам (чатов: 2): показал 5 из 7")
        (page,) = wait_until(lambda: _pages(telegram, OTHER), 30, "a page")
        assert page["text"].startswith("Отбор #1: посты 1–5 из 7, лучшие сверху")
        buttons = [b["text"] for row in page["reply_markup"]["inline_keyboard"] for b in row]
        assert buttons[-2:] == [RU.t("review.next"), RU.t("review.none")] == ["Ещё", "Мимо"]
        assert _tap(telegram, page, "review:1:next", OTHER) == "Showing posts 6–7."
        assert _tap(telegram, page, "review:1:p2", ADMIN).startswith("Запостил, это пост #1")
        assert _tap(telegram, page, "review:1:p1", OTHER).startswith("Review #1 has already ended")
        ended = wait_until(lambda: [m for m in telegram.messages_in(OTHER)
                                    if m["text"].startswith("Отбор #1 закрыт")], 30, "ended")
        assert ended[0]["text"].startswith("Отбор #1 закрыт: запощен пост 2, решил ")
        status = ask(telegram, "/status", ADMIN)
        assert "Отбор: решают редакторы, никто не ждёт; решено: 1, запощено: 1" in status
    assert _channel(telegram) == [best_first[1]]
