"""The scraper against the fake VK server: real vk_api, real HTTP, real SQLite."""

from __future__ import annotations

import sqlite3

import pytest

from common.config import config_from_dict
from common.corpus import read_posts, split_paths
from harness.fakes.vk import TOKEN, FakeVk, make_item
from scraper.run import ScrapeOptions, scrape
from scraper.vk import Retry, VkClient, VkError, _page

# Small pages so that a 100-post wall takes several execute batches; no waiting between calls.
FAST = ScrapeOptions(
    page_size=10,
    pages_per_call=3,
    retry=Retry(attempts=4, first_delay=0.01, max_delay=0.02),
    min_interval=0.0,
    progress=False,
)
BASE_DATE = 1_600_000_000


def bugurt(i: int) -> str:
    return f"БУГУРТ НОМЕР {i}\n@\nСТРОКА {i}\n\nпредложено через @tgbtbot\nБУГУРТ-ТРЕД"


def wall(n: int) -> list[dict]:
    return [make_item(i, BASE_DATE + 60 * i, bugurt(i)) for i in range(1, n + 1)]


def config(tmp_path, vk: FakeVk, **vk_keys):
    return config_from_dict({
        "vk": {"api_url": vk.api_url, "token": TOKEN, "community": "bugurt_thread", **vk_keys},
        "storage": {"db": str(tmp_path / "db.sqlite3")},
        "corpus": {"path": str(tmp_path / "corpus.txt")},
    })


def stored(tmp_path) -> dict[int, sqlite3.Row]:
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    conn.row_factory = sqlite3.Row
    rows = {r["post_id"]: r for r in conn.execute("SELECT * FROM posts")}
    conn.close()
    return rows


def state(tmp_path) -> sqlite3.Row:
    conn = sqlite3.connect(tmp_path / "db.sqlite3")
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM scrape_state").fetchone()
    conn.close()
    return row


def test_full_scrape_stores_everything_and_writes_the_corpus(tmp_path):
    posts = wall(45)
    posts.append(make_item(46, BASE_DATE + 60 * 46, bugurt(46), marked_as_ads=1))
    posts.append(make_item(47, BASE_DATE + 60 * 47, "", copy_history=[{"id": 1, "text": "X"}]))
    with FakeVk(posts) as vk:
        result = scrape(config(tmp_path, vk, api_version="5.131"), options=FAST)
    assert result.new_posts == 47
    assert result.summary() == (
        f"fetched 47 new posts; corpus: 45 bugurts, {result.corpus.characters} characters"
    )
    rows = stored(tmp_path)
    assert sorted(rows) == list(range(1, 48))
    assert rows[46]["marked_as_ads"] == 1 and rows[47]["is_repost"] == 1
    assert rows[7]["likes"] == 7 and rows[7]["views"] == 1007 and rows[7]["owner_id"] < 0
    corpus = read_posts(tmp_path / "corpus.txt")
    assert corpus == [f"БУГУРТ НОМЕР {i}\n@\nСТРОКА {i}" for i in range(1, 46)]
    train, val = (read_posts(p) for p in split_paths(tmp_path / "corpus.txt"))
    assert train + val == corpus and len(val) == 4  # the newest ~10% validate
    methods = [m for m, _ in vk.calls]
    assert methods[0] == "utils.resolveScreenName" and "execute" in methods
    assert {p["v"] for _, p in vk.calls} == {"5.131"}  # vk.api_version sent on every call
    assert vk.offsets() == list(range(0, 50, 10))


def test_half_an_emoji_is_stored_not_a_crash(tmp_path):
    posts = [make_item(1, BASE_DATE, "ОБРЕЗАН \ud83d\n@\nСМАЙЛ \ud83d\ude00")]
    with FakeVk(posts) as vk:
        scrape(config(tmp_path, vk), options=FAST)
    assert stored(tmp_path)[1]["text"] == "ОБРЕЗАН \ufffd\n@\nСМАЙЛ \U0001f600"


