"""config.yaml → typed, frozen dataclasses shared by scraper, generator and bot.

Every value may be written `${ENV_NAME}` (or contain it); it is replaced from the environment at
load time, an unset variable becoming the empty string. Secrets therefore live only in the
environment; a component that needs one calls `require()` and gets a one-line error naming the
key and the variable to set. Unknown keys and wrong types are rejected the same way.
"""

from __future__ import annotations

import logging
import math
import os
import re
import types
import typing
import zoneinfo
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from common.cli import UserError
from common.log import register_secret

# The model `make run` serves on a fresh clone: committed inside the generator package.
BUNDLED_MODEL_DIR = Path(__file__).resolve().parents[1] / "generator" / "bundled"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Keys of older versions, each with why it went: an old config.yaml still loads, and each such
# key it holds is logged once as ignored (rejecting it would stop a bot over a key that no
# longer means anything).
RETIRED_KEYS = {
    "generator.ranker_weight": "the n-gram ranker was removed (its picks read no better than "
                               "the likelihood's, BENCHMARKS.md#decisions); ready posts rank by "
                               "likelihood",
}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VkConfig:
    api_url: str = "https://api.vk.ru/method/"
    api_version: str = "5.199"
    token: str = field(default="${VK_TOKEN}", repr=False)
    community: str = "bugurt_thread"  # screen name or numeric id of the wall to scrape
    post_token: str = field(default="${VK_POST_TOKEN}", repr=False)
    post_community: int | None = None  # numeric id of the community to publish to


@dataclass(frozen=True)
class WebhookConfig:
    url: str = ""  # public URL Telegram posts updates to; empty: long polling
    listen: str = "0.0.0.0:8443"  # host:port the webhook server binds
    secret: str = field(default="${TELEGRAM_WEBHOOK_SECRET}", repr=False)  # every update's header

    @property
    def address(self) -> tuple[str, int]:
        """`listen` as (host, port); _check_webhook has made sure it parses."""
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@dataclass(frozen=True)
class TelegramConfig:
    api_url: str = "https://api.telegram.org/bot"
    token: str = field(default="${TELEGRAM_TOKEN}", repr=False)
    channel: str = ""  # @name or numeric id; empty: no Telegram publishing
    admins: tuple[int, ...] = ()
    webhook: WebhookConfig = field(default_factory=WebhookConfig)


@dataclass(frozen=True)
class StorageConfig:
    db: str = "data/neurobugurt.sqlite3"
    # Database URL (sqlite:///PATH or postgresql://USER@HOST:PORT/DB) that every process of one
    # bot shares; empty: SQLite at `db`. May hold a password: kept out of repr and logs.
    url: str = field(default="", repr=False)
    models_dir: str = ""  # models /retrain writes, read by every process; empty: beside `db`

    @property
    def models(self) -> Path:
        return Path(self.models_dir) if self.models_dir else Path(self.db).parent / "models"


@dataclass(frozen=True)
class CorpusConfig:
    path: str = "data/corpus.txt"


@dataclass(frozen=True)
class GeneratorConfig:
    model_dir: str = str(BUNDLED_MODEL_DIR)


@dataclass(frozen=True)
class ScheduleConfig:
    cron: str = "0 */4 * * *"
    timezone: str = "Europe/Moscow"
    # SQLAlchemy URL of the APScheduler job store; empty: the storage.db SQLite file.
    jobstore_url: str = field(default="", repr=False)
    misfire_grace_seconds: int = 3600


@dataclass(frozen=True)
class BotConfig:
    cooldown_seconds: float = 10.0  # per user, between two /bugurt
    candidates: int = 16  # samples drawn at a time; the most likely the gate passes wins
    # arms of the ratings bandit, around the temperature at which blind readers rated the
    # bundled (subword) model's searched posts best, generator/sampling.py's TEMPERATURE
    temperatures: tuple[float, ...] = (0.4, 0.45, 0.5)
    retrain_minutes: float = 15.0  # training budget of /retrain
    # /retrain fine-tunes the served model on the fresh corpus (generator train --init-from);
    # false: trains from scratch, which rarely beats a model trained for hours in 15 minutes.
    retrain_warm_start: bool = True
    # language of what no user asked for: terminal mode, messages to admins from the schedule;
    # a Telegram user gets theirs from language_code (bot/i18n.py)
    language: str = "ru"


