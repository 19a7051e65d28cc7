"""The fake Telegram Bot API in webhook mode: updates are POSTed to the bots instead of polled.

`setWebhook` records the URL and secret a bot registered. The test names the bot processes'
own addresses (`targets`: what a load balancer in front of them would forward to); each update
goes to the next target in turn, with the registered secret in `X-Telegram-Bot-Api-Secret-Token`,
several at once as Telegram does. An update a target does not take (connection refused, an
error status) is offered to the next one after a short pause, as Telegram retries it.

    server = WebhookTelegram().start()
    server.targets = ["http://127.0.0.1:8001/hook", "http://127.0.0.1:8002/hook"]
    server.send_command("/bugurt", user_id=1)   # delivered by a POST to one of them
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from harness.fakes.telegram import FakeTelegram

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def post_update(url: str, update: dict[str, Any], secret: str | None) -> int:
    """POST one update as Telegram does; the HTTP status (0: nothing listens there)."""
    request = urllib.request.Request(url, data=json.dumps(update).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    if secret is not None:
        request.add_header(SECRET_HEADER, secret)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


class WebhookTelegram(FakeTelegram):
    def __init__(self, token: str = "123456:TEST-TOKEN", senders: int = 8) -> None:
        super().__init__(token)
        self.targets: list[str] = []
        self.webhook: dict[str, Any] = {}  # the last setWebhook's parameters
        self.delivered: dict[int, str] = {}  # update id → the target that took it
        self.refused = 0  # deliveries a target did not take (then retried elsewhere)
        self._outgoing: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._turn = itertools.count()
        self._senders = [threading.Thread(target=self._send_loop, daemon=True)
                         for _ in range(senders)]

    def start(self) -> WebhookTelegram:
        super().start()
        for sender in self._senders:
            sender.start()
        return self

    def stop(self) -> None:
        for _ in self._senders:
            self._outgoing.put(None)
        super().stop()

    def wait_delivered(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.delivered) < count:
            assert time.monotonic() < deadline, f"{len(self.delivered)}/{count} delivered"
            time.sleep(0.02)

    def _push(self, update: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            update = {"update_id": next(self._update_ids), **update}
        self._outgoing.put(update)
        return update

    def _send_loop(self) -> None:
        while (update := self._outgoing.get()) is not None:
            while not self._stopping.is_set():
                target = self.targets[next(self._turn) % len(self.targets)]
                if post_update(target, update, self.webhook.get("secret_token")) == 200:
                    with self._cond:
                        self.delivered[update["update_id"]] = target
                    break
                with self._cond:
                    self.refused += 1
                time.sleep(0.05)

    def _m_setWebhook(self, params: dict[str, Any]) -> bool:  # noqa: N802 (Bot API name)
        with self._cond:
            self.webhook = params
        return True