def test_execute_refused_falls_back_to_wall_get(tmp_path):
    with FakeVk(wall(35), execute_allowed=False) as vk:
        result = scrape(config(tmp_path, vk), options=FAST)
        methods = [m for m, _ in vk.calls]
    assert result.new_posts == 35 and len(stored(tmp_path)) == 35
    assert methods.count("execute") == 1  # refused once (error 28), never asked again
    assert vk.offsets("wall.get") == [0, 10, 20, 30]


def test_incremental_run_fetches_only_new_posts(tmp_path):
    with FakeVk(wall(60)) as vk:
        cfg = config(tmp_path, vk)
        scrape(cfg, options=FAST)
        for i in range(3):
            vk.add_post(f"НОВЫЙ {i}\n@\nПОСТ {i}")
        vk.calls.clear()
        result = scrape(cfg, options=FAST)
        assert vk.offsets() == [0]  # one page, then the known post stops the run
        vk.calls.clear()
        assert scrape(cfg, options=FAST).new_posts == 0
        assert vk.offsets() == [0]
    assert result.new_posts == 3
    assert len(stored(tmp_path)) == 63
    assert state(tmp_path)["newest_post_id"] == 63 and state(tmp_path)["run_newest_id"] is None
    assert read_posts(tmp_path / "corpus.txt")[-1] == "НОВЫЙ 2\n@\nПОСТ 2"


def test_old_pinned_post_neither_stops_nor_confuses_incremental_runs(tmp_path):
    with FakeVk(wall(30)) as vk:
        vk.pin(2)  # an old post, returned first on every page 0
        cfg = config(tmp_path, vk)
        assert scrape(cfg, options=FAST).new_posts == 30
        for i in range(15):  # more than one page of new posts
            vk.add_post(f"СВЕЖИЙ {i}\n@\nПОСТ {i}")
        assert scrape(cfg, options=FAST).new_posts == 15
        assert state(tmp_path)["newest_post_id"] == 45
        vk.pin(44)  # the pin moves to a recent post
        vk.add_post("ЕЩЁ ОДИН\n@\nПОСТ")
        assert scrape(cfg, options=FAST).new_posts == 1
    rows = stored(tmp_path)
    assert len(rows) == 46
    assert [i for i, r in rows.items() if r["is_pinned"]] == [44]
    assert state(tmp_path)["newest_post_id"] == 46


def test_full_rereads_the_wall_and_updates_edited_posts(tmp_path):
    with FakeVk(wall(25)) as vk:
        cfg = config(tmp_path, vk)
        scrape(cfg, options=FAST)
        vk.edit(5, "ИСПРАВЛЕННЫЙ\n@\nБУГУРТ")
        scrape(cfg, options=FAST)
        assert stored(tmp_path)[5]["text"] == bugurt(5)  # incremental: not re-read
        result = scrape(cfg, full=True, options=FAST)
    assert result.new_posts == 0
    row = stored(tmp_path)[5]
    assert row["text"] == "ИСПРАВЛЕННЫЙ\n@\nБУГУРТ" and row["edited"] == BASE_DATE + 300 + 3600
    assert "ИСПРАВЛЕННЫЙ\n@\nБУГУРТ" in read_posts(tmp_path / "corpus.txt")


@pytest.mark.parametrize("code", [1, 6, 9, 10, 29])  # common.vk.RETRYABLE
def test_retryable_vk_errors_are_retried(tmp_path, code):
    with FakeVk(wall(20)) as vk:
        vk.fail("execute", code=code, times=3)  # attempts=4: the fourth goes through
        result = scrape(config(tmp_path, vk), options=FAST)
        methods = [m for m, _ in vk.calls]
    assert result.new_posts == 20
    assert methods.count("execute") == 4


def test_endless_error_6_gives_up_after_the_cap(tmp_path):
    with FakeVk(wall(20)) as vk:
        vk.fail("wall.get", code=6, times=100)
        with pytest.raises(VkError, match="error 6"):
            scrape(config(tmp_path, vk), options=FAST)
        assert [m for m, _ in vk.calls].count("wall.get") == FAST.retry.attempts


