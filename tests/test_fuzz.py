"""Fuzzing with hypothesis where outside input enters: wall text on its way through SQLite and the
cleaner into the corpus, config values (also through ${ENV}), and the prime text of /bugurt,
inline queries and /schedule arguments through the bot's real Runner and a real trained model.
No input may raise an unexpected exception; a bad one gets one clear line.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from bot.chat import Sender
from bot.i18n import texts_for
from bot.prime import MAX_PRIME_CHARS, clean_prime
from bot.runner import split_command
from bot.terminal import TerminalChat
from bot.wiring import build_runner
from common.cli import UserError
from common.config import Config, config_from_dict, load_config
from common.corpus import read_posts, split_paths, write_corpus
from common.db import open_database, storage_url
from harness.fakes.vk import OWNER_ID, make_item
from scraper.clean import build_corpus
from scraper.store import PostStore, ScrapeState


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
# Any code point, lone surrogates included (a JSON `\ud83d` escape decodes to one).
ANY_TEXT = st.text(st.characters(codec=None), max_size=300)
WALL_TEXT = st.one_of(
    ANY_TEXT,
    st.lists(st.sampled_from(["@", "\n", "\n\n", " @ ", "БУГУРТ-ТРЕД", "#тег", "https://a.ru",
                              "ТЫ ПРИШЕЛ", "\u2028", "\x85", "\r\n", "＠", "___", "\ufeff"]))
    .map("".join),
)

# ----- wall text → SQLite → cleaner → corpus file ------------------------------------------------

@fuzz(150)
@given(st.lists(st.tuples(WALL_TEXT, st.booleans(), st.booleans()), max_size=6))
def test_any_wall_text_reaches_the_corpus_file_intact(tmp_path, posts):
    folder = tmp_path / "wall"
    shutil.rmtree(folder, ignore_errors=True)  # one folder, emptied for every example
    database = open_database(storage_url(str(folder / "db.sqlite3")))
    owner = OWNER_ID
    items = [make_item(i, 1_600_000_000 + i, text, owner, marked_as_ads=int(ad),
                       **({"copy_history": [{"id": 1}]} if repost else {}))
             for i, (text, ad, repost) in enumerate(posts, start=1)]
    store = PostStore(database)
    store.save_page(owner, items, ScrapeState(owner, run_newest_id=len(items)), True)
    result = build_corpus(store.raw_posts())
    database.close()
    write_corpus(folder / "corpus.txt", result.bugurts)
    assert read_posts(folder / "corpus.txt") == result.bugurts
    train, val = (read_posts(p) for p in split_paths(folder / "corpus.txt"))
    assert train + val == result.bugurts
    assert result.kept_posts + sum(result.dropped.values()) == len(items)


# ----- config values -----------------------------------------------------------------------------

FIELDS = ["vk.community", "vk.post_community", "telegram.admins", "telegram.channel",
          "schedule.misfire_grace_seconds", "bot.cooldown_seconds", "bot.temperatures",
          "bot.candidates", "storage.db"]


def load_with_env(folder, key: str, value: str) -> Config:
    section, name = key.split(".")
    path = folder / "config.yaml"
    path.write_text(f"{section}:\n  {name}: ${{NB_FUZZ}}\n", encoding="utf-8")
    os.environ["NB_FUZZ"] = value
    try:
        return load_config(path)
    finally:
        del os.environ["NB_FUZZ"]


@fuzz(300)
@given(st.sampled_from(FIELDS),
       st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40))
@example("schedule.misfire_grace_seconds", "١٢")  # Arabic-Indic digits
@example("bot.temperatures", "0.5, 1e999")
@example("vk.post_community", "0\x1f")  # str.strip() drops \x1f, int() does not
def test_any_env_value_gives_a_config_or_one_line(tmp_path, key, value):
    try:
        assert isinstance(load_with_env(tmp_path, key, value), Config)
    except UserError as exc:
        assert "\n" not in str(exc) and key in str(exc)


@pytest.mark.parametrize("text", [
    "bot:\n  cooldown_seconds: " + "9" * 400 + "\n",  # float(int) overflows
    "bot:\n  temperatures: [" + "9" * 400 + "]\n",
    "schedule:\n  misfire_grace_seconds: " + "9" * 5000 + "\n",  # PyYAML's int() limit
    "bot: " + "[" * 3000 + "]" * 3000 + "\n",  # PyYAML's recursive composer
], ids=["huge-float", "huge-temperature", "5000-digits", "deep-nesting"])
def test_pathological_config_files_give_one_line(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


# ----- the prime text of /bugurt through the Runner -----------------------------------------------


@pytest.fixture(scope="module")
def runner(tmp_path_factory, bot_model):
    folder = tmp_path_factory.mktemp("runner")
    config = config_from_dict({
        "storage": {"db": str(folder / "bot.sqlite3")}, "generator": {"model_dir": str(bot_model)},
        "telegram": {"token": ""}, "vk": {"token": "", "post_token": ""},
        "schedule": {"timezone": "UTC"}, "bot": {"candidates": 4},
    })
    loop = asyncio.new_event_loop()

    async def start():
        scheduler = AsyncIOScheduler(timezone="UTC")
        built = build_runner(config, "config.yaml", scheduler, [])
        scheduler.start()
        await built.start()
        return built, scheduler

    built, scheduler = loop.run_until_complete(start())
    yield built, loop
    loop.run_until_complete(built.close())
    scheduler.shutdown(wait=False)
    loop.close()


# Mostly the model's own alphabet (capitals, @ lines), with emoji and control characters mixed in.
PRIME_TEXT = st.lists(st.sampled_from(
    list("БАТЯКОГДПРИШЕЛНУМЙЗСВабвгдеёжзий ") + ["\n@\n", "\n", "😀", "\x00", "\u200b", "!"]
), max_size=60).map("".join)
EN = texts_for("en")
SHORT_ANSWERS = {EN.t("no_good_post"), EN.t("prime_empty"), EN.t("busy")}
LEFT_OUT = EN.t("left_out", chars="")


@fuzz(100)
@given(st.one_of(ANY_TEXT, PRIME_TEXT, PRIME_TEXT, st.text(max_size=2000), st.sampled_from(
    ["😀😀😀", "\x00\x07\x1b[31m", "ПРИШЕЛ НА ПАРУ\n@\nА ТАМ", "@", "\n\n\n", "ß ﬁ ǅ İ", "ʼn"])))
@example("Я" * 10_000)
def test_any_prime_text_gets_a_post_or_one_short_answer(runner, prime):
    built, loop = runner
    out = io.StringIO()
    name, addressee, args = split_command(f"/bugurt {prime}")  # as the Telegram handler does
    assert (name, addressee) == ("bugurt", "")
    for sender in (Sender(1, is_admin=True, texts=EN), Sender(2, is_admin=False, texts=EN)):
        built._last_bugurt.clear()  # noqa: SLF001 - every example starts out of cooldown
        loop.run_until_complete(built.command(name, args, sender, TerminalChat(out, EN)))
    replies = [r for r in out.getvalue().split("\n\n") if r.strip()]
    event("post" if replies[-1].endswith("#neurobugurt") else replies[-1][:20])
    start = built.slot.generator.vocab.normalize_prime(clean_prime(args))
    if len(replies) == 2:  # one answer a sender: no characters left out
        for reply in replies:  # a sender may get a post while the other is told to try again
            assert not reply.endswith("#neurobugurt") or reply.startswith(start), (start, reply)
    assert 2 <= len(replies) <= 4
    for reply in replies:
        reply = reply.strip("\n")
        is_post = reply.endswith("\n#neurobugurt") and "\n\n" not in reply
        known = reply in SHORT_ANSWERS or reply.startswith(LEFT_OUT)
        too_long = reply.startswith("Your beginning has ") and f"{MAX_PRIME_CHARS} fit" in reply
        assert is_post or known or too_long, repr(reply)


# ----- inline queries through the Runner ----------------------------------------------------------

INLINE_NOTES = {EN.n("inline.too_long", MAX_PRIME_CHARS), EN.t("inline.no_chars"),
                EN.t("inline.slow_down"), EN.t("inline.busy"), EN.t("inline.no_good_post")}


def _stored(built) -> list[tuple]:
    """What a query or a refused command must not change: the outbox, the votes, the settings."""
    with built.db.read() as conn:
        return [conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY 1").all()
                for table in ("outbox", "deliveries", "votes")] + [
            conn.exec_driver_sql("SELECT * FROM bot_state WHERE key != 'heartbeat'").all()]


@fuzz(60)
@given(st.one_of(ANY_TEXT, PRIME_TEXT, st.text(max_size=600)), st.integers(1, 2**40))
@example("Я" * 300, 1)
@example("", 2)
@example("Н\n@\nБШ\nЕАЕ", 1)  # its last line ran to the length cap: once cut off the prime
def test_any_inline_query_gets_posts_or_one_short_note(runner, query, user_id):
    built, loop = runner
    before = _stored(built)
    answer = loop.run_until_complete(built.inline(query, user_id, EN))
    event("posts" if answer.posts else answer.note[:20])
    if answer.posts:
        assert not answer.note and len(answer.posts) <= built.config.inline.posts
        start = built.posts.read(query).text  # cleaned, characters the model lacks left out
        for post in answer.posts:
            assert post.endswith("\n#neurobugurt") and post.startswith(start), (start, post)
    else:
        # Telegram shows the note on a button: one line of at most 64 characters
        assert answer.note in INLINE_NOTES and len(answer.note) <= 64 and "\n" not in answer.note
    assert _stored(built) == before


# ----- /schedule arguments through the Runner -----------------------------------------------------

CRON_PART = st.sampled_from(["*", "*/5", "0", "7", "59", "60", "1-5", "5-1", "mon", "sun-sat",
                             "1,2", ",", "-", "*/0", "L", "last", "99999999999999999999", "٣"])


@fuzz(80)
@given(st.one_of(st.lists(CRON_PART, max_size=7).map(" ".join), ANY_TEXT,
                 st.lists(CRON_PART, min_size=5, max_size=5).map("\n".join)))
@example("0 9 31 2 *")  # 31 February: never fires
@example("0 9 * * 8")
def test_any_schedule_argument_is_set_or_refused_with_one_line(runner, args):
    built, loop = runner
    out = io.StringIO()
    before = _stored(built)
    cron_before = built.schedule.describe(EN)
    loop.run_until_complete(built.command("schedule", args, Sender(1, is_admin=True, texts=EN),
                                          TerminalChat(out, EN)))
    reply = out.getvalue().strip("\n")
    event(reply.split(" ")[0])
    if reply.startswith("Schedule set: "):
        line = " ".join(args.split())
        assert built.settings.schedule_cron(built.config.schedule.cron) == line
        assert reply == EN.t("scheduled", schedule=built.schedule.describe(EN))
    elif args.strip():
        assert reply.startswith("Can't use '") and "\n" not in reply and len(reply) < 400, reply
        assert _stored(built) == before and built.schedule.describe(EN) == cron_before
    else:
        assert reply == EN.t("schedule_usage", schedule=cron_before)
