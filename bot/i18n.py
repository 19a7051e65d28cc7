"""The bot's words in its reader's language: gettext catalogs, one `Texts` per language.

Code holds message ids only: `tr.t("start")`, `tr.n("cooldown", seconds)` (plurals through
gettext's ngettext, so Russian gets its three forms; the number is the words' {count}), and
`N_("retrain.stage.train")` for an id kept now and put into words where it is shown. The words
live in `locales/<language>/LC_MESSAGES/bot.po`; `make install` compiles them to `bot.mo`, which
is what this module reads.

Adding a line the bot says: write `tr.t("new.id", field=...)` where it is said, add `new.id` with
its words to locales/ru/…/bot.po and locales/en/…/bot.po (`make messages` adds the empty
entries), then `make install`. tests/test_i18n.py fails while either catalog lacks it. Adding
a language: README.md, section Languages.
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Callable
from pathlib import Path

from common.cli import UserError
from common.config import LANGUAGES

DOMAIN = "bot"
LOCALES = Path(__file__).resolve().parent.parent / "locales"
FALLBACK = "en"  # a reader whose language_code READERS does not name
# Telegram language codes → the catalog that answers them. Ukrainian and Belarusian readers
# read the Russian bugurts, so they are answered in Russian too.
READERS = {"ru": "ru", "uk": "ru", "be": "ru", "en": "en"}


class Texts:
    """The bot's lines in one language."""

    def __init__(self, language: str, catalog: gettext.NullTranslations) -> None:
        self.language = language
        self._catalog = catalog

    def t(self, msgid: str, **fields: object) -> str:
        """The line `msgid`, its {fields} filled in."""
        return self._catalog.gettext(msgid).format(**fields)

    def n(self, msgid: str, count: int, **fields: object) -> str:
        """The line `msgid` in the plural form that `count` takes (1 секунду, 2 секунды, 5
        секунд); {count} and the other fields filled in."""
        return self._catalog.ngettext(msgid, msgid, count).format(count=count, **fields)


Say = Callable[[Texts], str]  # a line kept before anyone asks, put into words for whoever does


def N_(msgid: str) -> str:  # noqa: N802 (gettext's name for "mark for extraction only")
    """Mark a message id kept now and translated where it is shown."""
    return msgid


def language_of(code: str | None, default: str) -> str:
    """The language to answer a Telegram user in, from their `language_code` ('ru', 'uk-UA',
    None); `default` (bot.language) when Telegram sent none."""
    if not code:
        return default
    return READERS.get(code.split("-")[0].lower(), FALLBACK)


def catalog_path(language: str, suffix: str = ".mo", locales: Path = LOCALES) -> Path:
    return locales / language / "LC_MESSAGES" / (DOMAIN + suffix)


@functools.cache
def texts_for(language: str, locales: Path = LOCALES) -> Texts:
    """The compiled catalog of `language` (one of LANGUAGES); a missing or stale compiled file
    is one line saying to run `make install`."""
    compiled = catalog_path(language, ".mo", locales)
    source = catalog_path(language, ".po", locales)
    if not compiled.is_file():
        raise UserError(f"message catalog {compiled} is missing: run `make install` (it "
                        "compiles locales/*/LC_MESSAGES/bot.po)")
    if source.is_file() and source.stat().st_mtime > compiled.stat().st_mtime:
        raise UserError(f"message catalog {compiled} is older than {source.name}: run "
                        "`make install` to compile it again")
    with open(compiled, "rb") as fh:
        return Texts(language, gettext.GNUTranslations(fh))


def load_all() -> dict[str, Texts]:
    """Every language's Texts, read at start so that a missing catalog stops the bot at once."""
    return {language: texts_for(language) for language in LANGUAGES}
