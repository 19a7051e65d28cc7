"""bench/reading.py, the blind sheet: each distinct post read once, its rating counted for every
source that picked it, and two picks compared where they differ."""

from __future__ import annotations

import json
import subprocess
import sys

from common.corpus import format_posts
from tests.paths import REPO

REAL = ["КУПИЛ ХЛЕБ\n@\nОН ЧЕРСТВЫЙ", "ПРОСНУЛСЯ\n@\nПОНЕДЕЛЬНИК", "ЗАШЕЛ В АВТОБУС\n@\nОН ПОЛНЫЙ"]
PICK_A = ["ОБЩИЙ ПОСТ\n@\nОДИН", "ТОЛЬКО А\n@\nПЕРВЫЙ"]
PICK_B = ["ОБЩИЙ ПОСТ\n@\nОДИН", "ТОЛЬКО Б\n@\nВТОРОЙ"]


def reading(*args: str) -> str:
    done = subprocess.run([sys.executable, "bench/reading.py", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_shared_posts_are_read_once_and_count_for_each_source(tmp_path):
    real, a, b = tmp_path / "real.txt", tmp_path / "a.txt", tmp_path / "b.txt"
    for path, posts in ((real, REAL), (a, PICK_A), (b, PICK_B)):
        path.write_text(format_posts(posts), encoding="utf-8")
    sheet_dir = tmp_path / "sheet"
    reading("prepare", "--real", str(real), "-n", "2", "--file", f"a={a}", "--file", f"b={b}",
            "--out", str(sheet_dir))
    sheet = (sheet_dir / "sheet.txt").read_text(encoding="utf-8")
    assert sheet.count("### Post") == 5  # 2 real + 3 distinct picks, the shared one once
    assert sheet.count("ОБЩИЙ ПОСТ") == 1
    key = json.loads((sheet_dir / "key.json").read_text(encoding="utf-8"))
    assert sorted(s for sources in key.values() for s in sources if s.startswith("file:")) == [
        "file:a#0", "file:a#1", "file:b#0", "file:b#1"]
    # A reader rating posts by what they hold: only "ТОЛЬКО Б" is coherent.
    posts = {int(block.split("\n", 1)[0]): block for block in sheet.split("### Post ")[1:]}
    ratings = [{"id": i, "coherence": 5 if "ТОЛЬКО Б" in text else 2, "humour": 1,
                "readable": "ТОЛЬКО Б" in text} for i, text in posts.items()]
    (sheet_dir / "ratings.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in ratings), encoding="utf-8")
    table = reading("score", "--dir", str(sheet_dir), "--pair", "a,b")
    assert f"| real:{real} | 2 | 2.00 |" in table
    assert "| file:a | 2 | 2.00 |" in table
    assert "| file:b | 2 | 3.50 |" in table
    assert "1/2 (50%)" in table
    assert "a vs b on the 1 posts that differ: coherence 2.00 vs 5.00 (0 higher, 1 lower" in table