LANGUAGES = ("ru", "en")  # those with a message catalog in locales/ (BotConfig.language)
SEARCHES = ("lines", "whole")  # how the pool builds a ready post (PoolConfig.search)


@dataclass(frozen=True)
class PoolConfig:
    size: int = 20  # ready posts kept per sampling temperature; 0: every /bugurt samples on demand
    cpu_share: float = 0.5  # of one core, at most, that the pool worker keeps busy (0 < share ≤ 1)
    # of one core between bursts: while no one waits for the sampler and the rest of the machine
    # leaves a core and a half idle (bot/idle_cpu.py); cpu_share ≤ idle_share ≤ 1
    idle_share: float = 1.0
    queue_limit: int = 64  # requests waiting for on-demand sampling before "busy" answers
    # a ready reply is the best of this many candidates, drawn bot.candidates at a time: best of
    # 64 read at coherence 2.25-2.33 against 1.42 for best of 16 (BENCHMARKS.md#decisions)
    reply_candidates: int = 64
    channel_candidates: int = 256  # gathered for the next channel post; the best is published
    # "lines": a ready post is built line by line (generator/search.py), which read better
    # than best of 64 whole posts (BENCHMARKS.md#decisions); "whole": the best of
    # reply_candidates whole posts by likelihood
    search: str = "lines"
    # with search "lines": a ready reply is the best of this many searched posts by likelihood
    # (Generator.best_first). More read better in every blind reading that compared them (best
    # of 8 over one, 16 and 32 over 8, 64 over 16: BENCHMARKS.md#decisions); about 5 CPU s a
    # reply on the bundle (AVX-512 bf16 CPU)
    reply_searches: int = 32
    # with search "lines": searched posts gathered per channel post, the best by likelihood
    # published (about 6 CPU s on the bundle; best of 64 read above best of 16 for both
    # readers of its blind reading)
    channel_searches: int = 64
    # posts of each feed (replies, channel) remembered against repetition: a line of one of
    # them, or a 4-word phrase, is not written again (generator/feed.py); 0: no memory
    memory: int = 200


@dataclass(frozen=True)
class InlineConfig:
    posts: int = 3  # posts offered per inline query
    per_minute: int = 20  # inline queries a user may have answered per minute (cached are free)
    cache_seconds: float = 60.0  # how long posts for one query text are offered again


REVIEW_MODES = ("auto", "editors")  # ReviewConfig.mode
ON_TIMEOUT = ("publish_best", "skip")  # ReviewConfig.on_timeout


@dataclass(frozen=True)
class ReviewConfig:
    mode: str = "auto"  # auto: scheduled posts publish the best candidate; editors: they choose
    chat: str = ""  # chat id that gets reviews; empty: each of telegram.admins privately
    choices: int = 5  # candidates a review shows at once (and per "next five")
    timeout_minutes: float = 60.0  # time the editors have to decide
    on_timeout: str = "publish_best"  # or "skip", when nobody decided in time


