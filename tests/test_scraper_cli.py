"""`python -m scraper` as a real process: killed mid-run and resumed; a bad token is one line."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

from tests.fakes.vk import TOKEN, FakeVk, make_item
from tests.paths import REPO

BASE_DATE = 1_600_000_000


def write_config(tmp_path, vk: FakeVk) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"vk:\n  api_url: {vk.api_url}\n  token: ${{VK_TOKEN}}\n  community: bugurt_thread\n"
        f"storage:\n  db: {tmp_path / 'db.sqlite3'}\ncorpus:\n  path: {tmp_path / 'corpus.txt'}\n",
        encoding="utf-8",
    )
    return str(path)


def scraper(config: str, token: str = TOKEN, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scraper", "--config", config],
        cwd=REPO, env={**os.environ, "VK_TOKEN": token}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )


def stored_ids(tmp_path) -> list[int]:
    db = tmp_path / "db.sqlite3"
    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT post_id FROM posts ORDER BY post_id")]
    except sqlite3.OperationalError:  # the schema is not created yet
        return []
    finally:
        conn.close()


def test_killed_mid_run_resumes_without_loss_or_duplicates(tmp_path):
    posts = [make_item(i, BASE_DATE + 60 * i, f"ПОСТ {i}\n@\nСТРОКА {i}") for i in range(1, 2701)]
    with FakeVk(posts) as vk:
        config = write_config(tmp_path, vk)
        gate = vk.hold_after(calls=2)  # wall.get(0) and execute(100..2599) pass, then it hangs
        proc = scraper(config)
        deadline = time.monotonic() + 60
        while len(stored_ids(tmp_path)) < 2600 and time.monotonic() < deadline:  # newest first
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no cleanup of any kind
        proc.communicate()
        gate.set()
        assert stored_ids(tmp_path) == list(range(101, 2701))
        for i in range(5):
            vk.add_post(f"НОВЫЙ {i}\n@\nПОСТ {i}")
        vk.calls.clear()
        out, err = scraper(config).communicate(timeout=120)
        offsets = vk.offsets()
    assert out.strip().startswith("fetched 105 new posts; corpus: 2705 bugurts"), err
    assert stored_ids(tmp_path) == list(range(1, 2706))
    # Caught up on the 5 new posts at offset 0, then resumed at 2600 + 5 less the overlap,
    # after a one-post probe there showing that no post moved past the restart point.
    assert offsets == [0, 2585, 2585, 2685]


def test_bad_token_exits_with_one_line(tmp_path):
    with FakeVk([make_item(1, BASE_DATE, "А\n@\nБ")]) as vk:
        proc = scraper(write_config(tmp_path, vk), token="stolen-or-expired")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: vk.token was refused"), err
    assert "Traceback" not in err and "stolen-or-expired" not in err and out == ""
