"""The shared config loader: defaults, ${ENV} substitution, and one-line refusals."""

from __future__ import annotations

import logging

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from common.cli import UserError
from common.config import BUNDLED_MODEL_DIR, Config, config_from_dict, load_config, require
from common.log import RedactingFilter, redact
from harness.paths import REPO


def test_repository_config_yaml_loads_with_contract_defaults(monkeypatch):
    monkeypatch.delenv("TELEGRAM_TOKEN", raising=False)
    config = load_config(REPO / "config.yaml")
    assert config.vk.api_url == "https://api.vk.ru/method/"
    assert config.vk.api_version == "5.199"
    assert config.vk.community == "bugurt_thread"
    assert config.telegram.token == ""  # unset variable: terminal chat
    assert config.storage.db == "data/neurobugurt.sqlite3"
    assert config.corpus.path == "data/corpus.txt"
    assert config.generator.model_dir == str(BUNDLED_MODEL_DIR)
    assert config.schedule.cron == "0 */4 * * *"
    assert config.schedule.timezone == "Europe/Moscow"
    review = config.review
    assert (review.mode, review.chat, review.choices, review.timeout_minutes,
            review.on_timeout) == ("auto", "", 5, 60, "publish_best")


def test_repository_config_yaml_equals_builtin_defaults(monkeypatch):
    for name in ("VK_TOKEN", "VK_POST_TOKEN", "TELEGRAM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert load_config(REPO / "config.yaml") == config_from_dict({})


def test_env_substitution_whole_and_embedded(monkeypatch):
    monkeypatch.setenv("NB_TOKEN", "abc123")
    monkeypatch.setenv("NB_HOST", "127.0.0.1:8081")
    config = config_from_dict(
        {"vk": {"token": "${NB_TOKEN}", "api_url": "http://${NB_HOST}/method/"}}
    )
    assert config.vk.token == "abc123"
    assert config.vk.api_url == "http://127.0.0.1:8081/method/"


def test_numbers_from_environment_are_parsed(monkeypatch):
    monkeypatch.setenv("NB_GROUP", "12345")
    monkeypatch.setenv("NB_ADMINS", "1, 2")
    config = config_from_dict(
        {"vk": {"post_community": "${NB_GROUP}"}, "telegram": {"admins": "${NB_ADMINS}"}}
    )
    assert config.vk.post_community == 12345
    assert config.telegram.admins == (1, 2)


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"vk": {"tokn": "x"}}, "unknown key 'vk.tokn'"),
        ({"telegramm": {}}, "unknown key 'telegramm'"),
        ({"telegram": {"admins": "bob"}}, "'telegram.admins[0]' must be an integer"),
        ({"telegram": {"admins": {"a": 1}}}, "'telegram.admins' must be a list"),
        ({"bot": {"cooldown_seconds": "soon"}}, "'bot.cooldown_seconds' must be a number"),
        ({"vk": {"post_community": 1.5}}, "'vk.post_community' must be an integer"),
        ({"vk": "bugurt_thread"}, "vk must be a mapping"),
        ({"schedule": {"cron": ["0", "*"]}}, "'schedule.cron' must be a string"),
        ([1, 2], "the top level must be a mapping"),
        ({"telegram": {"webhook": {"listen": "8443"}}}, "'telegram.webhook.listen' must be host"),
        ({"telegram": {"webhook": {"listen": "h:99999"}}}, "'telegram.webhook.listen' must be"),
        ({"telegram": {"webhook": {"url": "bot.example/x"}}}, "must be an https:// URL"),
        ({"telegram": {"webhook": {"hook": 1}}}, "unknown key 'telegram.webhook.hook'"),
        ({"bot": {"temperatures": [0.7, 0]}}, "'bot.temperatures' must list positive numbers"),
        ({"bot": {"temperatures": []}}, "'bot.temperatures' must list positive numbers"),
        ({"schedule": {"misfire_grace_seconds": 0}}, "'schedule.misfire_grace_seconds' must be"),
        ({"pool": {"cpu_share": 0}}, "'pool.cpu_share' must be above 0 and at most 1"),
        ({"pool": {"cpu_share": 1.5}}, "'pool.cpu_share' must be above 0 and at most 1"),
        ({"pool": {"size": -1}}, "'pool.size' must be at least 0, not -1"),
        ({"pool": {"queue_limit": -2}}, "'pool.queue_limit' must be at least 0, not -2"),
        ({"bot": {"candidates": 0}}, "'bot.candidates' must be at least 1"),
        ({"pool": {"reply_candidates": 0}}, "'pool.reply_candidates' must be at least 1, not 0"),
        ({"pool": {"reply_searches": 0}}, "'pool.reply_searches' must be at least 1, not 0"),
        ({"inline": {"posts": 51}}, "'inline.posts' must be at most 50"),
        ({"inline": {"per_minute": 0}}, "'inline.per_minute' must be at least 1, not 0"),
        ({"inline": {"cache_seconds": -1}}, "'inline.cache_seconds' must not be negative"),
        ({"schedule": {"timezone": "Mars/Base"}}, "'Mars/Base' is not a time zone name"),
        ({"schedule": {"cron": "0 */4 * *"}}, "'schedule.cron' '0 */4 * *': a crontab line"),
        ({"schedule": {"cron": "0 0 * * 9"}}, "weekday 9 is out of range"),
        ({"schedule": {"cron": "0 0 31 2 *"}}, "never fires"),
        ({"review": {"mode": "editor"}}, "'review.mode' must be one of auto, editors"),
        ({"review": {"on_timeout": "wait"}}, "'review.on_timeout' must be one of publish_best"),
        ({"review": {"choices": 0}}, "'review.choices' must be 1 to 10, not 0"),
        ({"review": {"choices": 11}}, "'review.choices' must be 1 to 10, not 11"),
        ({"review": {"timeout_minutes": 0}}, "'review.timeout_minutes' must be a positive"),
        ({"review": {"chat": "@editors"}}, "'review.chat' must be a numeric chat id"),
    ],
)
def test_bad_values_are_refused_with_the_key(raw, message):
    with pytest.raises(UserError) as excinfo:
        config_from_dict(raw)
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("vk:\n  token: [unclosed\n", encoding="utf-8")
    with pytest.raises(UserError, match="not valid YAML at line"):
        load_config(bad)


