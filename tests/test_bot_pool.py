"""The pool of ready posts (bot/pool.py) in the real Application against the fake Bot API:
handed out once, dropped on a model swap, on-demand fallback with "typing", a burst served from
the pool and then from a bounded first-come-first-served queue, the channel's best candidate."""

from __future__ import annotations

import random
import re
import shutil
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from bot.i18n import texts_for
from bot.model_slot import ModelSlot
from bot.pool import Pool
from bot.pool_store import PoolStore
from bot.settings import RuntimeSettings
from common.config import config_from_dict
from common.db import MIGRATIONS, TYPES, open_database, open_storage, storage_url
from generator import gate
from generator.sample import Candidate
from harness.fakes.telegram import FakeTelegram
from harness.pipeline import (
    ADMIN,
    CHANNEL,
    OTHER,
    READER,
    AppThread,
    ask,
    bot_config,
    query,
    wait_until,
)

EN = texts_for("en")  # the suite's Telegram users speak English (harness/fakes/telegram.py)


def _config(tmp_path, bot_model, telegram, channel=False, **pool):
    raw = bot_config(tmp_path, bot_model, telegram, channel=channel, temperatures=[0.85])
    raw["pool"] = {"cpu_share": 1.0, "channel_candidates": 0, "channel_searches": 0,
                   "reply_candidates": 8, **pool}
    return raw


def _ready(tmp_path, kind="reply") -> list[tuple]:
    """(id, model_dir, text) of the ready rows of a kind."""
    return query(tmp_path / "data" / "neurobugurt.sqlite3",
                 "SELECT id, model_dir, text FROM pool WHERE used_at IS NULL AND kind = ?"
                 " ORDER BY id", kind)


def _full(tmp_path, n: int) -> list[tuple]:
    """The ready reply rows once there are at least n (the worker filled the pool)."""
    return wait_until(lambda: len(rows := _ready(tmp_path)) >= n and rows, 60, f"{n} ready posts")


def _typing_to(telegram: FakeTelegram, chat_id: int, after: int = 0) -> int:
    return sum(c.method == "sendChatAction" and c.params["chat_id"] == chat_id
               and c.params["action"] == "typing" for c in telegram.calls[after:])


def test_a_database_of_the_ranker_version_opens_with_its_pool_and_without_realness(tmp_path):
    """Schema 3 gave pool rows the removed ranker's `realness`; 4 drops it, keeping the rows."""
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:3], start=1):
        old.executescript(f"BEGIN;\n{script.format(**TYPES['sqlite'])}\n"
                          f"PRAGMA user_version = {number};\nCOMMIT;")
    old.executemany("INSERT INTO pool (model_dir, kind, temperature, text, score, realness,"
                    " created_at) VALUES ('m', 'channel', 0.6, ?, ?, 1.5, 0)",
                    [("WORSE", -2.0), ("BETTER", -1.0)])
    old.commit()
    old.close()
    database = open_database(storage_url(str(path)))
    try:
        columns = [c["name"] for c in sa.inspect(database.engine).get_columns("pool")]
        assert "realness" not in columns and "score" in columns
        assert PoolStore(database).best_channel("m") == ("BETTER", 0.6)  # by score, rows kept
    finally:
        database.close()
    assert query(path, "PRAGMA user_version") == [(len(MIGRATIONS),)]


