"""bench/plan_corpus.py (one key word a line, the rarest known stem, before the post) and
bench/planned.py (a plan drawn, then searched posts after it)."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from bench import plan_corpus
from common.corpus import parse_posts
from harness.paths import REPO


def test_each_line_gives_its_rarest_known_content_word():
    counts = Counter({"МАРШР": 5, "БАБКА": 40, "ЗАХОД": 300, "ОПЕЧА": 1, "КОНДУ": 3})
    post = "ЗАХОДИШЬ В МАРШРУТКУ\n@\nТАМ БАБКА\n@\nЧТО ТЕБЕ ОПЕЧАТКАА\n@\nКОНДУКТОР ТЕБЯ ВИДИТ"
    # line 1: МАРШРУТКУ (5) is rarer than ЗАХОДИШЬ (300); line 3: the misspelt word is seen
    # once (under MIN_COUNT) and ЧТО/ТЕБЕ are function words, so the line gives none
    assert plan_corpus.plan(post, counts) == ["МАРШРУТКУ", "БАБКА", "КОНДУКТОР"]
    assert plan_corpus.planned(post, counts) == "ПЛАН: МАРШРУТКУ БАБКА КОНДУКТОР\n" + post


def test_function_words_are_never_key_words():
    assert plan_corpus.content_words("ТЕБЯ ТОЛЬКО ПОТОМ ЭТОТ СЫЧ") == []


def test_planned_posts_come_without_their_plan(tmp_path, bot_model):
    out = tmp_path / "planned"
    done = subprocess.run([sys.executable, "bench/planned.py", "--model", str(bot_model), "-n", "2",
                           "--pick-of", "2", "--plan-per", "search", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    picks = parse_posts((out / "planned-pick2.txt").read_text("utf-8"))
    shown = parse_posts((out / "planned-plans.txt").read_text("utf-8"))
    assert picks and len(picks) == len(shown)
    for post, with_plan in zip(picks, shown, strict=True):
        assert with_plan.startswith(plan_corpus.PLAN) and with_plan.endswith("\n" + post)
        assert plan_corpus.PLAN not in post and "\n@\n" in post
    assert "plan words used" in done.stdout
