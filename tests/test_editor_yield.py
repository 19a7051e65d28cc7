"""tools/editor_yield.py: a slot's candidates as review mode orders them, the editor's pages,
and what was published against the automatic pick."""

from __future__ import annotations

import json
import subprocess
import sys

from harness.paths import REPO


def _tool(*args: str) -> str:
    done = subprocess.run([sys.executable, "tools/editor_yield.py", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_slots_come_best_first_and_differ_from_slot_to_slot(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("pool:\n  channel_searches: 4\nbot:\n  temperatures: [0.45]\n")
    slots = tmp_path / "slots.jsonl"
    _tool("slots", "--out", str(slots), "-n", "2", "--seed", "3", "--config", str(config))
    made = [json.loads(line) for line in slots.read_text("utf-8").splitlines()]
    assert [s["slot"] for s in made] == [1, 2] and all(s["candidates"] for s in made)
    assert all(c.endswith("\n#neurobugurt") for s in made for c in s["candidates"])
    # the second slot remembers the first's pick: none of its lines comes back
    picked = set(made[0]["candidates"][0].split("\n")) - {"@", "#neurobugurt"}
    assert not picked & {line for c in made[1]["candidates"] for line in c.split("\n")}


def test_pages_choices_and_report(tmp_path):
    slots = tmp_path / "slots.jsonl"
    posts = [[f"ПОСТ {s}-{i}\n@\nКОНЕЦ\n#neurobugurt" for i in range(1, 13)] for s in (1, 2, 3)]
    slots.write_text("".join(json.dumps({"slot": s, "temperature": 0.45, "candidates": c},
                                        ensure_ascii=False) + "\n"
                             for s, c in enumerate(posts, 1)), "utf-8")
    _tool("pages", "--slots", str(slots), "--out", str(tmp_path / "editor"), "--pages", "2")
    sheet = (tmp_path / "editor" / "slots.txt").read_text("utf-8")
    assert sheet.count("=== SLOT") == 6 and "--- 10 ---\nПОСТ 1-10" in sheet
    assert "ПОСТ 1-11" not in sheet  # two pages of five: the rest is never shown
    choices = tmp_path / "choices.jsonl"
    choices.write_text('{"slot": 1, "pick": 7, "pages_read": 2}\n'
                       '{"slot": 2, "pick": null, "pages_read": 2}\n'
                       '{"slot": 3, "pick": 1, "pages_read": 1}\n')
    _tool("files", "--slots", str(slots), "--choices", str(choices), "--out", str(tmp_path))
    published = (tmp_path / "editor.txt").read_text("utf-8")
    assert published == posts[0][6] + "\n\n" + posts[2][0] + "\n\n"
    assert (tmp_path / "auto.txt").read_text("utf-8").count("#neurobugurt") == 3
    report = _tool("report", "--slots", str(slots), "--choices", str(choices))
    assert "slots filled: 2 of 3 (67%)" in report
    assert "posts read per slot: 8.3" in report and "per published post: 12.5" in report