def test_two_takers_never_get_the_same_post(database):
    PoolStore(database).add("m", "reply", 0.85, [Candidate(f"POST {i}", -1.0) for i in range(300)],
                            [-1.0] * 300)
    taken: list[list[str]] = [[], []]
    rounds = threading.Barrier(2)

    def taker(mine: list[str]) -> None:
        store = PoolStore(open_database(database.engine.url))  # its own engine, as a process
        for _ in range(151):  # each round both take at once; the last finds the pool empty
            rounds.wait(30)
            mine.extend(store.take("m", 0.85))
        store.db.close()

    threads = [threading.Thread(target=taker, args=(mine,)) for mine in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    both = taken[0] + taken[1]
    assert sorted(both) == sorted(f"POST {i}" for i in range(300))  # each once, none lost
    assert len(taken[0]) == len(taken[1]) == 150  # every round, both got one
    assert PoolStore(database).ready("m") == {}


def test_stores_of_several_processes_fill_the_pool_to_its_size_and_no_further(database):
    first, second = PoolStore(database), PoolStore(open_database(database.engine.url))
    batch, scores = [Candidate(f"POST {i}", -1.0) for i in range(5)], [-1.0] * 5
    assert first.add("m", "reply", 0.85, batch[:1], scores[:1], cap=3) == 1
    assert second.add("m", "reply", 0.85, batch[1:3], scores[1:3], cap=3) == 2  # room for more
    assert first.add("m", "reply", 0.85, batch[3:], scores[3:], cap=3) == 0  # full: dropped
    assert first.add("m", "reply", 0.7, batch[3:4], scores[3:4], cap=3) == 1  # per temperature
    assert second.add("m", "channel", 0.85, batch, scores, cap=4) == 4
    assert first.ready("m") == {0.85: 3, 0.7: 1} and first.gathered("m") == (4, 0.85)
    second.db.close()


def test_pool_hands_out_ready_posts_and_drops_them_on_a_swap(tmp_path, bot_model, telegram):
    other_model = shutil.copytree(bot_model, tmp_path / "other-model")
    with AppThread(_config(tmp_path, bot_model, telegram, size=3)) as bot:
        ready = _full(tmp_path, 3)
        assert {model for _, model, _ in ready} == {str(bot_model)}
        pool_line = re.search(r"^Pool: (\d+) ready", ask(telegram, "/status", ADMIN), re.M)
        assert pool_line and int(pool_line[1]) >= 3, "/status shows the pool"
        # The sampler is held (as by a long on-demand request): pool posts still come at once.
        with bot.runner.slot.generator._lock:  # noqa: SLF001
            start = len(telegram.calls)
            first = ask(telegram, "/bugurt", READER)
            second = ask(telegram, "/bugurt", OTHER)
        assert [first, second] == [text for _, _, text in ready[:2]]
        assert _typing_to(telegram, READER, start) == 0  # a ready post needs no "typing"
        used = query(tmp_path / "data" / "neurobugurt.sqlite3",
                     "SELECT text FROM pool WHERE used_at IS NOT NULL ORDER BY id")
        assert [text for (text,) in used] == [first, second]

        start = len(telegram.calls)
        post = ask(telegram, "/bugurt ПРИШЕЛ НА ПАРУ", ADMIN)  # a beginning: sampled on demand
        assert post.startswith("ПРИШЕЛ НА ПАРУ") and post not in (first, second)
        assert _typing_to(telegram, ADMIN, start) >= 1
        typed = telegram.wait_for("sendChatAction", lambda p: p["chat_id"] == ADMIN, after=start)
        sent = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == ADMIN, after=start)
        assert typed.at <= sent.at

        bot.call(bot.runner.slot.serve, str(other_model))  # what /retrain's swap calls
        assert all(model == str(other_model) for _, model, _ in _ready(tmp_path))
        wait_until(lambda: len(_ready(tmp_path)) >= 3, 60, "the new model's pool")
        assert ask(telegram, "/rollback", ADMIN).startswith("Serving the previous model again")
        assert all(model == str(bot_model) for _, model, _ in _ready(tmp_path))
        assert query(tmp_path / "data" / "neurobugurt.sqlite3",
                     "SELECT COUNT(*) FROM pool WHERE model_dir = ?", str(other_model)) == [(0,)]


def test_empty_pool_samples_on_demand_with_typing(tmp_path, bot_model, telegram):
    with AppThread(_config(tmp_path, bot_model, telegram, size=0)) as bot:
        start = len(telegram.calls)
        post = ask(telegram, "/bugurt", READER)
        assert post.endswith("\n#neurobugurt")
        assert _typing_to(telegram, READER, start) >= 1
        assert _ready(tmp_path) == [] and not bot.runner.pool.batches  # no worker at all


