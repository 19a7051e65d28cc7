"""The cleaner: one hand-written case per rule, hypothesis properties, and the real wall."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from common.corpus import format_posts, parse_posts
from harness.paths import shared_file
from scraper.clean import (
    DROP_REASONS,
    RawPost,
    build_corpus,
    clean_line,
    clean_post,
    dedup_key,
    is_separator,
)

BUGURT = "ПРОСНУЛСЯ\n@\nПОШЁЛ НА РАБОТУ\n@\nСУББОТА"


def test_plain_bugurt_passes_unchanged():
    assert clean_post(BUGURT) == [BUGURT]


def test_separator_variants_become_one_at_line():
    raw = "ПРОСНУЛСЯ\n@ \nПОШЁЛ НА РАБОТУ\n \u200c@\u0327 \n@@@\n//@\nСУББОТА"
    assert clean_post(raw) == [BUGURT]
    assert is_separator("＠") and is_separator(" @ ") and not is_separator("@ НЕТ")


def test_whitespace_and_invisible_characters_normalised():
    raw = "\u200cПРОСНУЛСЯ   \n@\n\tПОШЁЛ\u00a0НА  РАБОТУ\r\n@\nСУББОТА\u200b"
    assert clean_post(raw) == [BUGURT]


def test_signature_and_credit_stripped():
    raw = BUGURT + "\n\nпредложено через @tgbtbot\nБУГУРТ-ТРЕД"
    assert clean_post(raw) == [BUGURT]


def test_hashtags_stripped_and_hashtag_only_lines_vanish():
    raw = "#БТnews\n\nПРОСНУЛСЯ #утро\n@\n#олдтоп@bugurt_thread\nПОШЁЛ НА РАБОТУ\n@\nСУББОТА"
    assert clean_post(raw) == [BUGURT]


def test_links_and_mentions_stripped():
    raw = (
        "ПРОСНУЛСЯ https://t.me/x\n@\n[club1|ПОШЁЛ НА РАБОТУ]\n@\nСУББОТА\n\n"
        "medialeaks.ru/0304sav?utm_source=bgtg\nwww.example.org @bugurt_thread"
    )
    assert clean_post(raw) == [BUGURT]
    assert clean_line("Т.Д. ОЗ. БАЙКАЛ И Т.П.") == "Т.Д. ОЗ. БАЙКАЛ И Т.П."  # not domains


def test_preamble_and_editor_note_blocks_dropped():
    raw = "Основано на реальных событиях\n\n" + BUGURT + "\n_____________\nПрим. ред.: шутка"
    assert clean_post(raw) == [BUGURT]


def test_postscripts_and_short_dividers_end_the_bugurt():
    assert clean_post(BUGURT + "\nP.S.\nБерегите консольки\n@\nВсем пока") == [BUGURT]
    assert clean_post(BUGURT + "\n——\nВсем хорошего вечера)") == [BUGURT]
    assert clean_post("PS VITA\n@\nPS4") == ["PS VITA\n@\nPS4"]  # a console, not a P.S.


def test_blank_lines_inside_a_bugurt_are_closed():
    raw = "ПРОСНУЛСЯ\n@\nПОШЁЛ НА РАБОТУ\n\n@\n\nСУББОТА"
    assert clean_post(raw) == ["ПРОСНУЛСЯ\n@\nПОШЁЛ НА РАБОТУ\n@\nСУББОТА"]


def test_bundled_bugurts_split_at_dividers():
    other = "ЛЕГ СПАТЬ\n@\nПРОСНУЛСЯ"
    assert clean_post(BUGURT + "\n____________\n\n" + other + "\n———\n" + BUGURT) == [
        BUGURT,
        other,
        BUGURT,
    ]


def test_non_bugurts_give_nothing():
    assert clean_post("") == []
    assert clean_post("БУГУРТ-ТРЕД") == []
    assert clean_post("Друзья, конкурс! Репост и лайк.\n\nБУГУРТ-ТРЕД") == []
    assert clean_post("ОДНА СТРОКА\n@\n\nБУГУРТ-ТРЕД") == []
    assert clean_post("...\n@\n...\n@\n…") == []
    assert clean_post("16:00\n@\nЗАКУПАЕШЬ") == ["16:00\n@\nЗАКУПАЕШЬ"]


def test_dedup_key_ignores_case_punctuation_whitespace():
    assert dedup_key("СРЕДА\n@\nСРЕДА!") == dedup_key("среда \n@\n Среда")
    assert dedup_key("СРЕДА\n@\nСРЕДА") != dedup_key("СРЕДА\n@\nПЯТНИЦА")


def test_build_corpus_drops_and_counts_reasons_in_date_order():
    posts = [
        RawPost(5, 500, "ЛЕГ СПАТЬ\n@\nПРОСНУЛСЯ\n\nБУГУРТ-ТРЕД"),
        RawPost(1, 100, BUGURT),
        RawPost(2, 200, BUGURT.lower() + "!!"),  # near duplicate of post 1
        RawPost(3, 300, BUGURT.replace("СУББОТА", "РЕКЛАМА"), marked_as_ads=True),
        RawPost(4, 400, BUGURT.replace("СУББОТА", "РЕПОСТ"), is_repost=True),
        RawPost(6, 600, ""),
        RawPost(7, 700, "Слишком длиннобугурт, читайте в telegra.ph/abc"),
        RawPost(8, 800, "Друзья, у нас новый канал, подписывайтесь"),
        RawPost(9, 900, "ОДНА\n@"),
    ]
    result = build_corpus(posts)
    assert result.bugurts == [BUGURT, "ЛЕГ СПАТЬ\n@\nПРОСНУЛСЯ"]
    assert result.kept_posts == 2
    assert dict(result.dropped) == {
        "duplicate": 1,
        "ad": 1,
        "repost": 1,
        "empty": 1,
        "link": 1,
        "no_separator": 1,
        "too_short": 1,
    }
    assert result.characters == len(BUGURT) + len("ЛЕГ СПАТЬ\n@\nПРОСНУЛСЯ")
    assert set(result.dropped) <= set(DROP_REASONS)


# Text drawn from the characters that matter to the rules, plus anything at all.
_PIECES = st.sampled_from(
    ["@", " @ ", "@@@", "\n", "\n\n", "___", "—", "#тег", "БУГУРТ-ТРЕД", "http://a.ru/x",
     "предложено через @tgbtbot", "[club1|ИМЯ]", "\u200c", "\u0327", " ", "ТЫ", "СЫЧ", "1", "..."]
)
_TEXT = st.one_of(st.text(), st.lists(st.one_of(_PIECES, st.text(max_size=3))).map("".join))


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_clean_is_idempotent_and_well_formed(text):
    bugurts = clean_post(text)
    for bugurt in bugurts:
        assert clean_post(bugurt) == [bugurt]
        lines = bugurt.split("\n")
        assert all(line.strip() for line in lines), "blank line inside a post"
        assert not is_separator(lines[0]) and not is_separator(lines[-1])
    assert parse_posts(format_posts(bugurts)) == bugurts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**9), _TEXT, st.booleans()), max_size=8))
def test_build_corpus_never_raises_nor_repeats(rows):
    posts = [RawPost(i, date, text, marked_as_ads=ad) for i, (date, text, ad) in enumerate(rows)]
    result = build_corpus(posts)
    keys = [dedup_key(b) for b in result.bugurts]
    assert len(keys) == len(set(keys))
    assert result.kept_posts + sum(result.dropped.values()) == len(posts)


def test_real_wall_keeps_most_posts_and_leaves_no_furniture():
    path = shared_file("bugurtthread/messages-2020-2022.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    result = build_corpus(RawPost(r["id"], r["date"], r["text"]) for r in rows)
    assert 0.8 < result.kept_posts / len(rows) < 0.95
    text = "\n".join(result.bugurts)
    assert "БУГУРТ-ТРЕД" not in text.split("\n")
    assert all(clean_post(b) == [b] for b in result.bugurts)  # idempotent on the real wall
    for furniture in ("предложено через", "https://", "#БТnews", "telegra.ph", "\u200c"):
        assert furniture not in text
