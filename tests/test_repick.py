"""bench/repick.py: searched posts picked again by another model's reading, and a line's gain
from its own context."""

from __future__ import annotations

import json
import subprocess
import sys

from bench import repick
from common.corpus import LINE_BREAK, parse_posts
from generator.sample import Generator
from harness.paths import REPO
from harness.pipeline import made_up_bugurts

TOLERANCE = 0.02  # bits a character


def write_searches(path, searches: list[dict]) -> None:
    path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in searches),
                    encoding="utf-8")


def test_a_second_model_picks_what_it_reads_best(tmp_path, bot_model):
    # The tiny model learned made-up words of Cyrillic syllables (harness.pipeline); Latin letters
    # it never read. The sampler's likelihood (as given) prefers the Latin post by a little.
    known = made_up_bugurts(1, seed=3)[0]
    foreign = "QXZ WJV QQX\n@\nZJW VQX\n@\nXXQ JJZ"
    searches = tmp_path / "search-searches.jsonl"
    write_searches(searches, [{"post": 0, "text": foreign, "likelihood": -1.0},
                              {"post": 0, "text": known, "likelihood": -1.1}])
    out = tmp_path / "picks"
    done = subprocess.run([sys.executable, "bench/repick.py", "--model", str(bot_model),
                           "--searches", str(searches), "--pick-of", "2",
                           "--second-model", str(bot_model), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    picked = {rule: parse_posts((out / f"{rule}-pick2.txt").read_text("utf-8"))
              for rule in ("likelihood", "second", "both")}
    assert picked["likelihood"] == [foreign]
    assert picked["second"] == [known]
    assert picked["both"] == [known]  # a tenth of a nat a character is outweighed


def test_a_line_after_the_same_opening_gains_nothing(bot_model):
    """Every search opens alike, so reading a last line after another post's opening reads it
    in its own context: the gain is zero, which holds only if the line is read with what ends
    it in its post."""
    gen = Generator.load(bot_model)
    posts = made_up_bugurts(4, seed=5)
    opening = posts[0].split(LINE_BREAK)[0]
    searches = [{"post": i // 2, "text": f"{opening}\n@\n{p.split(LINE_BREAK)[-1]}"}
                for i, p in enumerate(posts)]
    for s, (bits, chars) in zip(searches, repick.line_bits(gen, [s["text"] for s in searches]),
                                strict=True):
        s["bits"], s["chars"] = bits, chars
    gains = repick.context_gain(gen, searches, k=3, seed=0)
    assert len(gains) == 4
    # within the sampling cell's rounding: its int8 products scale by each batch's largest
    # value, so one text read beside others differs a little; a line read with the wrong ending
    # (the post's end for a line break) differs by tenths of a bit a character
    assert all(abs(g) < TOLERANCE for g in gains), gains
    # a middle line, followed by a line break in its post: the stand-in line keeps it so
    middle = {"post": 9, "text": f"{opening}\n@\nБА ТЯ\n@\nКО ГДА"}
    middle["bits"], middle["chars"] = repick.line_bits(gen, [middle["text"]])[0]
    gain = repick.context_gain(gen, [middle, *searches], k=2, seed=0)[0]
    # the middle line gains nothing; the last line gains what the middle line told of it:
    # its bits after the opening alone, less its bits after the opening and the middle line
    alone = repick.line_bits(gen, [f"{opening}\n@\nКО ГДА"])[0][0][1]
    expected = (alone - middle["bits"][2]) / sum(middle["chars"][1:])
    assert abs(gain - expected) < TOLERANCE, (gain, expected)
