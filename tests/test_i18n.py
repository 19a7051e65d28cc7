"""The message catalogs (locales/): every id said in code has words in every language, with the
same placeholders; Russian plurals; the language a Telegram user is answered in."""

from __future__ import annotations

import os
import re
import shutil
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_keywords
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from bot.i18n import LOCALES, catalog_path, language_of, texts_for
from bot.prime import MAX_PRIME_CHARS
from common.cli import UserError
from common.config import LANGUAGES, config_from_dict

ROOT = Path(__file__).resolve().parent.parent
RU = texts_for("ru")
# Words a Russian line may hold in Latin script: names of things typed or read as they are.
TYPED = re.compile(r"\{[^}]*\}|/\w+|`[^`]*`|\b[a-z_]+(\.[a-z_]+)+\b|python -m|Ctrl-D|"
                   r"\b(bpc|UTC|id|crontab|bits_per_char)\b")
INLINE_NOTES = ("inline.no_chars", "inline.slow_down", "inline.busy", "inline.no_good_post",
                "inline.error")  # each a button's text: at most 64 characters (Bot API)


def _keywords() -> dict:
    """The message-id keywords of the Makefile's KEYWORDS line (what `make messages` extracts)."""
    line = next(x for x in (ROOT / "Makefile").read_text().splitlines()
                if x.startswith("KEYWORDS :="))
    return parse_keywords(re.findall(r"-k (\S+)", line))


def _ids_in_code() -> dict[str, bool]:
    """Every message id the bot's code says → whether it has plural forms."""
    found: dict[str, bool] = {}
    for _, _, message, _, _ in extract_from_dir(ROOT / "bot", keywords=_keywords()):
        plural = isinstance(message, tuple)
        found[message[0] if plural else message] = plural
    return found


def _catalog(language: str):
    with open(catalog_path(language, ".po"), "rb") as fh:
        return read_po(fh, locale=language)


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _list(value: str | tuple | list) -> list[str]:
    """A message's id or words as a list: one item, or one per plural form."""
    return list(value) if isinstance(value, tuple | list) else [value]


def _forms(message) -> list[str]:
    return _list(message.string)


def test_the_code_says_message_ids_and_the_catalogs_know_them():
    ids = _ids_in_code()
    assert {"start", "cooldown", "help.bugurt", "retrain.stage.train"} <= set(ids)
    assert ids["cooldown"] and not ids["start"]  # ngettext ids are plural entries


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_id_has_words_with_the_same_placeholders(language):
    ids = _ids_in_code()
    catalog, english = _catalog(language), _catalog("en")
    known = {m.id[0] if m.pluralizable else m.id: m for m in catalog if m.id}
    assert sorted(set(ids) - set(known)) == [], f"ids without {language} words: run make messages"
    assert sorted(set(known) - set(ids)) == [], f"{language} words for ids no code says"
    for msgid, plural in ids.items():
        message = known[msgid]
        assert message.pluralizable == plural, f"{msgid}: plural in code and catalog differ"
        assert not message.fuzzy, f"{language} {msgid} is fuzzy: check it, drop the flag"
        forms = _forms(message)
        assert len(forms) == (catalog.num_plurals if plural else 1) and all(forms), (
            f"{language} {msgid}: a form is empty")
        want = _placeholders(_forms(english.get(message.id))[0])
        for form in forms:
            assert _placeholders(form) == want, f"{language} {msgid}: {form!r} needs {want}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalog_is_the_source(language):
    """make install compiled this .po: the bot reads exactly these words."""
    with open(catalog_path(language), "rb") as fh:
        compiled = {tuple(_list(m.id)): _list(m.string) for m in read_mo(fh) if m.id}
    source = {tuple(_list(m.id)): _list(m.string) for m in _catalog(language) if m.id}
    assert compiled == source


def test_no_latin_sentence_reaches_a_russian_reader():
    for message in _catalog("ru"):
        for form in _forms(message) if message.id else []:
            left = TYPED.sub("", form)
            assert not re.search(r"[A-Za-z]{2,}", left), f"{message.id}: {form!r}"


@pytest.mark.parametrize(("count", "word"), [
    (1, "секунду"), (2, "секунды"), (5, "секунд"), (11, "секунд"), (21, "секунду"),
    (22, "секунды"),
])
def test_russian_plurals_take_three_forms(count, word):
    assert RU.n("cooldown", count).endswith(f" {count} {word}.")


@pytest.mark.parametrize(("count", "english"), [(1, "1 second "), (2, "2 seconds "),
                                                (21, "21 seconds ")])
def test_english_plurals(count, english):
    assert english in texts_for("en").n("cooldown", count)


@pytest.mark.parametrize("language", LANGUAGES)
def test_inline_buttons_fit_telegrams_64_characters(language):
    tr = texts_for(language)
    notes = [tr.t(msgid) for msgid in INLINE_NOTES] + [tr.n("inline.too_long", MAX_PRIME_CHARS)]
    assert all(0 < len(note) <= 64 for note in notes), notes


@pytest.mark.parametrize(("code", "language"), [
    ("ru", "ru"), ("uk", "ru"), ("be", "ru"), ("ru-RU", "ru"), ("en", "en"), ("de", "en"),
    ("kk", "en"), (None, "ru"), ("", "ru"),
])
def test_a_users_language_code_picks_the_language(code, language):
    assert language_of(code, default="ru") == language
    if not code:
        assert language_of(code, default="en") == "en"  # bot.language for no code at all


def test_bot_language_defaults_to_russian_and_refuses_an_unknown_one():
    assert config_from_dict({}).bot.language == "ru"
    with pytest.raises(UserError, match=r"'bot.language' must be one of ru, en, not 'de'"):
        config_from_dict({"bot": {"language": "de"}})


def test_a_missing_or_stale_compiled_catalog_says_run_make_install(tmp_path):
    locales = tmp_path / "locales"
    shutil.copytree(LOCALES, locales)
    compiled = catalog_path("ru", ".mo", locales)
    stamp = compiled.stat().st_mtime
    source = catalog_path("ru", ".po", locales)
    os.utime(source, (stamp + 10, stamp + 10))  # edited after the last compile
    with pytest.raises(UserError, match=r"older than bot.po: run `make install`"):
        texts_for("ru", locales)
    compiled.unlink()
    with pytest.raises(UserError, match=r"bot.mo is missing: run `make install`"):
        texts_for("ru", locales)
