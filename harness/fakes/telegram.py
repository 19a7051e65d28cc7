"""A fake Telegram Bot API server on 127.0.0.1 for offline tests of the real PTB Application.

It answers the Bot API methods the bot uses over real HTTP (`/bot<TOKEN>/<method>`), keeps the
chats' messages, records every request, serves queued updates through long-polling getUpdates,
holds calls back until a test releases them, and can inject errors (a 429 with `retry_after`, a
400, a dropped connection, a raw body such as an HTML error page or truncated JSON) for the next
N calls of a method, or make every method fail until it recovers (`outage`).

    server = FakeTelegram(token="123:abc").start()
    config api_url = server.api_url          # "http://127.0.0.1:PORT/bot"
    server.send_command("/bugurt", user_id=1)
    reply = server.wait_for("sendMessage")
    server.stop()
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from harness.fakes.bot_api_http import BotApiServer, handler_for, hung_up

BOT_ID = 777000
BOT_USERNAME = "neurobugurt_bot"
CHANNEL_ID = -1001234567890
# Telegram's language_code of a user no test gave another (`speaks`): the suite reads English.
DEFAULT_LANGUAGE = "en"
BAD_GATEWAY = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@dataclass
class Call:
    """One recorded Bot API request: method name and its decoded parameters."""

    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    status: int = 200  # the HTTP status it was answered with (an outage's 502, a fault's)


@dataclass
class _Fault:
    times: int
    status: int
    body: dict[str, Any] | None  # None: drop the connection without answering
    hang: bool = False  # never answer (until stop): a request in flight when a client dies
    raw: str | None = None  # a body sent as it is instead of JSON (HTML page, truncated JSON)


class FakeTelegram:
    def __init__(self, token: str = "123456:TEST-TOKEN", first_update_id: int = 1) -> None:
        """`first_update_id`: where update numbers start; Telegram's keep rising across a bot's
        restarts, so a server standing in for it after one starts above the ones seen before."""
        self.token = token
        self.calls: list[Call] = []
        self._updates: list[dict[str, Any]] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._cond = threading.Condition()
        self._update_ids = itertools.count(first_update_id)
        self._message_ids = itertools.count(100)
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}  # (chat id, message id)
        self.languages: dict[int, str | None] = {}  # user id → language_code (None: not sent)
        # setMyCommands per language_code ('' for none): what each user's menu shows
        self.menus: dict[str, list[dict[str, str]]] = {}
        self._stopping = threading.Event()
        self._hold: tuple[str, frozenset[int]] | None = None  # (method, chat ids) held back
        self._released = threading.Event()
        self.held = 0  # calls held back so far
        self._outage: str | None = None  # see outage()
        self._recovered = threading.Event()
        self._server = BotApiServer(("127.0.0.1", 0), handler_for(self))
        self._server.daemon_threads = True
        # A short poll: stop() returns within 0.05 s instead of serve_forever's default 0.5 s.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def api_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/bot"

    def start(self) -> FakeTelegram:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # ---- what a test does -------------------------------------------------------------------

    def fail(
        self,
        method: str,
        status: int = 400,
        description: str = "Bad Request: injected",
        retry_after: int | None = None,
        times: int = 1,
        drop: bool = False,
        hang: bool = False,
        raw: str | None = None,
    ) -> None:
        """Make the next `times` calls of `method` fail (drop: close the socket, no answer;
        hang: keep the request unanswered until the server stops; raw: answer `status` with
        this body, e.g. a proxy's HTML error page or JSON cut short)."""
        body: dict[str, Any] | None = {
            "ok": False,
            "error_code": status,
            "description": description,
        }
        if retry_after is not None:
            body = {
                "ok": False,
                "error_code": 429,
                "description": f"Too Many Requests: retry after {retry_after}",
                "parameters": {"retry_after": retry_after},
            }
            status = 429
        with self._cond:
            self._faults.setdefault(method, []).append(
                _Fault(times, status, None if drop or hang else body, hang, raw)
            )

    def outage(self, kind: str) -> None:
        """Telegram unreachable for every method until `recover`: 'bad-gateway' (a proxy's 502
        page), 'reset' (the connection closed unanswered) or 'hang' (no answer; at recovery the
        connection closes). No call made meanwhile takes effect."""
        assert kind in ("bad-gateway", "reset", "hang")
        with self._cond:
            self._recovered.clear()
            self._outage = kind

    def recover(self) -> None:
        with self._cond:
            self._outage = None
            self._recovered.set()

    def hold(self, method: str, chat_ids: range | set[int]) -> None:
        """Keep calls of `method` to these chats unanswered and unrecorded until `release`: the
        moment a bot has taken an update but not yet answered it."""
        with self._cond:
            self._released.clear()
            self._hold = (method, frozenset(chat_ids))

    def release(self) -> None:
        """Go on with the held calls. One whose sender died meanwhile is dropped unrecorded:
        as if the process had died before sending it."""
        with self._cond:
            self._hold = None
            self._released.set()

    def speaks(self, user_id: int, language_code: str | None) -> None:
        """Give a user's updates this language_code from now on (None: Telegram sends none)."""
        with self._cond:
            self.languages[user_id] = language_code

    def _user(self, user_id: int) -> dict[str, Any]:
        """The `from` of an update: a person, with their language_code if they have one."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        code = self.languages.get(user_id, DEFAULT_LANGUAGE)
        if code:
            user["language_code"] = code
        return user

    def send_text(
        self,
        text: str,
        user_id: int = 1,
        chat_id: int | None = None,
        chat_type: str = "private",
        kind: str = "message",
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Queue an update carrying a text message (kind: message, edited_message, channel_post),
        a reply to the message `reply_to` if given."""
        chat_id = user_id if chat_id is None else chat_id
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type, "title": "chat"},
            "text": text,
        }
        if kind != "channel_post":
            message["from"] = self._user(user_id)
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        if kind == "edited_message":
            message["edit_date"] = int(time.time())
        if text.startswith("/"):
            length = len(text.split()[0]) if text.split() else 1
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return self._push({kind: message})

    def send_command(self, text: str, user_id: int = 1, **kwargs: Any) -> dict[str, Any]:
        return self.send_text(text, user_id=user_id, **kwargs)

    def press_button(self, message: dict[str, Any], data: str, user_id: int) -> dict[str, Any]:
        """Queue a callback query: `user_id` pressed the inline button `data` under `message`."""
        query = {
            "id": str(next(self._update_ids) * 1000 + user_id),
            "from": self._user(user_id),
            "chat_instance": "1",
            "message": message,
            "data": data,
        }
        return self._push({"callback_query": query})

    def send_inline(self, query: str, user_id: int = 1) -> dict[str, Any]:
        """Queue an inline query: `user_id` typed `@bot QUERY` in some chat."""
        inline = {
            "id": str(next(self._update_ids) * 1000 + user_id),
            "from": self._user(user_id),
            "query": query,
            "offset": "",
        }
        return self._push({"inline_query": inline})

    def send_burst(self, messages: list[tuple[str, int]]) -> list[dict[str, Any]]:
        """Queue (text, user id) messages at once: the bot's next getUpdates gets them all."""
        with self._cond:  # re-entrant: getUpdates wakes once they are all queued
            return [self.send_text(text, user_id=user) for text, user in messages]

    def wait_for(
        self, method: str, predicate: Any = None, timeout: float = 60.0, after: int = 0
    ) -> Call:
        """The first call of `method` (from index `after`) that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for call in self.calls[after:]:
                    if call.method == method and (predicate is None or predicate(call.params)):
                        return call
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(c.method, str(c.params)[:80]) for c in self.calls[-8:]]
                    raise AssertionError(f"no {method} call within {timeout}s; last: {seen}")
                self._cond.wait(left)

    def messages_in(self, chat_id: int) -> list[dict[str, Any]]:
        """Messages that were really delivered to a chat (failed calls are not in it), in order."""
        with self._cond:
            found = [m for (chat, _), m in self.messages.items() if chat == chat_id]
        return sorted(found, key=lambda m: m["message_id"])

    def calls_of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    # ---- the server side --------------------------------------------------------------------

    def _push(self, update: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            update = {"update_id": next(self._update_ids), **update}
            self._updates.append(update)
            self._cond.notify_all()
        return update

    def _take_fault(self, method: str) -> _Fault | None:
        faults = self._faults.get(method)
        if not faults:
            return None
        fault = faults[0]
        fault.times -= 1
        if fault.times <= 0:
            faults.pop(0)
        return fault

    def let_through(self, method: str, params: dict[str, Any], sender: socket.socket) -> bool:
        """Wait while the call is held; False if its sender hung up meanwhile (drop it)."""
        with self._cond:
            hold = self._hold
            if hold is None or method != hold[0] or params.get("chat_id") not in hold[1]:
                return True
            self.held += 1
            self._cond.notify_all()
        self._released.wait(60)
        return not hung_up(sender)

    def handle(
        self, method: str, params: dict[str, Any]
    ) -> tuple[int, dict[str, Any] | str | None]:
        """Answer one Bot API call: (HTTP status, JSON body, raw text body, or None to drop the
        connection)."""
        with self._cond:
            outage = self._outage
            fault = None if outage else self._take_fault(method)
            if method != "getUpdates":
                status = 502 if outage else fault.status if fault else 200
                self.calls.append(Call(method, params, status=status))
                self._cond.notify_all()
        if outage == "hang":
            self._recovered.wait(60)
        if outage:
            return (502, BAD_GATEWAY) if outage == "bad-gateway" else (502, None)
        if fault is not None:
            if fault.hang:
                self._stopping.wait(60)
            return fault.status, fault.raw if fault.raw is not None else fault.body
        if method == "getUpdates":
            return 200, {"ok": True, "result": self._get_updates(params)}
        answer = getattr(self, "_m_" + method, None)
        if answer is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        return 200, {"ok": True, "result": answer(params)}

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 2.0)
        with self._cond:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return list(self._updates[: int(params.get("limit") or 100)])

    def _m_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Neurobugurt",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,
        }

    def _m_deleteWebhook(self, params: dict[str, Any]) -> bool:
        return True

    def _m_setMyCommands(self, params: dict[str, Any]) -> bool:
        with self._cond:
            self.menus[params.get("language_code") or ""] = params["commands"]
        return True

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        return True

    def _m_answerInlineQuery(self, params: dict[str, Any]) -> bool:
        return True

    def _m_sendChatAction(self, params: dict[str, Any]) -> bool:
        return True

    def _chat(self, chat_id: Any) -> dict[str, Any]:
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            return {"id": CHANNEL_ID, "type": "channel", "title": chat_id, "username": chat_id[1:]}
        chat_id = int(chat_id)
        kind = "channel" if chat_id == CHANNEL_ID else "private" if chat_id > 0 else "group"
        return {"id": chat_id, "type": kind, "title": "chat"}

    def _new_message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Neurobugurt"},
            **content,
        }
        if "reply_markup" in params:
            message["reply_markup"] = params["reply_markup"]
        with self._cond:
            self.messages[(chat["id"], message["message_id"])] = message
        return message

    def _m_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._new_message(params, text=params["text"])

    def _m_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        size = len(params.get("photo") or b"")
        photo = [{"file_id": "photo1", "file_unique_id": "p1", "width": 640, "height": 480,
                  "file_size": size}]
        extra = {"caption": params["caption"]} if params.get("caption") else {}
        return self._new_message(params, photo=photo, **extra)

    def _edit(self, params: dict[str, Any], **changes: Any) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        with self._cond:
            message = self.messages[(chat["id"], int(params["message_id"]))]
            message.update(changes, edit_date=int(time.time()))
            if "reply_markup" in params:
                message["reply_markup"] = params["reply_markup"]
            return dict(message)

    def _m_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        """As Telegram: a message edited without reply_markup loses its inline keyboard."""
        message = self._edit(params, text=params["text"])
        if "reply_markup" not in params:
            with self._cond:
                self.messages[(message["chat"]["id"], message["message_id"])].pop(
                    "reply_markup", None)
            message.pop("reply_markup", None)
        return message

    def _m_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._edit(params)
