"""Reading a VK wall through the real `vk_api.VkApi` (common.vk): retries, errors, paging.

Errors of common.vk.RETRYABLE (1/6/9/10/29) and HTTP 5xx are retried here, a bounded number of
times.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import requests
import vk_api
from vk_api.exceptions import ApiError, ApiHttpError, VkApiError

from common.cli import UserError
from common.vk import RETRYABLE, vk_api_client

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # wall.get's maximum `count`
PAGES_PER_EXECUTE = 25  # execute runs at most 25 API calls
EXECUTE_REFUSED = {3, 13, 15, 27, 28}  # unknown method, runtime error, denied, token type
_FATAL_HINTS = {
    5: "vk.token was refused: set VK_TOKEN to a valid service or user token",
    15: "access to the wall of {community} is denied: is the community closed?",
    18: "the community {community} is deleted or banned",
    30: "the wall of {community} is private",
    100: "community {community} not found: check vk.community",
    113: "community {community} not found: check vk.community",
}


class VkError(UserError):
    """A VK failure that ends the run; its text is the one line the user sees."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Retry:
    """Bounded exponential backoff for transient VK errors (seconds)."""

    attempts: int = 6  # calls in all, the first included
    first_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.max_delay, self.first_delay * 2**attempt)


@dataclass
class Page:
    offset: int  # wall offset of the first item
    count: int  # posts on the wall, as VK reported with this page
    items: list[dict]


class VkClient:
    def __init__(
        self,
        token: str,
        api_url: str,
        api_version: str,
        retry: Retry = Retry(),
        min_interval: float = vk_api.VkApi.RPS_DELAY,  # VK allows ~3 calls a second
    ):
        self.api = vk_api_client(token, api_url, api_version, timeout=60)
        self.api_url = self.api.http.api_url
        self.api.RPS_DELAY = min_interval
        self.api_version = api_version
        self.retry = retry
        self.community = ""  # for error messages

    def call(self, method: str, **params: object) -> object:
        """One API call with `v` sent explicitly; transient failures retried with backoff."""
        values = {"v": self.api_version, **params}
        for attempt in range(self.retry.attempts):
            try:
                return self.api.method(method, values)
            except ApiError as exc:
                if exc.code not in RETRYABLE or attempt + 1 == self.retry.attempts:
                    raise self._fatal(method, exc.code, exc.error.get("error_msg", "")) from None
                reason = RETRYABLE[exc.code]
            except ApiHttpError as exc:
                status = exc.response.status_code
                if status < 500 or attempt + 1 == self.retry.attempts:
                    raise VkError(f"VK API at {self.api_url} answered HTTP {status} to {method}; "
                                  "try again later or check vk.api_url") from None
                reason = f"HTTP {status}"
            except requests.JSONDecodeError:  # before RequestException: it is one too
                raise VkError(f"VK API at {self.api_url} sent a malformed answer to {method}; "
                              "try again later or check vk.api_url") from None
            except requests.RequestException as exc:
                raise VkError(f"cannot reach the VK API at {self.api_url} "
                              f"({type(exc).__name__}): check the network and vk.api_url") from None
            except (ValueError, KeyError, TypeError):  # JSON of a wrong shape
                raise VkError(f"VK API at {self.api_url} sent a malformed answer to {method}; "
                              "try again later or check vk.api_url") from None
            except VkApiError as exc:  # a captcha or another refusal vk_api raises itself
                raise VkError(f"VK refused {method}: {exc}") from None
            wait = self.retry.delay(attempt)
            log.warning("VK: %s on %s, retry %d in %.1f s", reason, method, attempt + 1, wait)
            time.sleep(wait)
        raise AssertionError("unreachable: the last attempt raises")

    def _fatal(self, method: str, code: int, message: str) -> VkError:
        if code in RETRYABLE:
            hint = f"VK kept answering '{RETRYABLE[code]}' (error {code}): try again later"
        else:
            hint = _FATAL_HINTS.get(code, "VK refused the call")
            hint = hint.format(community=self.community or "?")
        return VkError(f"{hint} [{method}: error {code}: {message}]", code)

    def resolve_owner(self, community: str) -> int:
        """The wall's owner id (negative for a community) of a screen name or numeric id."""
        self.community = community = community.strip().lstrip("@")
        if community.lstrip("-").isdigit():
            return -abs(int(community))
        found = self.call("utils.resolveScreenName", screen_name=community)
        if not isinstance(found, dict) or "object_id" not in found:
            raise VkError(f"community {community} not found: check vk.community")
        if found.get("type") not in ("group", "page", "event"):
            raise VkError(f"{community} is a {found.get('type')}, not a community: "
                          "check vk.community")
        return -abs(int(found["object_id"]))

    def wall_pages(
        self,
        owner_id: int,
        offset: int = 0,
        page_size: int = PAGE_SIZE,
        pages_per_call: int = PAGES_PER_EXECUTE,
    ) -> Iterator[Page]:
        """Pages of the wall from `offset` on, newest first, lazily; ends at the wall's end.

        The first page comes from a plain wall.get (an incremental run often needs no more);
        later ones in batches of `pages_per_call` through execute, or through wall.get
        again once execute is refused (a service token may not call it).
        """
        use_execute = pages_per_call > 1
        count = None  # posts on the wall, known after the first page
        while True:
            if count is None or not use_execute:
                pages = [self._wall_get(owner_id, offset, page_size)]
            else:
                # Ask no further than the wall reached at the last page (ceil of the rest).
                n = max(1, min(pages_per_call, -(-(count - offset) // page_size)))
                try:
                    pages = self._execute_pages(owner_id, offset, page_size, n)
                except VkError as exc:
                    if exc.code not in EXECUTE_REFUSED:
                        raise
                    log.info("execute refused (%s); paging with wall.get", exc)
                    use_execute = False
                    continue
            for page in pages:
                if page.items:
                    yield page
                count = page.count
                offset = page.offset + len(page.items)
                if not page.items or offset >= page.count:
                    return

    def _wall_get(self, owner_id: int, offset: int, count: int) -> Page:
        answer = self.call("wall.get", owner_id=owner_id, offset=offset, count=count)
        return _page(answer, offset, "wall.get")

    def _execute_pages(self, owner_id: int, offset: int, size: int, n: int) -> list[Page]:
        calls = ",".join(
            "API.wall.get(" + json.dumps({"owner_id": owner_id, "offset": offset + i * size,
                                          "count": size}) + ")"
            for i in range(n)
        )
        answer = self.call("execute", code=f"return [{calls}];")
        if not isinstance(answer, list) or len(answer) != n:
            raise VkError(f"VK API at {self.api_url} sent a malformed answer to execute")
        pages = []
        for i, page in enumerate(answer):
            if page is False:  # the inner call failed: let a plain wall.get report why
                pages.append(self._wall_get(owner_id, offset + i * size, size))
            else:
                pages.append(_page(page, offset + i * size, "execute"))
            if not pages[-1].items:
                break
        return pages


def _page(answer: object, offset: int, method: str) -> Page:
    """Check the shape of a wall.get answer; anything else is a malformed answer."""
    items = answer.get("items") if isinstance(answer, dict) else None
    count = answer.get("count") if isinstance(answer, dict) else None
    if not isinstance(items, list) or not isinstance(count, int) or not all(
        isinstance(i, dict) and isinstance(i.get("id"), int) and isinstance(i.get("date"), int)
        for i in items
    ):
        raise VkError(f"VK API sent a malformed wall page to {method} (offset {offset}): "
                      "try again later or check vk.api_url")
    return Page(offset, count, items)
