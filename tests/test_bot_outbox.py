"""Outbox delivery through the real Telegram (PTB Bot) and VK (vk-api) clients to fake servers."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa
from telegram import Bot

from bot.outbox import Outbox
from bot.telegram_channel import TelegramChannel
from bot.vk_wall import VkWall
from harness.fakes.telegram import CHANNEL_ID
from harness.fakes.vk import TOKEN as VK_TOKEN
from harness.fakes.vk import FakeVk

COMMUNITY = 4242


@pytest.fixture
def vk():
    with FakeVk() as server:
        yield server


def _deliveries(database, outbox_id):
    with database.read() as conn:
        rows = conn.execute(sa.text(
            "SELECT target, status, message_id, attempts, next_try, claimed_by FROM deliveries"
            " WHERE outbox_id = :id ORDER BY target"), {"id": outbox_id}).mappings().all()
    return {r["target"]: dict(r) for r in rows}


def _targets(telegram, vk):
    wall = VkWall(vk.api_url, VK_TOKEN, "5.199", COMMUNITY)
    wall.vk.RPS_DELAY = 0  # vk-api sleeps 0.34 s between calls by default; not needed here
    return Bot(telegram.token, base_url=telegram.api_url), wall


async def _with_outbox(database, telegram, vk, body, backoff=0.2):
    bot, wall = _targets(telegram, vk)
    async with bot:
        outbox = Outbox(database, [TelegramChannel(bot, "@chan"), wall], backoff_seconds=backoff)
        await body(outbox, database)


def test_post_is_stored_pending_then_sent_to_both_targets(database, telegram, vk):
    async def body(outbox, database):
        outbox_id = outbox.store("ПОСТ\n@\nТЕКСТ\n#neurobugurt", 0.85, "admin")
        before = _deliveries(database, outbox_id)
        assert {d["status"] for d in before.values()} == {"pending"}
        assert telegram.messages_in(CHANNEL_ID) == [] and vk.published == []
        results = await outbox.deliver(outbox_id)
        assert [(r.target, r.status) for r in results] == [("telegram", "sent"), ("vk", "sent")]
        after = _deliveries(database, outbox_id)
        sent = telegram.messages_in(CHANNEL_ID)
        assert len(sent) == 1 and sent[0]["text"].endswith("#neurobugurt")
        assert after["telegram"]["message_id"] == str(sent[0]["message_id"])
        buttons = sent[0]["reply_markup"]["inline_keyboard"][0]
        data = [b["callback_data"] for b in buttons]
        assert data == [f"vote:{outbox_id}:1", f"vote:{outbox_id}:-1"]
        assert len(vk.published) == 1
        post = vk.published[0]
        assert post["owner_id"] == str(-COMMUNITY) and post["from_group"] == "1"
        assert after["vk"]["message_id"] == str(post["post_id"])
        # A second pass finds nothing pending: nothing is sent twice.
        assert await outbox.deliver() == []
        assert len(telegram.messages_in(CHANNEL_ID)) == 1 and len(vk.published) == 1

    asyncio.run(_with_outbox(database, telegram, vk, body))


def test_retry_after_and_vk_flood_control_are_retried_later(database, telegram, vk):
    async def body(outbox, database):
        telegram.fail("sendMessage", retry_after=1)
        vk.fail("wall.post", code=9)
        outbox_id = outbox.store("ФЛУД\n#neurobugurt", 1.0, "schedule")
        first = {r.target: r for r in await outbox.deliver(outbox_id)}
        assert first["telegram"].status == "pending" and "flood" in first["telegram"].detail.lower()
        assert first["vk"].status == "pending" and "[9]" in first["vk"].detail
        rows = _deliveries(database, outbox_id)
        # Telegram said when: retry_after; VK error 9 backs off.
        assert rows["telegram"]["next_try"] - time.time() == pytest.approx(1.0, abs=0.3)
        assert rows["vk"]["next_try"] > time.time()
        assert await outbox.deliver(outbox_id) == []  # nothing is due yet
        await asyncio.sleep(1.05)
        second = {r.target: r.status for r in await outbox.deliver(outbox_id)}
        assert second == {"telegram": "sent", "vk": "sent"}
        assert len(telegram.messages_in(CHANNEL_ID)) == 1 and len(vk.published) == 1
        assert _deliveries(database, outbox_id)["telegram"]["attempts"] == 2

    asyncio.run(_with_outbox(database, telegram, vk, body))


def test_network_errors_back_off_exponentially_and_permanent_errors_stop(database, telegram, vk):
    async def body(outbox, database):
        telegram.fail("sendMessage", drop=True, times=2)
        vk.fail("wall.post", code=15)  # access denied: retrying cannot help
        outbox_id = outbox.store("СЕТЬ\n#neurobugurt", 0.7, "admin")
        await outbox.deliver(outbox_id)
        rows = _deliveries(database, outbox_id)
        assert rows["vk"]["status"] == "failed"
        first_wait = rows["telegram"]["next_try"] - time.time()
        await outbox.deliver(outbox_id, force=True)
        second_wait = _deliveries(database, outbox_id)["telegram"]["next_try"] - time.time()
        assert first_wait == pytest.approx(0.2, abs=0.1)
        assert second_wait == pytest.approx(0.4, abs=0.1)  # doubled
        await asyncio.sleep(0.45)
        assert [r.status for r in await outbox.deliver()] == ["sent"]
        assert len(telegram.messages_in(CHANNEL_ID)) == 1 and vk.published == []
        assert outbox.counts() == {"sent": 1, "failed": 1}

    asyncio.run(_with_outbox(database, telegram, vk, body))


def test_lost_vk_answer_is_retried_with_the_same_guid_and_not_duplicated(database, telegram, vk):
    async def body(outbox, database):
        outbox_id = outbox.store("ГУИД\n#neurobugurt", 0.85, "admin")
        await outbox.deliver(outbox_id)
        # As if the answer had been lost: the row goes back to pending and is sent again.
        with database.write() as conn:
            conn.exec_driver_sql("UPDATE deliveries SET status = 'pending' WHERE target = 'vk'")
        await outbox.deliver(outbox_id)
        guids = [params["guid"] for method, params in vk.calls if method == "wall.post"]
        assert len(guids) == 2 and guids[0] == guids[1]
        assert len(vk.published) == 1

    asyncio.run(_with_outbox(database, telegram, vk, body))


def test_odd_answers_from_telegram_are_retried_not_fatal(database, telegram, vk):
    async def body(outbox, database):
        telegram.fail("sendMessage", status=200, raw='{"ok": true, "result": {"message_id"')
        telegram.fail("sendMessage", status=502, raw="<html><body>502 Bad Gateway</body></html>")
        outbox_id = outbox.store("ОТВЕТ\n#neurobugurt", 0.85, "admin")
        first = {r.target: r for r in await outbox.deliver(outbox_id)}
        assert first["telegram"].status == "pending" and first["vk"].status == "sent"
        second = await outbox.deliver(outbox_id, force=True)
        assert [(r.target, r.status) for r in second] == [("telegram", "pending")]
        third = await outbox.deliver(outbox_id, force=True)
        assert [(r.target, r.status) for r in third] == [("telegram", "sent")]
        assert len(telegram.messages_in(CHANNEL_ID)) == 1 and len(vk.published) == 1

    asyncio.run(_with_outbox(database, telegram, vk, body))


class _Hung:
    """A Telegram target whose send never returns: its process dies in the middle of it."""

    target = "telegram"

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def publish(self, outbox_id: int, text: str, guid: str) -> str:
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_a_claimed_delivery_is_sent_by_one_process_and_taken_over_when_it_dies(
        postgres_database, telegram, vk):
    database = postgres_database

    async def body():
        bot, _ = _targets(telegram, vk)
        hung = _Hung()
        first = Outbox(database, [hung])  # "process" one (its claim would hold two minutes)
        async with bot:
            second = Outbox(database, [TelegramChannel(bot, "@chan")])  # "process" two
            outbox_id = first.store("ОДИН РАЗ\n#neurobugurt", 0.85, "admin")
            dying = asyncio.create_task(first.deliver(outbox_id))
            await hung.started.wait()
            assert _deliveries(database, outbox_id)["telegram"]["claimed_by"] == first.owner
            assert await second.deliver(force=True) == []  # claimed: the other process waits
            dying.cancel()  # the first process dies in the middle of its send:
            first.life.end()  # PostgreSQL ends its sessions, its sign of life with them
            results = await second.deliver(force=True)  # taken over at once
            assert [(r.target, r.status) for r in results] == [("telegram", "sent")]
            assert await second.deliver(force=True) == []  # sent: never again
        row = _deliveries(database, outbox_id)["telegram"]
        assert row["status"] == "sent" and row["claimed_by"] is None
        assert len(telegram.messages_in(CHANNEL_ID)) == 1

    asyncio.run(body())


def test_two_processes_delivering_at_once_send_each_post_once(postgres_database, telegram, vk):
    database = postgres_database

    async def body():
        bot, _ = _targets(telegram, vk)
        async with bot:
            a, b = (Outbox(database, [TelegramChannel(bot, "@chan")]) for _ in range(2))
            ids = [(a if i % 2 else b).store(f"ПОСТ {i}\n#neurobugurt", 0.85, "schedule")
                   for i in range(12)]
            results = await asyncio.gather(a.deliver(), b.deliver(), a.deliver(), b.deliver())
        assert sum(len(r) for r in results) == len(ids)  # each delivery in one pass only
        texts = [m["text"] for m in telegram.messages_in(CHANNEL_ID)]
        assert sorted(texts) == sorted(f"ПОСТ {i}\n#neurobugurt" for i in range(12))

    asyncio.run(body())
