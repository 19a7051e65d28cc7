"""tools/editor_yield.py: a slot's candidates as review mode orders them, the editor's pages,
and what was published against the automatic pick."""

from __future__ import annotations

import json
import subprocess
import sys

from bot.features import features
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
    for s in made:  # best first: by the likelihood each candidate's search gave it
        assert len(s["likelihoods"]) == len(s["candidates"])
        assert s["likelihoods"] == sorted(s["likelihoods"], reverse=True)
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
    # the decisions as review mode stores them: each pick over every candidate shown
    out = tmp_path / "judgements.jsonl"
    _tool("judgements", "--slots", str(slots), "--choices", str(choices), "--sheet", "T",
          "--out", str(out))
    judged = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert len(judged) == 10 + 10 + 5  # pages read × 5
    assert [j["text"] for j in judged if j["kind"] == "pick"] == [posts[0][6], posts[2][0]]
    assert {j["source"] for j in judged} == {"editor:T"}
    assert len({j["review_id"] for j in judged}) == 3
    assert all(j["features"]["likelihood"] is None for j in judged)  # none kept: never paired
    # odd slots from one file, even from the other
    other = tmp_path / "other.jsonl"
    other.write_text(slots.read_text("utf-8").replace("ПОСТ", "ДРУГОЙ"), "utf-8")
    mixed = tmp_path / "mixed.jsonl"
    _tool("interleave", "--odd", str(slots), "--even", str(other), "--out", str(mixed))
    firsts = [json.loads(line)["candidates"][0] for line in mixed.read_text("utf-8").splitlines()]
    assert [f.split()[0] for f in firsts] == ["ПОСТ", "ДРУГОЙ", "ПОСТ"]


def _post(lines: int, tag: int) -> str:
    return "\n@\n".join(f"СТРОКА {tag} НОМЕР {k}" for k in range(lines)) + "\n#neurobugurt"


def test_order_puts_candidates_in_a_fitted_rankers_order_and_refuses_one_no_better(tmp_path):
    """An editor who always picked the post of most lines, likelihood saying the opposite: the
    ranker fitted on those picks orders a slot longest first; fitted on picks that follow
    likelihood, it is not used and `order` says so."""
    def judgements_file(name: str, follow_lines: bool) -> str:
        rows = []
        for review in range(1, 41):
            sizes = [(review + k) % 5 + 2 for k in range(5)]
            best = max(range(5), key=lambda k: sizes[k] if follow_lines else -sizes[k])
            for k, size in enumerate(sizes):
                text = _post(size, review * 10 + k)
                rows.append({"kind": "pick" if k == best else "pass", "source": "editor:1",
                             "value": float(k == best), "text": text, "review_id": review,
                             "model_dir": "generator/bundled",
                             "features": features(text, -1.0 - 0.1 * size, 0.45)})
        path = tmp_path / name
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
        return str(path)

    candidates = [_post(n, 900 + n) for n in (2, 6, 3, 5)]
    slots = tmp_path / "slots.jsonl"
    slots.write_text(json.dumps({"slot": 1, "temperature": 0.45, "candidates": candidates,
                                 "likelihoods": [-1.0 - 0.1 * n for n in (2, 6, 3, 5)]},
                                ensure_ascii=False) + "\n", "utf-8")
    ranked = tmp_path / "ranked.jsonl"
    said = _tool("order", "--slots", str(slots), "--judgements",
                 judgements_file("lines.jsonl", True), "--out", str(ranked))
    assert "held-out pairs" in said
    slot = json.loads(ranked.read_text("utf-8"))
    assert slot["candidates"] == [candidates[i] for i in (1, 3, 2, 0)]  # 6, 5, 3, 2 lines
    assert slot["likelihoods"] == [-1.6, -1.5, -1.3, -1.2]
    refused = subprocess.run([sys.executable, "tools/editor_yield.py", "order", "--slots",
                              str(slots), "--judgements", judgements_file("ll.jsonl", False),
                              "--out", str(tmp_path / "no.jsonl")],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 1 and "order by likelihood" in refused.stderr
