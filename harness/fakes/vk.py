"""A fake VK API server on 127.0.0.1: real HTTP, the methods the project calls, injectable faults.

Serves `wall.get`, `execute` (the VKScript our scraper sends: an array of `API.wall.get({...})`
calls), `utils.resolveScreenName`, `groups.getById` and `wall.post` (recorded in `published`;
a repeated `guid` returns the first post's id and records nothing, as VK does). Items have the
shape of real `wall.get` items (see ../shared/data/vk_wall_get/): id, owner_id, from_id, date,
marked_as_ads, post_type, text, attachments, post_source, comments, likes, reposts, views,
`is_pinned` on the pinned post, `edited` on edited posts, `copy_history` on reposts.

    with FakeVk(posts=[make_item(1, 1600000000, "ТЕКСТ\\n@\\nЕЩЁ")]) as vk:
        vk.api_url                       # point vk.api_url of the config here
        vk.fail("wall.get", code=6, times=3)  # the next 3 wall.get calls answer error 6
        vk.fail("*", http_status=502)    # the next call of any method answers HTTP 502
        vk.fail("execute", malformed=True)
        vk.fail("wall.post", delay=60)  # takes effect, but the answer comes late (or never)
        vk.calls                         # [(method, params)] in arrival order
        vk.published                     # wall.post calls that created a post

Run by hand: `python -m harness.fakes.vk --jsonl FILE --port P` serves the posts of a JSONL file
(`{"id", "date", "text"}` per line, newest last) as the wall of `bugurt_thread`.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

OWNER_ID = -57536014  # a community: negative owner id
SCREEN_NAME = "bugurt_thread"
TOKEN = "fake-vk-token"

# Real VK error texts for the codes the project meets.
ERROR_TEXTS = {
    5: "User authorization failed: invalid access_token (4).",
    6: "Too many requests per second",
    9: "Flood control",
    10: "Internal server error",
    15: "Access denied: this wall is available only for community members",
    18: "User was deleted or banned",
    28: "Application authorization failed: method is unavailable with service token.",
    29: "Rate limit reached",
    30: "This profile is private",
    100: "One of the parameters specified was missing or invalid: group_id is undefined",
    113: "Invalid user id",
}
_WALL_GET_CALL = re.compile(r"API\.wall\.get\((\{.*?\})\)")


def make_item(
    post_id: int, date: int, text: str, owner_id: int = OWNER_ID, **extra: object
) -> dict:
    """A wall.get item as VK returns it; `extra` adds or overrides fields (is_pinned, ...)."""
    item = {
        "id": post_id,
        "from_id": owner_id,
        "owner_id": owner_id,
        "date": date,
        "marked_as_ads": 0,
        "post_type": "post",
        "text": text,
        "attachments": [],
        "post_source": {"type": "vk"},
        "comments": {"count": post_id % 7, "can_post": 1, "groups_can_post": True},
        "likes": {"count": post_id % 100, "user_likes": 0, "can_like": 1, "can_publish": 1},
        "reposts": {"count": post_id % 10, "user_reposted": 0},
        "views": {"count": 1000 + post_id % 1000},
        "hash": f"h{post_id}",
    }
    item.update(extra)
    return item


def items_from_jsonl(path: str | Path, owner_id: int = OWNER_ID) -> list[dict]:
    """Wall items from a JSONL export of posts ({"id", "date", "text"} per line)."""
    items = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                items.append(make_item(int(row["id"]), int(row["date"]), row["text"], owner_id))
    return items


@dataclass
class Fault:
    code: int | None = None  # VK error code in a 200 answer
    http_status: int | None = None  # an HTTP error status instead
    malformed: bool = False  # a 200 answer whose body is not JSON
    delay: float = 0.0  # seconds before the answer (cut short by stop); the call takes effect


class FakeVk:
    """The fake server; a context manager that serves from a daemon thread while open."""

    def __init__(
        self,
        posts: list[dict] | None = None,
        owner_id: int = OWNER_ID,
        screen_name: str = SCREEN_NAME,
        token: str = TOKEN,
        execute_allowed: bool = True,
    ):
        self.owner_id = owner_id
        self.screen_name = screen_name
        self.token = token
        self.execute_allowed = execute_allowed  # False: a service token (error 28 on execute)
        self.posts: dict[int, dict] = {p["id"]: p for p in posts or []}
        self.calls: list[tuple[str, dict]] = []
        self.published: list[dict] = []
        self.gate: threading.Event | None = None  # see hold_after
        self._hold_after: int | None = None
        self._faults: dict[str, deque[Fault | None]] = {}
        self._guids: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._stopped = threading.Event()  # ends the wait of delayed answers

    # ----- test controls -----
    @property
    def api_url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/method/"

    def fail(
        self,
        method: str = "*",
        code: int | None = None,
        http_status: int | None = None,
        malformed: bool = False,
        times: int = 1,
        after: int = 0,
        delay: float = 0.0,
    ) -> None:
        """Make `times` calls of `method` ("*": any) fail the given way, after `after` good ones.

        `delay` alone answers normally but late: a slow server, or (past the client's timeout,
        or with the client killed meanwhile) an answer lost after the call took effect.
        """
        with self._lock:
            queue = self._faults.setdefault(method, deque())
            queue.extend([None] * after)
            queue.extend(Fault(code, http_status, malformed, delay) for _ in range(times))

    def hold_after(self, calls: int) -> threading.Event:
        """Block every wall-reading call after the first `calls` until the event is set."""
        self._hold_after = calls
        self.gate = threading.Event()
        return self.gate

    def add_post(self, text: str, date: int | None = None, **extra: object) -> dict:
        with self._lock:
            post_id = max(self.posts, default=0) + 1
            if date is None:
                date = max((p["date"] for p in self.posts.values()), default=1_600_000_000) + 60
            item = make_item(post_id, date, text, self.owner_id, **extra)
            self.posts[post_id] = item
            return item

    def pin(self, post_id: int | None) -> None:
        with self._lock:
            for item in self.posts.values():
                item.pop("is_pinned", None)
            if post_id is not None:
                self.posts[post_id]["is_pinned"] = 1

    def edit(self, post_id: int, text: str) -> None:
        with self._lock:
            item = self.posts[post_id]
            item["text"] = text
            item["edited"] = item["date"] + 3600

    def offsets(self, method: str | None = None) -> list[int]:
        """Wall offsets requested in order, by plain `wall.get`, by `execute` or (None) both."""
        found = []
        for name, params in self.calls:
            if name == "wall.get" and method in (None, "wall.get"):
                found.append(int(params.get("offset", 0)))
            elif name == "execute" and method in (None, "execute"):
                for call in _WALL_GET_CALL.findall(params.get("code", "")):
                    found.append(int(json.loads(call).get("offset", 0)))
        return found

    # ----- serving -----
    def start(self) -> FakeVk:
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self.gate is not None:
            self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeVk:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, method: str, params: dict) -> tuple[int, str]:
        """(HTTP status, body) for one API call."""
        with self._lock:
            self.calls.append((method, params))
            n_reads = sum(name in ("wall.get", "execute") for name, _ in self.calls)
            fault = self._take_fault(method)
        if method in ("wall.get", "execute") and self._hold_after is not None:
            if n_reads > self._hold_after:
                self.gate.wait(timeout=60)
        if fault and fault.delay:
            answer = self._answer(method, params, None)
            self._stopped.wait(fault.delay)
            return answer
        return self._answer(method, params, fault)

    def _answer(self, method: str, params: dict, fault: Fault | None) -> tuple[int, str]:
        if fault and fault.http_status:
            return fault.http_status, "<html>bad gateway</html>"
        if fault and fault.malformed:
            return 200, '{"response": {"count": 3, "items": [{"id"'
        if fault and fault.code:
            return 200, _error(fault.code, method, params)
        if params.get("access_token") != self.token:
            return 200, _error(5, method, params)
        if "v" not in params:
            return 200, _error(8, method, params, "Invalid request: v is required")
        handler = {
            "wall.get": self._wall_get,
            "execute": self._execute,
            "utils.resolveScreenName": self._resolve,
            "groups.getById": self._group_by_id,
            "wall.post": self._wall_post,
        }.get(method)
        if handler is None:
            return 200, _error(3, method, params, "Unknown method passed")
        return 200, handler(params)

    def _take_fault(self, method: str) -> Fault | None:
        for key in (method, "*"):
            if self._faults.get(key):
                return self._faults[key].popleft()
        return None

    def _wall(self) -> list[dict]:
        """The wall in VK's order: the pinned post first, then newest to oldest."""
        with self._lock:
            items = sorted(self.posts.values(), key=lambda p: p["id"], reverse=True)
        pinned = [p for p in items if p.get("is_pinned")]
        return pinned + [p for p in items if not p.get("is_pinned")]

    def _wall_page(self, params: dict) -> dict | int:
        owner = params.get("owner_id")
        domain = params.get("domain")
        if domain not in (None, self.screen_name) or (
            owner is not None and int(owner) != self.owner_id
        ):
            return 100
        offset = int(params.get("offset", 0))
        count = min(int(params.get("count", 20)), 100)
        wall = self._wall()
        return {"count": len(wall), "items": wall[offset : offset + count]}

    def _wall_get(self, params: dict) -> str:
        page = self._wall_page(params)
        if isinstance(page, int):
            return _error(page, "wall.get", params)
        return json.dumps({"response": page}, ensure_ascii=False)

    def _execute(self, params: dict) -> str:
        if not self.execute_allowed:
            return _error(28, "execute", params)
        results, errors = [], []
        for call in _WALL_GET_CALL.findall(params.get("code", "")):
            page = self._wall_page(json.loads(call))
            if isinstance(page, int):
                results.append(False)
                errors.append({"method": "wall.get", "error_code": page, "error_msg": "failed"})
            else:
                results.append(page)
        body: dict = {"response": results}
        if errors:
            body["execute_errors"] = errors
        return json.dumps(body, ensure_ascii=False)

    def _resolve(self, params: dict) -> str:
        name = params.get("screen_name", "")
        found = name == self.screen_name or name in (f"club{-self.owner_id}", str(-self.owner_id))
        answer = {"type": "group", "object_id": -self.owner_id} if found else []
        return json.dumps({"response": answer})

    def _group_by_id(self, params: dict) -> str:
        wanted = str(params.get("group_id", ""))
        if wanted not in (self.screen_name, str(-self.owner_id)):
            return _error(100, "groups.getById", params)
        group = {"id": -self.owner_id, "name": "БУГУРТ-ТРЕД", "screen_name": self.screen_name,
                 "is_closed": 0, "type": "page"}
        return json.dumps({"response": {"groups": [group], "profiles": []}}, ensure_ascii=False)

    def _wall_post(self, params: dict) -> str:
        with self._lock:
            guid = params.get("guid")
            if guid and guid in self._guids:
                return json.dumps({"response": {"post_id": self._guids[guid]}})
            post_id = 1_000_000 + len(self.published) + 1
            if guid:
                self._guids[guid] = post_id
            self.published.append({"post_id": post_id, **params})
        return json.dumps({"response": {"post_id": post_id}})