def test_burst_from_the_pool_then_a_bounded_first_come_first_served_queue(
    tmp_path, bot_model, telegram
):
    with AppThread(_config(tmp_path, bot_model, telegram, size=4, queue_limit=3)) as bot:
        wait_until(lambda: len(_ready(tmp_path)) >= 4, 60, "a full pool")
        pooled = [text for _, _, text in _ready(tmp_path)]
        users = list(range(101, 111))
        # The worker refills nothing and the sampler finishes nothing until every request is in.
        with bot.runner.pool.paused():  # as while a retrain trains
            # a search in flight (it takes the sampler line by line) finishes; none starts
            wait_until(lambda: not bot.runner.pool.drawing, 60, "the batch in flight")
            with bot.runner.slot.generator._lock:  # noqa: SLF001
                batches = bot.runner.pool.batches
                start = len(telegram.calls)
                telegram.send_burst([("/bugurt", user) for user in users])
                for user in users[:4] + users[7:]:
                    telegram.wait_for("sendMessage", lambda p, u=user: p["chat_id"] == u,
                                      after=start)
                replies = {c.params["chat_id"]: c.params["text"] for c in telegram.calls[start:]
                           if c.method == "sendMessage"}
                assert sorted(replies) == users[:4] + users[7:]  # the queued three are waiting
                assert [replies[u] for u in users[:4]] == pooled  # the pool in order, each once
                assert [replies[u] for u in users[7:]] == [EN.t("busy")] * 3  # beyond the bound
                for user in users[4:7]:  # "typing" while they wait
                    telegram.wait_for("sendChatAction", lambda p, u=user: p["chat_id"] == u,
                                      after=start)
            for user in users[4:7]:
                telegram.wait_for("sendMessage", lambda p, u=user: p["chat_id"] == u, 60, start)
            time.sleep(0.5)  # a window for a batch (tens of ms here) that must not start
            assert bot.runner.pool.batches == batches and _ready(tmp_path) == []
        served = [c.params["chat_id"] for c in telegram.calls[start:]
                  if c.method == "sendMessage" and c.params["chat_id"] in users[4:7]]
        assert served == users[4:7]  # first come, first served
        posts = [c.params["text"] for c in telegram.calls[start:]
                 if c.method == "sendMessage" and c.params["chat_id"] in users[4:7]]
        assert all(p.endswith("\n#neurobugurt") and p not in pooled for p in posts)
        assert len(_full(tmp_path, 4)) == 4  # unpaused, the worker fills the pool again


@pytest.mark.parametrize("search, gathered", [("lines", 3), ("whole", 20)])
def test_channel_post_is_the_best_of_the_gathered_candidates(tmp_path, bot_model, telegram,
                                                             search, gathered):
    raw = _config(tmp_path, bot_model, telegram, channel=True, size=0, channel_candidates=20,
                  channel_searches=3, search=search)
    with AppThread(raw) as bot:
        wait_until(lambda: len(_ready(tmp_path, "channel")) >= gathered, 60,
                   f"{gathered} candidates")
        database = tmp_path / "data" / "neurobugurt.sqlite3"
        (best, newest), = query(database, "SELECT text, (SELECT MAX(id) FROM pool) FROM pool"
                                " WHERE kind = 'channel' ORDER BY score DESC, id LIMIT 1")
        bot.call(bot.runner.schedule.run_now)
        call = telegram.wait_for("sendMessage", lambda p: p["chat_id"] == CHANNEL, 60)
        assert call.params["text"] == best
        # The others gave way: the next post is gathered afresh.
        assert query(database, "SELECT COUNT(*) FROM pool WHERE kind = 'channel' AND id <= ?"
                     " AND used_at IS NULL", newest) == [(0,)]
        assert query(database, "SELECT text FROM outbox") == [(best,)]


def _inline(telegram: FakeTelegram, text: str, user: int) -> dict:
    """Send an inline query; the parameters of the bot's answerInlineQuery for it."""
    update = telegram.send_inline(text, user)
    query_id = update["inline_query"]["id"]
    return telegram.wait_for("answerInlineQuery", lambda p: str(p["inline_query_id"]) == query_id,
                             60).params


