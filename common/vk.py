"""The real `vk_api.VkApi`, pointed at `vk.api_url`, as both the scraper and the bot use it.

vk_api posts every call to its hard-coded `https://api.vk.ru/method/`; `BaseUrlSession` (the
`session=` it accepts) rewrites that prefix to `vk.api_url`, so the same code talks to a fake
server in tests. vk_api's own handler for error 6 sleeps and calls itself again without end;
it is removed, so callers see the error and retry a bounded number of times themselves.
"""

from __future__ import annotations

import requests
import vk_api
from jconfig import MemoryConfig

VK_LIB_API_URL = "https://api.vk.ru/method/"  # what vk_api hard-codes
# VK API errors that pass if the same call is made again later, with what each means. VK's error
# list says "try again later" for 1 (unknown error) as for 10 (internal server error); a retried
# wall.get reads the same page and a retried wall.post carries the same guid, so retrying these
# can neither lose nor double anything. Every other code is VK refusing the call for good.
RETRYABLE = {1: "unknown VK error", 6: "too many requests", 9: "flood control",
             10: "VK internal error", 29: "rate limit reached"}


class BaseUrlSession(requests.Session):
    """A requests session that sends vk_api's calls to `api_url` instead of api.vk.ru."""

    def __init__(self, api_url: str, timeout: float):
        super().__init__()
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.timeout = timeout  # seconds, for every call
        self.headers["User-Agent"] = "neurobugurt"

    def request(self, method, url, *args, **kwargs):  # noqa: ANN001 (requests' signature)
        if isinstance(url, str) and url.startswith(VK_LIB_API_URL):
            url = self.api_url + url[len(VK_LIB_API_URL) :]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def vk_api_client(token: str, api_url: str, api_version: str, timeout: float) -> vk_api.VkApi:
    """A VkApi on `api_url` with no unbounded retry and no config file in the current folder."""
    api = vk_api.VkApi(
        token=token,
        api_version=api_version,
        session=BaseUrlSession(api_url, timeout),
        config=MemoryConfig,  # no vk_config.v2.json read from or written to the current folder
    )
    api.error_handlers.pop(vk_api.vk_api.TOO_MANY_RPS_CODE, None)  # unbounded recursion
    return api
