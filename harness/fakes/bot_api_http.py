"""The HTTP side of the fake Telegram Bot API (harness/fakes/telegram.py): the server, the
request handler that decodes a Bot API call's parameters as PTB sends them and answers what
`FakeTelegram.handle` returns, and whether a client hung up."""

from __future__ import annotations

import json
import select
import socket
import urllib.parse
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


class BotApi(Protocol):
    """What the handler asks of the fake it serves (harness/fakes/telegram.py's FakeTelegram)."""

    token: str

    def let_through(self, method: str, params: dict[str, Any], sender: socket.socket) -> bool: ...

    def handle(self, method: str,
               params: dict[str, Any]) -> tuple[int, dict[str, Any] | str | None]: ...


def hung_up(sender: socket.socket) -> bool:
    """Whether the client closed its end: nothing more was sent, so a readable socket means
    end of file (a killed process's sockets are closed by its kernel)."""
    readable, _, _ = select.select([sender], [], [], 0)
    if not readable:
        return False
    try:
        return sender.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class BotApiServer(ThreadingHTTPServer):
    request_queue_size = 128  # a burst of 50 users opens 50 connections at once (default: 5)


def decode_params(content_type: str, body: bytes) -> dict[str, Any]:
    """Bot API parameters: form or multipart fields whose values PTB sends JSON-encoded."""
    if content_type.startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        raw: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename():
                raw[name] = part.get_payload(decode=True)
            else:
                raw[name] = part.get_payload(decode=True).decode("utf-8")
    elif content_type.startswith("application/json"):
        return json.loads(body or b"{}")
    else:
        raw = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass  # a plain string such as text
            else:
                if isinstance(value, int | float) and key in ("text", "caption"):
                    value = raw[key]
        params[key] = value
    return params


def handler_for(server: BotApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API
        disable_nagle_algorithm = True  # else every small answer waits ~40 ms for an ACK

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            prefix = f"/bot{server.token}/"
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:  # the client died while sending: nothing to answer
                self.close_connection = True
                return
            if not self.path.startswith(prefix):
                self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                return
            method = self.path[len(prefix):]
            params = decode_params(self.headers.get("Content-Type", ""), body)
            if not server.let_through(method, params, self.connection):
                self.close_connection = True
                return
            status, answer = server.handle(method, params)
            if answer is None:
                self.close_connection = True
                self.connection.close()
                return
            self._answer(status, answer)

        do_GET = do_POST  # noqa: N815

        def _answer(self, status: int, body: dict[str, Any] | str) -> None:
            html = isinstance(body, str) and body.lstrip().startswith("<")
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if html else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a test stopped it)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: the test output is for assertions

    return Handler