@dataclass(frozen=True)
class Config:
    vk: VkConfig = field(default_factory=VkConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    bot: BotConfig = field(default_factory=BotConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    inline: InlineConfig = field(default_factory=InlineConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)


def load_config(path: str | os.PathLike = "config.yaml") -> Config:
    """Read, substitute and validate a config file; every problem is a one-line UserError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(
            f"config file {path} not found: run from the repository root or pass --config PATH"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file {path}: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"config file {path} is not valid YAML{where}: fix its syntax") from None
    except (ValueError, RecursionError):  # a number of thousands of digits, or deep nesting
        raise UserError(
            f"config file {path} holds a value too long or nested too deeply: fix it"
        ) from None
    return config_from_dict(raw if raw is not None else {}, source=str(path))


def config_from_dict(raw: Any, source: str = "config") -> Config:
    """Build a Config from parsed YAML (a dict of sections); missing keys take defaults."""
    config = _build(Config, raw, prefix="", source=source)
    _check_values(config, source)
    for secret in (config.vk.token, config.vk.post_token, config.telegram.token,
                   config.telegram.webhook.secret):
        register_secret(secret)
    for url in (config.schedule.jobstore_url, config.storage.url):
        register_secret(urlsplit(url).password or "")  # postgresql://u:PASSWORD@host
    return config


def require(value: str, key: str, env: str) -> str:
    """Return a secret that a command cannot run without, or explain how to provide it."""
    if not value:
        raise UserError(f"{key} is empty: set the environment variable {env} (see config.yaml)")
    return value


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    if not isinstance(raw, dict):
        where = prefix.rstrip(".") or "the top level"
        raise UserError(f"{source}: {where} must be a mapping of keys, not {_kind(raw)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in raw:
        if prefix + str(key) in RETIRED_KEYS:
            log.warning("%s: %r is ignored: %s", source, prefix + str(key),
                        RETIRED_KEYS[prefix + str(key)])
        elif key not in known:
            raise UserError(
                f"{source}: unknown key {prefix + str(key)!r} (known: {', '.join(sorted(known))})"
            )
    values = {}
    for f in fields(cls):
        key = prefix + f.name
        hint = hints[f.name]
        if _is_section(hint):
            section = raw.get(f.name)
            values[f.name] = _build(hint, {} if section is None else section, key + ".", source)
        else:
            value = raw[f.name] if f.name in raw else f.default
            assert value is not MISSING, f"config field {key} needs a default"
            values[f.name] = _coerce(_substitute(value), hint, key, source)
    return cls(**values)


def _check_values(config: Config, source: str) -> None:
    """Values of the right type that still cannot work: refused here, once, for every command."""
    temperatures = config.bot.temperatures
    if not temperatures or min(temperatures) <= 0:
        raise UserError(
            f"{source}: 'bot.temperatures' must list positive numbers, e.g. [0.4, 0.45, 0.5]"
        )
    _check_counts(config, source)
    _check_review(config.review, source)
    _check_language(config, source)
    _check_webhook(config.telegram.webhook, source)
    schedule = config.schedule
    if schedule.misfire_grace_seconds <= 0:
        raise UserError(
            f"{source}: 'schedule.misfire_grace_seconds' must be a positive number of seconds"
        )
    try:
        zoneinfo.ZoneInfo(schedule.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UserError(
            f"{source}: 'schedule.timezone' {schedule.timezone!r} is not a time zone name:"
            " use one like Europe/Moscow"
        ) from None
    try:
        # Imported here: APScheduler belongs to the bot, and an install of the generator alone
        # (a lent GPU machine: torch, numpy, PyYAML, no bot packages) must still read a config.
        from common.crontab import CrontabError, parse_crontab  # noqa: PLC0415
    except ModuleNotFoundError:
        return  # nothing schedules posts where APScheduler is missing
    try:
        parse_crontab(schedule.cron, schedule.timezone)
    except CrontabError as exc:
        raise UserError(f"{source}: 'schedule.cron' {schedule.cron!r}: {exc}") from None


def _check_language(config: Config, source: str) -> None:
    if config.bot.language not in LANGUAGES:
        raise UserError(f"{source}: 'bot.language' must be one of {', '.join(LANGUAGES)}, "
                        f"not {config.bot.language!r}")


def _check_counts(config: Config, source: str) -> None:
    pool, inline = config.pool, config.inline
    if not 0 < pool.cpu_share <= 1:
        raise UserError(
            f"{source}: 'pool.cpu_share' must be above 0 and at most 1 (a share of one core)"
        )
    if not pool.cpu_share <= pool.idle_share <= 1:
        raise UserError(f"{source}: 'pool.idle_share' must be at least 'pool.cpu_share' "
                        f"({pool.cpu_share:g}) and at most 1 (a share of one core)")
    if config.bot.candidates < 1:
        raise UserError(f"{source}: 'bot.candidates' must be at least 1")
    for key, value, least in (
        ("pool.size", pool.size, 0), ("pool.queue_limit", pool.queue_limit, 0),
        ("pool.channel_candidates", pool.channel_candidates, 0),
        ("pool.reply_candidates", pool.reply_candidates, 1),
        ("pool.reply_searches", pool.reply_searches, 1),
        ("pool.channel_searches", pool.channel_searches, 0),
        ("pool.memory", pool.memory, 0),
        ("inline.posts", inline.posts, 1), ("inline.per_minute", inline.per_minute, 1),
    ):
        if value < least:
            raise UserError(f"{source}: {key!r} must be at least {least}, not {value}")
    if pool.search not in SEARCHES:
        raise UserError(f"{source}: 'pool.search' must be one of {', '.join(SEARCHES)}, "
                        f"not {pool.search!r}")
    if inline.posts > 50:  # answerInlineQuery takes at most 50 results
        raise UserError(f"{source}: 'inline.posts' must be at most 50, not {inline.posts}")
    if inline.cache_seconds < 0:
        raise UserError(f"{source}: 'inline.cache_seconds' must not be negative")


def _check_review(review: ReviewConfig, source: str) -> None:
    for key, value, allowed in (("review.mode", review.mode, REVIEW_MODES),
                                ("review.on_timeout", review.on_timeout, ON_TIMEOUT)):
        if value not in allowed:
            raise UserError(f"{source}: {key!r} must be one of {', '.join(allowed)}, "
                            f"not {value!r}")
    if not 1 <= review.choices <= 10:  # one message's buttons: a row of at most 10
        raise UserError(f"{source}: 'review.choices' must be 1 to 10, not {review.choices}")
    if not review.timeout_minutes > 0:
        raise UserError(f"{source}: 'review.timeout_minutes' must be a positive number")
    if review.chat and not review.chat.lstrip("-").isdigit():
        raise UserError(f"{source}: 'review.chat' must be a numeric chat id (e.g. -100123…),"
                        f" not {review.chat[:40]!r}")


def _check_webhook(webhook: WebhookConfig, source: str) -> None:
    host, colon, port = webhook.listen.rpartition(":")
    if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
        raise UserError(
            f"{source}: 'telegram.webhook.listen' must be host:port, e.g. 0.0.0.0:8443,"
            f" not {webhook.listen[:40]!r}"
        )
    if webhook.url and not webhook.url.startswith(("https://", "http://")):
        raise UserError(f"{source}: 'telegram.webhook.url' must be an https:// URL")


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and hasattr(hint, "__dataclass_fields__")


def _substitute(value: Any) -> Any:
    """Replace ${NAME} inside strings (also inside lists) from the environment."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: os.environ.get(m.group(1), ""), value)
    if isinstance(value, list):
        return [_substitute(v) for v in value]
    return value


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Check a YAML value against a field's type; numbers given as strings (from ${ENV}) parse."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if value is None or value == "":
            if type(None) in options:
                return None
        inner = next(t for t in options if t is not type(None))
        return _coerce(value, inner, key, source)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            value = [v.strip() for v in str(value).split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise _type_error(key, "a list", value, source)
        return tuple(_coerce(v, item, f"{key}[{i}]", source) for i, v in enumerate(value))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise _type_error(key, "true or false", value, source)
    if hint is int:
        # strip() first: it drops characters int() refuses around a number (\x1c-\x1f)
        if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value := value.strip()):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63:
            return value
        raise _type_error(key, "an integer", value, source)
    if hint is float:
        number = None
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                number = float(value)
            except (ValueError, OverflowError):
                pass
        if number is not None and math.isfinite(number):
            return number
        raise _type_error(key, "a number", value, source)
    if hint is str:
        if value is None:
            return ""
        if isinstance(value, str | int) and not isinstance(value, bool):
            return str(value)  # a numeric id like `vk.community: 57536014` is fine as text
        raise _type_error(key, "a string", value, source)
    raise TypeError(f"unsupported config type {hint!r} for {key}")  # a bug in this module


def _type_error(key: str, expected: str, value: Any, source: str) -> UserError:
    try:
        shown = repr(value)
    except ValueError:  # an int of more digits than Python will print
        shown = "<huge number>"
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return UserError(f"{source}: '{key}' must be {expected}, got {_kind(value)} {shown}")


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
