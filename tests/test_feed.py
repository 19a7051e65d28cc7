"""The feed (generator/feed.py): its memory against repetition, the corpus-line filter, searches
run side by side, `python -m generator feed`, and the pool's memory in the database."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from bot.pool_store import PoolStore
from common.corpus import LINE_BREAK
from common.db import open_database
from generator import feed, gate, modeldir
from generator.feed import FeedMemory, FeedRules
from generator.novelty import NoveltyIndex
from generator.sample import Candidate, Generator
from generator.search import LineSearch, SearchConfig
from generator.tag import TAG, finish
from harness.pipeline import (
    OTHER,
    READER,
    AppThread,
    ask,
    bot_config,
    query,
    run,
    wait_until,
    write_config,
)

torch.set_num_threads(1)
CORPUS = ["ТЫ ИДЕШЬ В ШКОЛУ\n@\nА ТАМ НИКОГО НЕТ СОВСЕМ\n@\nПРОСЫПАЕШЬСЯ",
          "РЕШИЛ КУПИТЬ ХЛЕБ\n@\nМАГАЗИН ЗАКРЫТ"]
SMALL = SearchConfig(lines_drawn=6, beam=2, min_lines=2)


@pytest.fixture(scope="module")
def tiny(bot_model):
    return Generator.load(bot_model)


def _memory(posts=(), **rules) -> FeedMemory:
    return FeedMemory(FeedRules(**rules), NoveltyIndex.build(CORPUS), list(posts))


def test_memory_refuses_a_remembered_line_a_shared_phrase_and_a_repeated_opening():
    memory = _memory([finish("КОРОЧЕ ЕДУ В МЕТРО\n@\nВИЖУ ДЕДА С БАЯНОМ В ВАГОНЕ")])
    assert memory.refuses("ВИЖУ ДЕДА С БАЯНОМ В ВАГОНЕ", 2)
    assert memory.refuses("А ПОТОМ ДЕДА С БАЯНОМ В ТАМБУР", 2)  # 4 words of a remembered line
    assert not memory.refuses("ДЕДА С КОТОМ", 2)  # 2 words shared: a different line
    assert memory.refuses("КОРОЧЕ ИДУ ДОМОЙ", 0)  # opens as the last post did
    assert not memory.refuses("КОРОЧЕ ИДУ ДОМОЙ", 1)  # the same words inside a post are fine
    assert not memory.refuses(TAG, 1) and not memory.lines["NEURO"]  # the tag is no line
    assert memory.refuses("вижу дедов с баяном в вагоне", 2)  # other endings, other case


def test_memory_refuses_corpus_lines_of_three_words_and_keeps_short_ones():
    memory = _memory()
    assert memory.refuses("А ТАМ НИКОГО НЕТ СОВСЕМ", 1)
    assert not memory.refuses("ПРОСЫПАЕШЬСЯ", 1)  # real posts copy one-word lines all the time
    assert not memory.refuses("А ТАМ НИКОГО НЕТ", 1)  # not a line of the corpus


def test_memory_forgets_the_oldest_posts_past_its_size_and_openings_past_their_window():
    posts = [f"ПОСТ НОМЕР {i}\n@\nСТРОКА ОДИН ДВА {i}" for i in range(5)]
    memory = _memory(posts, memory=3, opening_window=2)
    assert not memory.refuses("СТРОКА ОДИН ДВА 1", 1)  # forgotten
    assert memory.refuses("СТРОКА ОДИН ДВА 2", 1)
    assert set(memory.openings) == {"ПОСТ"} and len(memory.openings) == 2
    nothing = _memory(posts, memory=0)
    assert not nothing.refuses("СТРОКА ОДИН ДВА 4", 1)


def test_an_index_written_before_lines_were_kept_loads_and_copies_no_line(tmp_path):
    index = NoveltyIndex.build(CORPUS)
    arrays = {k: v for k, v in index.to_arrays().items() if not k.startswith("line_")}
    np.savez(tmp_path / modeldir.NOVELTY_FILE, **arrays)
    old = modeldir.load_novelty(tmp_path)
    assert old.line_filter is None and not old.copies_line("А ТАМ НИКОГО НЕТ СОВСЕМ")
    modeldir.save_novelty(tmp_path, index)
    assert modeldir.load_novelty(tmp_path).copies_line("А ТАМ НИКОГО НЕТ СОВСЕМ")


def test_searches_side_by_side_draw_what_one_search_draws_and_finish_gated_posts(tiny):
    search = LineSearch(tiny, SMALL)
    alone = search.post(torch.Generator().manual_seed(4))
    assert search.posts(torch.Generator().manual_seed(4), 1) == [alone]
    many = search.posts(torch.Generator().manual_seed(5), 6)
    assert len(many) == 6
    finished = [post for post in many if post is not None]
    assert len(finished) >= 3, "the tiny model's searches finished too few posts"
    assert len({text for text, _ in finished}) == len(finished)  # each its own draws
    for text, likelihood in finished:
        assert gate.form_reason(text) is None and likelihood < 0


def test_a_search_writes_no_line_its_avoid_refuses(tiny):
    first = [text for text, _ in filter(None, LineSearch(tiny, SMALL).posts(
        torch.Generator().manual_seed(6), 4))]
    assert first
    banned = {line for text in first for line in text.split(LINE_BREAK)}
    seen = []

    def avoid(line: str, depth: int) -> bool:
        seen.append(line)
        return line in banned

    again = LineSearch(tiny, SMALL, avoid=avoid).posts(torch.Generator().manual_seed(6), 4)
    assert seen and any(line in banned for line in seen), "the same seed drew no banned line"
    for text, _ in filter(None, again):
        assert banned.isdisjoint(text.split(LINE_BREAK))


def test_a_feed_repeats_no_line_and_the_same_seed_gives_the_same_feed(tiny):
    rules = FeedRules(memory=50)
    posts = list(feed.feed(tiny, 6, 3, (0.8,), rules, seed=9))
    assert len(posts) == 6
    lines = [line for post in posts for line in feed.lines_of(post)]
    assert len(lines) == len(set(lines)), "a line of the feed was written twice"
    assert all(post.endswith("\n" + TAG) for post in posts)
    assert list(feed.feed(tiny, 6, 3, (0.8,), rules, seed=9)) == posts
    # a feed that goes on after these posts writes none of their lines
    memory = FeedMemory(rules, tiny.novelty, posts)
    rng = torch.Generator().manual_seed(9)
    more = [feed.next_post(tiny, memory, 3, 0.8, rng) for _ in range(4)]
    assert any(more)
    assert set(lines).isdisjoint(line for post in filter(None, more)
                                 for line in feed.lines_of(post.text))


@pytest.mark.slow
def test_generator_feed_prints_posts_in_the_sample_format(bot_model, tmp_path):
    config = write_config(tmp_path, bot_config(tmp_path, bot_model) | {
        "pool": {"reply_searches": 2, "channel_searches": 3}})
    def feed_of(*extra: str):
        return run("generator", "feed", "--config", str(config), "-n", "3", *extra,
                   env=dict(os.environ), timeout=300)

    done = feed_of("--seed", "4")
    assert done.returncode == 0, done.stderr
    posts = done.stdout.split("\n\n")
    assert posts[-1] == "" and len(posts[:-1]) == 3
    assert all(gate.form_reason(p.rsplit("\n", 1)[0]) is None for p in posts[:-1])
    assert "best of 3 searches" in done.stderr
    assert feed_of("--seed", "4").stdout == done.stdout
    bad = feed_of("-n", "0")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].endswith("-n must be at least 1")


def test_the_pool_remembers_its_feed_across_models_and_forgets_past_the_memory(database):
    store = PoolStore(database)
    made = [Candidate(f"ПОСТ {i}\n@\nСТРОКА {i}\n{TAG}", -1.0) for i in range(6)]
    store.add("old", "reply", 0.5, made[:4], [-1.0] * 4)
    assert store.take("old", 0.5, 3)  # three handed out, one still ready
    store.add("old", "channel", 0.5, made[4:], [-1.0, -2.0])
    assert store.best_channel("old")[0] == made[4].text  # published; the other dropped
    assert store.recent("reply", 10) == [c.text for c in made[:4]]  # ready ones count too
    assert store.recent("channel", 10) == [made[4].text]
    # a swap drops the old model's ready post, and keeps what readers saw for the memory
    store.drop_others("new", memory=2)
    assert store.recent("reply", 10) == [c.text for c in made[:3]]
    with database.write() as conn:  # a week later: only the last 2 of each kind stay
        conn.exec_driver_sql("UPDATE pool SET used_at = used_at - 7 * 86400")
    store.drop_others("new", memory=2)
    assert store.recent("reply", 10) == [c.text for c in made[1:3]]
    assert store.recent("channel", 10) == [made[4].text]


def test_a_model_directory_without_line_filter_still_feeds(bot_model, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(bot_model, old)
    index = modeldir.load_novelty(old)
    index.line_filter = None
    modeldir.save_novelty(old, index)
    posts = list(feed.feed(Generator.load(old), 2, 2, (0.8,), FeedRules(), seed=3))
    assert posts


def test_a_starter_feed_is_stored_once_per_model_in_turn_over_the_temperatures(database):
    store, posts = PoolStore(database), [f"ПОСТ {i}\n@\nСТРОКА\n{TAG}" for i in range(5)]
    assert store.seed("m", posts, (0.4, 0.5)) == 5
    assert store.ready("m") == {0.4: 3, 0.5: 2}
    assert [store.take("m", 0.5)[0] for _ in range(5)] == [posts[i] for i in (1, 3, 0, 2, 4)]
    assert store.seed("m", posts, (0.4, 0.5)) == 0  # once, even after it was handed out
    assert PoolStore(open_database(database.engine.url)).seed("m", posts, (0.4,)) == 0
    assert store.seed("other", [], (0.4,)) == 0 and store.ready("other") == {}


def test_a_fresh_bot_hands_out_its_models_starter_feed_first(tmp_path, bot_model, telegram):
    model = shutil.copytree(bot_model, tmp_path / "model")
    starter = [f"СТАРТОВЫЙ ПОСТ {i}\n@\nГОТОВ С ПЕРВОЙ СЕКУНДЫ\n{TAG}" for i in range(4)]
    modeldir.save_starter(model, starter)
    assert modeldir.load_starter(model) == starter
    raw = bot_config(tmp_path, model, telegram, channel=False, temperatures=[0.85])
    raw["pool"] = {"size": 2, "channel_candidates": 0, "channel_searches": 0}
    database = tmp_path / "data" / "neurobugurt.sqlite3"
    with AppThread(raw):
        # more ready posts than pool.size: the worker samples nothing while they last
        wait_until(lambda: len(query(database, "SELECT id FROM pool")) == 4, 60, "the starter")
        first = ask(telegram, "/bugurt", READER)
        second = ask(telegram, "/bugurt", OTHER)
    assert [first, second] == starter[:2]
    assert [text for (text,) in query(database, "SELECT text FROM pool ORDER BY id")] == starter


def test_feed_bench_counts_shared_lines_pairs_and_copies():
    from bench.feed_bench import measure

    posts = [["А", "Б", "В"], ["А", "Б", "Г"], ["Д", "Е"], ["ТЫ ЖЕ", "Е"]]
    m = measure(posts, corpus_lines={"В", "Д"})
    assert m["shared"] == 6 / 10  # А, Б twice each, Е twice
    assert m["pairs"] == 1  # posts 1 and 2 share two lines; 3 and 4 only one
    assert m["copied"] == 2 / 10 and m["ty"] == 1 / 4 and m["lines"] == 10 / 4