@pytest.mark.parametrize(
    ("code", "says"),
    [(5, "VK_TOKEN"), (15, "denied"), (18, "deleted"), (30, "private"), (100, "not found"),
     (113, "not found")],
)
def test_fatal_vk_errors_end_with_one_clear_message(tmp_path, code, says):
    with FakeVk(wall(20)) as vk:
        vk.fail("wall.get", code=code)
        with pytest.raises(VkError, match=says) as caught:
            scrape(config(tmp_path, vk), options=FAST)
    assert "\n" not in str(caught.value) and f"error {code}" in str(caught.value)
    assert stored(tmp_path) == {}


def test_unknown_community_is_named(tmp_path):
    with FakeVk(wall(5)) as vk:
        with pytest.raises(VkError, match="community no_such_wall not found"):
            scrape(config(tmp_path, vk, community="no_such_wall"), options=FAST)


def test_http_5xx_is_retried_and_malformed_answers_are_errors(tmp_path):
    with FakeVk(wall(20)) as vk:
        cfg = config(tmp_path, vk)
        vk.fail("*", http_status=502, times=2)
        assert scrape(cfg, options=FAST).new_posts == 20
        vk.fail("wall.get", malformed=True)
        with pytest.raises(VkError, match="malformed answer to wall.get"):
            scrape(cfg, full=True, options=FAST)
    with pytest.raises(VkError, match="malformed wall page"):
        _page({"count": 1, "items": [{"id": "x"}]}, 0, "wall.get")
    with pytest.raises(VkError, match="malformed wall page"):
        _page([1, 2], 0, "execute")


def test_unreachable_server_is_a_network_error(tmp_path):
    with FakeVk(wall(5)) as vk:
        cfg = config(tmp_path, vk)
    with pytest.raises(VkError, match="cannot reach the VK API"):  # the server is gone now
        scrape(cfg, options=FAST)


def test_failure_between_pages_resumes_without_loss_or_duplicates(tmp_path):
    with FakeVk(wall(100)) as vk:
        cfg = config(tmp_path, vk)
        # wall.get(0), execute(10..39) pass; execute(40..69) fails for good.
        vk.fail("execute", http_status=503, times=FAST.retry.attempts, after=1)
        with pytest.raises(VkError, match="HTTP 503"):
            scrape(cfg, options=FAST)
        assert len(stored(tmp_path)) == 40
        assert (state(tmp_path)["run_offset"], state(tmp_path)["run_newest_id"]) == (40, 100)
        for i in range(5):
            vk.add_post(f"ПОКА ЛЕЖАЛ {i}\n@\nПОСТ {i}")
        vk.calls.clear()
        result = scrape(cfg, options=FAST)
        offsets = vk.offsets()
    # Catch up on the 5 new posts at offset 0, then go on from 40 + 5 less the overlap.
    assert offsets[0] == 0 and offsets[1] == 45 - 20
    assert result.new_posts == 65
    assert sorted(stored(tmp_path)) == list(range(1, 106))
    corpus = read_posts(tmp_path / "corpus.txt")
    assert len(corpus) == len(set(corpus)) == 105
    assert state(tmp_path)["run_newest_id"] is None and state(tmp_path)["newest_post_id"] == 105


def test_fake_wall_post_records_and_honours_guid():
    with FakeVk() as vk:
        client = VkClient(TOKEN, vk.api_url, "5.199", min_interval=0.0)
        first = client.call("wall.post", owner_id=-1, from_group=1, message="ТЕКСТ", guid="g1")
        again = client.call("wall.post", owner_id=-1, from_group=1, message="ТЕКСТ", guid="g1")
        other = client.call("wall.post", owner_id=-1, from_group=1, message="ДРУГОЙ", guid="g2")
        vk.fail("wall.post", code=15)
        with pytest.raises(VkError, match="error 15"):
            client.call("wall.post", owner_id=-1, message="НЕТ", guid="g3")
    assert first == again != other
    assert [p["message"] for p in vk.published] == ["ТЕКСТ", "ДРУГОЙ"]
    assert vk.published[0]["guid"] == "g1" and vk.published[0]["owner_id"] == "-1"
