"""The bot answers each reader in their language (Telegram's language_code), what has no reader
in bot.language, and sets its command menu in both; posts are never translated."""

from __future__ import annotations

import asyncio
import io
import re

import pytest

from bot.i18n import texts_for
from bot.prime import MAX_PRIME_CHARS
from bot.terminal import run_terminal
from common.config import config_from_dict
from harness.pipeline import ADMIN, AppThread, ask, bot_config

RU, EN = texts_for("ru"), texts_for("en")
RUSSIAN, UKRAINIAN, ENGLISH, NO_CODE = 501, 502, 503, 504
LATIN_WORD = re.compile(r"(?<![/\w@.#_-])[A-Za-z]{2,}")  # not a /command, @name or #tag


def _russian(text: str) -> str:
    """The text, after checking that it is Russian and holds no Latin-script word."""
    assert re.search("[а-яё]", text, re.IGNORECASE) and not LATIN_WORD.search(text), text
    return text


def _inline_error(telegram, user: int) -> str:
    """The button text of the empty answer the bot gives when answering a query failed."""
    telegram.fail("answerInlineQuery")
    update = telegram.send_inline("кот", user)
    query_id = update["inline_query"]["id"]
    answer = telegram.wait_for("answerInlineQuery", lambda p: str(p["inline_query_id"])
                               == query_id and p["results"] == [] and "button" in p, 60)
    return answer.params["button"]["text"]


def test_each_reader_is_answered_in_their_language(tmp_path, bot_model, telegram):
    raw = bot_config(tmp_path, bot_model, telegram, channel=False)
    del raw["bot"]["language"]  # the default: ru
    for user, code in ((RUSSIAN, "ru"), (UKRAINIAN, "uk"), (ENGLISH, "en"), (NO_CODE, None),
                       (ADMIN, "be")):
        telegram.speaks(user, code)
    with AppThread(raw):
        assert _russian(ask(telegram, "/start", RUSSIAN)) == RU.t("start")
        assert ask(telegram, "/start", ENGLISH) == EN.t("start")
        assert ask(telegram, "/start", NO_CODE) == RU.t("start")  # bot.language
        assert ask(telegram, "/help", UKRAINIAN) == _russian(
            RU.t("help.bugurt", limit=MAX_PRIME_CHARS) + "\n" + RU.t("help.top") + "\n"
            + RU.t("help.help"))
        assert ask(telegram, "/help", ENGLISH).startswith("/bugurt: a fresh bugurt\n")

        post = ask(telegram, "/bugurt", RUSSIAN)
        assert post.endswith("\n#neurobugurt")  # the post itself: never translated
        wait = _russian(ask(telegram, "/bugurt", RUSSIAN))
        assert wait in {RU.n("cooldown", s) for s in range(1, 31)}
        assert ask(telegram, "/frobnicate", RUSSIAN) == RU.t("unknown_command", name="frobnicate")
        too_long = _russian(ask(telegram, "/bugurt " + "БУГУРТ " * 40, UKRAINIAN))
        assert too_long.startswith("В твоём начале ") and f"максимум {MAX_PRIME_CHARS}" in too_long
        assert ask(telegram, "/post", RUSSIAN) == _russian(RU.t("admin_only", name="post"))
        assert ask(telegram, "/frobnicate", ENGLISH) == "I don't know /frobnicate. /help lists " \
                                                        "what I can do."
        assert ask(telegram, "привет", NO_CODE) == RU.t("not_a_command")

        # An admin's replies: /status's labels and what it reports, /help, /schedule, /pause.
        status = ask(telegram, "/status", ADMIN).splitlines()
        assert all(_russian(line.split(":")[0]) for line in status)
        assert RU.t("retrain.none_yet") in status[6] and "ещё не было" in status[4]
        assert status[-4].endswith(RU.t("review.mode_auto"))  # review mode's lines too
        assert status[-3].endswith(RU.t("ranker.none"))
        assert status[-1] == RU.t("status.database_up", dialect="sqlite")  # last while all is well
        assert RU.t("help.admin") in ask(telegram, "/help", ADMIN)
        assert _russian(ask(telegram, "/schedule 0 25 * * *", ADMIN)).startswith(
            "Не могу поставить расписание «0 25 * * *»: в поле «час» нельзя «25».")
        assert ask(telegram, "/pause", ADMIN) == _russian(RU.t("paused"))

        assert _russian(_inline_error(telegram, RUSSIAN)) == RU.t("inline.error")
        assert _inline_error(telegram, ENGLISH) == EN.t("inline.error")

        # The command menu: English for everyone, Russian for ru, uk and be.
        assert set(telegram.menus) == {"", "ru", "uk", "be"}
        menus = {code: {c["command"]: c["description"] for c in commands}
                 for code, commands in telegram.menus.items()}
        assert menus[""] == {"start": EN.t("menu.start"), "bugurt": EN.t("menu.bugurt"),
                             "top": EN.t("menu.top"), "help": EN.t("menu.help")}
        assert menus["ru"] == menus["uk"] == menus["be"] != menus[""]
        assert all(_russian(description) for description in menus["ru"].values())


@pytest.mark.parametrize("language", ["ru", "en"])
def test_terminal_mode_follows_bot_language(tmp_path, bot_model, language):
    raw = bot_config(tmp_path, bot_model, language=language)
    raw["pool"] = {"size": 0, "channel_candidates": 0}  # no worker: only the commands below
    out = io.StringIO()
    lines = "/frobnicate\nhello\n/schedule 61 * * * *\n"
    asyncio.run(run_terminal(config_from_dict(raw), "config.yaml", stdin=io.StringIO(lines),
                             stdout=out))
    tr = texts_for(language)
    said = out.getvalue()
    assert said.startswith(tr.t("terminal.banner"))
    assert tr.t("unknown_command", name="frobnicate") in said and tr.t("not_a_command") in said
    refused = said.split("\n\n")[3]
    if language == "ru":
        assert _russian(refused).startswith("Не могу поставить расписание «61 * * * *»")
        assert "минута" in refused  # the crontab field, named in Russian
    else:
        assert refused.startswith("Can't use '61 * * * *' as a schedule: the minute field")
