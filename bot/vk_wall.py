"""The VK community wall as a publishing target of the outbox (no python-telegram-bot here).

It turns VK's errors into the outbox's two kinds: RetryLater (network trouble, flood control,
server errors) and PermanentFailure (VK refuses this post for good).
"""

from __future__ import annotations

import asyncio

import requests
import vk_api

from bot.outbox import PermanentFailure, RetryLater
from common.vk import RETRYABLE, vk_api_client


class VkWall:
    """Posts to the wall of community `vk.post_community` as the community (wall.post)."""

    target = "vk"

    def __init__(self, api_url: str, token: str, api_version: str, community: int) -> None:
        self.owner_id = -abs(community)
        self.vk = vk_api_client(token, api_url, api_version, timeout=30)

    async def publish(self, outbox_id: int, text: str, guid: str) -> str:
        values = {"owner_id": self.owner_id, "from_group": 1, "message": text, "guid": guid}
        try:
            # vk-api is synchronous (requests); a thread keeps the event loop answering.
            response = await asyncio.to_thread(self.vk.method, "wall.post", values)
        except vk_api.ApiError as exc:
            if exc.code in RETRYABLE:
                raise RetryLater(f"VK error {exc}") from None
            raise PermanentFailure(f"VK refused the post: {exc}") from None
        except (vk_api.ApiHttpError, requests.RequestException) as exc:
            raise RetryLater(f"VK unreachable: {type(exc).__name__}: {exc}") from None
        return str(response["post_id"])