def _error(code: int, method: str, params: dict, message: str | None = None) -> str:
    shown = [{"key": "method", "value": method}] + [
        {"key": k, "value": str(v)} for k, v in params.items() if k not in ("access_token", "code")
    ]
    error = {"error_code": code, "error_msg": message or ERROR_TEXTS.get(code, "Unknown error"),
             "request_params": shown}
    return json.dumps({"error": error}, ensure_ascii=False)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        pass  # a client killed mid-request (the kill-and-resume test) is expected here


def _handler_for(fake: FakeVk) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._answer(parse_qs(urlparse(self.path).query))

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8")
            query = parse_qs(urlparse(self.path).query)
            self._answer({**query, **parse_qs(body, keep_blank_values=True)})

        def _answer(self, multi: dict[str, list[str]]) -> None:
            path = urlparse(self.path).path
            if not path.startswith("/method/"):
                status, body = 404, "not found"
            else:
                params = {k: v[-1] for k, v in multi.items()}
                status, body = fake.handle(path[len("/method/") :], params)
            try:
                data = body.encode("utf-8")
            except UnicodeEncodeError:  # half an emoji: VK escapes it as \udXXX in JSON
                data = json.dumps(json.loads(body)).encode("ascii")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass  # tests read `fake.calls`, not an access log

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve a fake VK wall on 127.0.0.1")
    parser.add_argument("--jsonl", required=True, help="posts, one JSON object a line")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=TOKEN)
    args = parser.parse_args()
    fake = FakeVk(items_from_jsonl(args.jsonl), token=args.token)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _handler_for(fake))
    print(f"fake VK API at http://127.0.0.1:{args.port}/method/ (token {args.token})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
