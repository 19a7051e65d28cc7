"""tools/reading.py, the blind sheet: each distinct post read once, its rating counted for every
source that picked it, and two picks compared where they differ."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from common.corpus import format_posts
from harness.paths import REPO
from harness.pipeline import made_up_bugurts

REAL = ["КУПИЛ ХЛЕБ\n@\nОН ЧЕРСТВЫЙ", "ПРОСНУЛСЯ\n@\nПОНЕДЕЛЬНИК", "ЗАШЕЛ В АВТОБУС\n@\nОН ПОЛНЫЙ"]
PICK_A = ["ОБЩИЙ ПОСТ\n@\nОДИН", "ТОЛЬКО А\n@\nПЕРВЫЙ"]
PICK_B = ["ОБЩИЙ ПОСТ\n@\nОДИН", "ТОЛЬКО Б\n@\nВТОРОЙ"]


def reading(*args: str) -> str:
    done = subprocess.run([sys.executable, "tools/reading.py", *args], cwd=REPO,
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


def test_a_reading_becomes_judgements_the_bot_imports_and_the_ranker_is_measured_on(
        tmp_path, bot_model):
    posts = made_up_bugurts(90, seed=5)
    real, written, markov = (tmp_path / f"{name}.txt" for name in ("real", "model", "markov"))
    for path, part in ((real, posts[:30]), (written, posts[30:60]), (markov, posts[60:])):
        path.write_text(format_posts(part), encoding="utf-8")
    sheet_dir = tmp_path / "W"
    reading("prepare", "--real", str(real), "-n", "30", "--file", f"feed={written}",
            "--file", f"markov={markov}", "--out", str(sheet_dir))
    shown = {int(block.split("\n", 1)[0]): block.split("\n", 1)[1].strip() for block in
             (sheet_dir / "sheet.txt").read_text(encoding="utf-8").split("### Post ")[1:]}
    files = []
    for reader, shift in (("r1", 0), ("r2", 1)):  # both grade by the number of lines
        path = sheet_dir / f"ratings-{reader}.jsonl"
        path.write_text("".join(json.dumps(
            {"id": i, "coherence": min(5, text.count("\n@\n") + shift), "humour": 1,
             "readable": True}) + "\n" for i, text in shown.items()), encoding="utf-8")
        files += ["--ratings", f"{reader}={path}"]
    out = sheet_dir / "judgements.jsonl"
    assert reading("judgements", "--dir", str(sheet_dir), "--sheet", "W", *files, "--model",
                   str(bot_model), "--out", str(out)).strip() == (
        f"180 judgements of 90 posts in {out}")
    judged = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {j["source"] for j in judged} == {"reading:W:r1", "reading:W:r2"}
    assert all(j["kind"] == "reading" and j["features"]["likelihood"] < 0 for j in judged)
    # the model's posts name it; the real posts and the Markov chain's name none (not paired)
    by_text = {j["text"]: j["model_dir"] for j in judged}
    assert {by_text[p] for p in posts[30:60]} == {str(bot_model)}
    assert {by_text[p] for p in posts[:30] + posts[60:]} == {None}

    done = subprocess.run([sys.executable, "bench/ranker_offline.py", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in
            done.stdout.splitlines() if line.startswith("| ranker") or
            line.startswith("| likelihood")}
    accuracy = {name: float(row[0].strip().rstrip("%")) for name, row in rows.items()}
    assert accuracy["ranker"] > 90 > accuracy["likelihood"]  # the readers follow the lines
    assert "posts)" in rows["ranker"][1]
    assert done.stdout.strip().endswith("the bot would rank by the ranker")


def test_spearman_compares_orders_not_values():
    from bench.ranker_offline import spearman

    ranks = [1.0, 2.0, 3.0, 4.0]
    assert spearman(ranks, [10.0, 200.0, 3000.0, 40000.0]) == pytest.approx(1.0)
    assert spearman(ranks, [4.0, 3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert spearman(ranks, [2.0, 1.0, 4.0, 3.0]) == pytest.approx(0.6)  # 1 - 6·4 / (4·15)
