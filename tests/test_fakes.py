"""The fake servers themselves, spoken to with plain urllib: the shapes of their answers, what
they record, their injected faults, and a stop that does not keep the suite waiting."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from harness.fakes.telegram import BOT_ID, BOT_USERNAME, FakeTelegram
from harness.fakes.vk import OWNER_ID, TOKEN, FakeVk, make_item


def post(url: str, params: dict) -> tuple[int, dict]:
    """POST form fields (values JSON-encoded where not strings, as PTB does); (status, JSON)."""
    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    request = urllib.request.Request(url, urllib.parse.urlencode(fields).encode())
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def bot_api(server: FakeTelegram, method: str, **params: object) -> tuple[int, dict]:
    return post(f"{server.api_url}{server.token}/{method}", params)


def test_fake_telegram_answers_bot_api_shapes_and_records_calls(telegram):
    status, me = bot_api(telegram, "getMe")
    assert status == 200 and me["ok"] is True
    assert me["result"]["id"] == BOT_ID and me["result"]["is_bot"] is True
    assert me["result"]["username"] == BOT_USERNAME

    keyboard = {"inline_keyboard": [[{"text": "👍", "callback_data": "vote:1:1"}]]}
    _, sent = bot_api(telegram, "sendMessage", chat_id=42, text="ПЕРВЫЙ\n@\nВТОРОЙ",
                      reply_markup=keyboard)
    message = sent["result"]
    assert message["chat"] == {"id": 42, "type": "private", "title": "chat"}
    assert message["text"] == "ПЕРВЫЙ\n@\nВТОРОЙ" and message["from"]["id"] == BOT_ID
    assert message["reply_markup"] == keyboard and isinstance(message["date"], int)

    _, edited = bot_api(telegram, "editMessageText", chat_id=42,
                        message_id=message["message_id"], text="ПРАВКА")
    assert edited["result"]["message_id"] == message["message_id"]
    assert edited["result"]["text"] == "ПРАВКА" and "edit_date" in edited["result"]
    assert [m["text"] for m in telegram.messages_in(42)] == ["ПРАВКА"]

    assert [c.method for c in telegram.calls] == ["getMe", "sendMessage", "editMessageText"]
    assert telegram.calls[1].params["reply_markup"] == keyboard  # decoded from JSON
    assert telegram.calls_of("sendMessage")[0].params["chat_id"] == 42
    assert telegram.wait_for("editMessageText", timeout=0.1).params["text"] == "ПРАВКА"
    with pytest.raises(AssertionError, match="no sendPhoto call"):
        telegram.wait_for("sendPhoto", timeout=0.05)


def test_fake_telegram_errors_and_updates(telegram):
    assert post(f"{telegram.api_url}999:WRONG/getMe", {})[0] == 401
    status, unknown = bot_api(telegram, "frobnicate")
    assert status == 404 and unknown["ok"] is False

    telegram.fail("sendMessage", retry_after=3)
    status, limited = bot_api(telegram, "sendMessage", chat_id=1, text="x")
    assert status == 429 and limited["parameters"] == {"retry_after": 3}
    assert telegram.messages_in(1) == []  # a failed call delivers nothing
    assert bot_api(telegram, "sendMessage", chat_id=1, text="x")[0] == 200  # once only
    assert [c.status for c in telegram.calls_of("sendMessage")] == [429, 200]  # as answered

    update = telegram.send_command("/bugurt КОТ", user_id=7)
    _, got = bot_api(telegram, "getUpdates", offset=0, timeout=0)
    assert got["result"] == [update]
    entity = update["message"]["entities"][0]
    assert entity == {"type": "bot_command", "offset": 0, "length": len("/bugurt")}
    _, after = bot_api(telegram, "getUpdates", offset=update["update_id"] + 1, timeout=0)
    assert after["result"] == []  # confirmed by the offset: gone
    assert all(c.method != "getUpdates" for c in telegram.calls)  # polling is not recorded


def test_fake_telegram_users_languages_and_menus_per_language(telegram):
    assert telegram.send_text("/start", user_id=5)["message"]["from"]["language_code"] == "en"
    telegram.speaks(5, "uk")
    assert telegram.send_inline("кот", 5)["inline_query"]["from"]["language_code"] == "uk"
    telegram.speaks(5, None)  # Telegram may send no language_code at all
    assert "language_code" not in telegram.send_text("/start", user_id=5)["message"]["from"]

    everyone = [{"command": "start", "description": "what this bot does"}]
    russian = [{"command": "start", "description": "что умеет бот"}]
    assert bot_api(telegram, "setMyCommands", commands=everyone)[1]["result"] is True
    bot_api(telegram, "setMyCommands", commands=russian, language_code="ru")
    assert telegram.menus == {"": everyone, "ru": russian}


def test_fake_telegram_stops_at_once_and_numbers_updates_from_where_it_is_told():
    server = FakeTelegram(first_update_id=5000).start()
    assert server.send_command("/bugurt", user_id=1)["update_id"] == 5000  # after a restart
    bot_api(server, "getMe")
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 0.3  # serve_forever's default poll would take up to 0.5 s


def vk_api(vk: FakeVk, method: str, **params: object) -> dict:
    query = {"access_token": TOKEN, "v": "5.199", **params}
    with urllib.request.urlopen(f"{vk.api_url}{method}?{urllib.parse.urlencode(query)}",
                                timeout=10) as answer:
        return json.loads(answer.read())


def test_fake_vk_pages_the_wall_newest_first_with_the_pinned_post_on_top():
    posts = [make_item(i, 1_600_000_000 + i, f"ПОСТ {i}") for i in range(1, 251)]
    posts[9]["is_pinned"] = 1  # post 10
    with FakeVk(posts) as vk:
        first = vk_api(vk, "wall.get", owner_id=OWNER_ID, offset=0, count=100)["response"]
        last = vk_api(vk, "wall.get", owner_id=OWNER_ID, offset=200, count=100)["response"]
        capped = vk_api(vk, "wall.get", owner_id=OWNER_ID, offset=0, count=500)["response"]
        calls = ", ".join(f'API.wall.get({{"owner_id": {OWNER_ID}, "offset": {offset}, '
                          f'"count": 2}})' for offset in (0, 2))
        code = f"return [{calls}];"
        executed = vk_api(vk, "execute", code=code)["response"]
    assert first["count"] == last["count"] == 250
    assert [p["id"] for p in first["items"][:3]] == [10, 250, 249]
    # the pinned post 10 stands first, so the last page is 51..11 and 9..1
    assert [p["id"] for p in last["items"]] == [*range(51, 10, -1), *range(9, 0, -1)]
    assert len(capped["items"]) == 100  # VK's most a page
    assert [[p["id"] for p in page["items"]] for page in executed] == [[10, 250], [249, 248]]
    assert vk.offsets() == [0, 200, 0, 0, 2]
    assert first["items"][1] == posts[249]  # the item as stored, every field


def test_fake_vk_returns_vk_error_objects():
    with FakeVk([make_item(1, 1_600_000_000, "А")]) as vk:
        bad_token = vk_api(vk, "wall.get", owner_id=OWNER_ID, access_token="stolen")
        other_wall = vk_api(vk, "wall.get", owner_id=-1)
        vk.fail("wall.get", code=6)
        flood = vk_api(vk, "wall.get", owner_id=OWNER_ID)
        fine = vk_api(vk, "wall.get", owner_id=OWNER_ID)
        vk.fail("*", http_status=502)
        with pytest.raises(urllib.error.HTTPError) as gateway:
            vk_api(vk, "utils.resolveScreenName", screen_name="bugurt_thread")
        resolved = vk_api(vk, "utils.resolveScreenName", screen_name="bugurt_thread")
    assert bad_token["error"]["error_code"] == 5
    assert "stolen" not in json.dumps(bad_token)  # the token is never echoed back
    assert other_wall["error"]["error_code"] == 100
    assert flood["error"] == {
        "error_code": 6, "error_msg": "Too many requests per second",
        "request_params": [{"key": "method", "value": "wall.get"},
                           {"key": "v", "value": "5.199"},
                           {"key": "owner_id", "value": str(OWNER_ID)}],
    }
    assert [p["id"] for p in fine["response"]["items"]] == [1]
    assert gateway.value.code == 502
    assert resolved["response"] == {"type": "group", "object_id": -OWNER_ID}
    assert [method for method, _ in vk.calls] == [
        "wall.get", "wall.get", "wall.get", "wall.get", "utils.resolveScreenName",
        "utils.resolveScreenName"]