def test_require_names_key_and_variable():
    with pytest.raises(UserError, match="vk.token is empty: set the environment variable VK_TOKEN"):
        require("", "vk.token", "VK_TOKEN")
    assert require("t0k3n", "vk.token", "VK_TOKEN") == "t0k3n"


def test_job_store_password_is_redacted(monkeypatch):
    monkeypatch.setenv("NB_JOBSTORE", "postgresql+psycopg://bot:hunter2-pass@db/nb")
    config = config_from_dict({"schedule": {"jobstore_url": "${NB_JOBSTORE}"}})
    assert "hunter2" not in repr(config)
    assert redact("connect to postgresql+psycopg://bot:hunter2-pass@db") == (
        "connect to postgresql+psycopg://bot:***@db"
    )


def test_tokens_are_not_in_repr_and_are_redacted_from_logs(monkeypatch, caplog):
    monkeypatch.setenv("TELEGRAM_TOKEN", "123456:SECRET-token-value")
    config = config_from_dict({"telegram": {"token": "${TELEGRAM_TOKEN}"}})
    assert "SECRET" not in repr(config)
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        "POST %s",
        ("https://x/bot123456:SECRET-token-value/getMe",),
        None,
    )
    RedactingFilter().filter(record)
    assert "SECRET" not in record.getMessage()
    assert "***" in record.getMessage()


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=10,
)
section_names = st.sampled_from(
    ["vk", "telegram", "storage", "corpus", "generator", "schedule", "bot", "x"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(section_names, st.dictionaries(st.text(max_size=16), yaml_values, max_size=4))
)
def test_any_parsed_yaml_gives_a_config_or_a_user_error(raw):
    try:
        assert isinstance(config_from_dict(raw), Config)
    except UserError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_file_text_gives_a_config_or_a_user_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except UserError:
        pass


def test_dump_of_defaults_round_trips(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"telegram": {"admins": [5, 7]}, "bot": {"temperatures": [0.5]}})
    )
    config = load_config(path)
    assert config.telegram.admins == (5, 7)
    assert config.bot.temperatures == (0.5,)


def test_a_retired_key_of_an_old_config_is_ignored_with_one_warning(tmp_path, caplog):
    old = tmp_path / "old.yaml"
    old.write_text("generator:\n  ranker_weight: 0.5\nbot:\n  candidates: 4\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="common.config"):
        config = load_config(old)
    assert config.bot.candidates == 4  # the rest of the file still counts
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'generator.ranker_weight' is ignored" in warnings[0]
    with pytest.raises(UserError, match="unknown key 'generator.ranker_wieght'"):
        config_from_dict({"generator": {"ranker_wieght": 0.5}})  # a typo is still refused