def test_inline_queries_empty_with_text_and_huge(tmp_path, bot_model, telegram):
    raw = _config(tmp_path, bot_model, telegram, size=3)
    raw["inline"] = {"posts": 3, "per_minute": 3}
    with AppThread(raw):
        pooled = [text for _, _, text in _full(tmp_path, 3)]
        empty = _inline(telegram, "", READER)
        assert [r["input_message_content"]["message_text"] for r in empty["results"]] == pooled
        assert empty["is_personal"] and not empty.get("cache_time")  # handed out once
        first = empty["results"][0]
        line = pooled[0].split("\n")[0]  # the title is the first line, cut to 60 with "…"
        title = line if len(line) <= 60 else line[:59] + "…"
        assert first["type"] == "article" and first["title"] == title

        with_text = _inline(telegram, "кот  пришел", READER)
        posts = [r["input_message_content"]["message_text"] for r in with_text["results"]]
        assert posts and all(p.startswith("КОТ ПРИШЕЛ") and p.endswith("#neurobugurt")
                             for p in posts)
        again = _inline(telegram, "КОТ ПРИШЕЛ", READER)  # the same cleaned text: from the cache
        assert again["results"] == with_text["results"] and again["cache_time"] == 60

        for huge, note in (("😀" * 300, EN.t("inline.no_chars")),
                           ("БУГУРТ " * 1500, EN.n("inline.too_long", 150))):
            answer = _inline(telegram, huge, OTHER)
            assert answer["results"] == [] and answer["button"]["text"] == note
            assert len(note) <= 64  # Telegram's limit for the button

        telegram.fail("answerInlineQuery")  # the handler fails: an empty answer, not silence
        failed = _inline(telegram, "КОТ ПРИШЕЛ", OTHER)  # cached posts: no sampling, no limit
        assert failed["results"] and "button" not in failed  # the answer the fake refused
        after = telegram.wait_for("answerInlineQuery", lambda p: str(p["inline_query_id"])
                                  == str(failed["inline_query_id"]) and p["results"] == [], 60)
        assert after.params["button"]["text"] == EN.t("inline.error")

        assert _inline(telegram, "МАМА", READER)["results"]  # the third query this minute
        limited = _inline(telegram, "ПАПА", READER)
        assert limited["results"] == [] and limited["button"]["text"] == EN.t("inline.slow_down")
        assert _inline(telegram, "ПАПА", OTHER)["results"]  # per user


def test_a_ready_reply_is_the_best_of_reply_candidates_drawn_in_rounds(tmp_path, bot_model):
    """pool.reply_candidates 24 at bot.candidates 8: three rounds, the best of all first."""
    raw = bot_config(tmp_path, bot_model, candidates=8)
    raw["pool"] = {"reply_candidates": 24, "search": "whole"}
    config = config_from_dict(raw)
    database = open_storage(config.storage)
    slot = ModelSlot(RuntimeSettings(database), config.generator.model_dir, config.bot.candidates)
    try:
        pool = Pool(database, slot, config)
        one_round = slot.generator.ranked(n=1, temperature=1.0, candidates=8, seed=3)
        reply = pool._draw(slot.generator, "reply", 1.0, random.Random(1))
        channel = pool._draw(slot.generator, "channel", 1.0, random.Random(1))
    finally:
        slot.close()
        database.close()
    assert 0 < len(one_round) <= 8 < len(reply) <= 24  # more than one round's candidates
    assert len(channel) <= 8  # a channel batch is one round
    scores = [c.likelihood for c in reply]
    assert scores == sorted(scores, reverse=True)  # best first: the pool keeps reply[0]


def test_a_ready_reply_by_lines_is_the_best_of_searched_posts_by_likelihood(
        tmp_path, bot_model):
    """pool.search lines (the default): a reply is the best of pool.reply_searches posts built
    line by line, picked by their likelihood."""
    raw = bot_config(tmp_path, bot_model)
    raw["pool"] = {"reply_searches": 3}
    config = config_from_dict(raw)
    database = open_storage(config.storage)
    slot = ModelSlot(RuntimeSettings(database), config.generator.model_dir, config.bot.candidates)
    try:
        pool = Pool(database, slot, config)
        replies = [pool._draw(slot.generator, "reply", 0.85, random.Random(seed))
                   for seed in range(3)]
    finally:
        slot.close()
        database.close()
    found = [post for r in replies for post in r]
    assert found and all(len(r) <= 3 for r in replies) and max(map(len, replies)) > 1
    for r in replies:  # best first: the pool keeps r[0]
        scores = [c.likelihood for c in r]
        assert scores == sorted(scores, reverse=True)
    for post in found:
        assert post.text.endswith("\n#neurobugurt")
        assert gate.form_reason(post.text.removesuffix("\n#neurobugurt")) is None
        assert post.likelihood < 0
