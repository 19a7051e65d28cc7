"""kill -9 of each process at random points (several seeds): during the scrape, during
training, and between "stored as pending" and "sent" in the bot's outbox.

After every crash and restart: the SQLite file passes `PRAGMA integrity_check`, no post is stored
or published twice, none is lost, the training checkpoint loads and training resumes exactly.
Misbehaving servers are in test_faults_servers.py.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest
import torch

from common.corpus import write_corpus
from generator import modeldir
from generator.sample import Generator
from harness.fakes.telegram import CHANNEL_ID
from harness.fakes.vk import FakeVk, make_item
from harness.pipeline import (
    ADMIN,
    Child,
    admin_post,
    integrity,
    made_up_bugurts,
    one_clear_line,
    process_config,
    query,
    run,
    secrets,
    start_bot,
    stored_posts,
    wait_until,
    wall_items,
)

pytestmark = pytest.mark.slow  # every test kills and restarts real processes

SEEDS = [1, 2, 3]
TAG = "\n#neurobugurt"
# Training small enough for many runs: the step budget makes runs comparable across seeds.
TINY_STEPS = ("--layers", "1", "--hidden", "24", "--embed", "8", "--batch-size", "8",
              "--seq-len", "32", "--eval-every", "20", "--log-every", "5", "--threads", "1",
              "--tokenizer", "char")
STEPS = 100


# ----- kill -9 during the scrape ----------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_scrape_killed_at_a_random_point_resumes_without_loss_or_duplicates(tmp_path, seed):
    rng = random.Random(seed)
    items = wall_items(1500)
    with FakeVk(items[:-100]) as vk:
        config = process_config(tmp_path / "killed", vk)
        env = secrets()
        scraper = Child(tmp_path / "killed", "scraper", "--config", str(config), env=env)
        time.sleep(rng.uniform(0.3, 2.5))  # start-up, resolve, first page, execute, corpus
        scraper.kill()
        db = tmp_path / "killed" / "data" / "neurobugurt.sqlite3"
        assert not db.exists() or integrity(db) == "ok"
        for item in items[-100:][: rng.randint(1, 100)]:  # the wall grew while it was down
            vk.posts[item["id"]] = item
        resumed = run("scraper", "--config", str(config), env=env, timeout=180)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        # The same wall scraped in one go, for comparison.
        reference = process_config(tmp_path / "reference", vk)
        assert run("scraper", "--config", str(reference), env=env, timeout=180).returncode == 0
        wall_ids = sorted(vk.posts)
    assert integrity(db) == "ok"
    assert [row[1] for row in stored_posts(db)] == wall_ids  # each post once, none lost
    assert stored_posts(db) == stored_posts(tmp_path / "reference" / "data" / db.name)
    assert query(db, "SELECT run_newest_id, newest_post_id FROM scrape_state") == [
        (None, max(wall_ids))]
    corpus = (tmp_path / "killed" / "data" / "corpus.txt").read_bytes()
    assert corpus == (tmp_path / "reference" / "data" / "corpus.txt").read_bytes()


def test_scrape_killed_mid_run_resumes_after_new_posts_and_deletions_losing_none(tmp_path):
    posts = [make_item(i, 1_600_000_000 + 60 * i, f"ПОСТ {i}\n@\nСТРОКА {i}")
             for i in range(1, 2701)]
    with FakeVk(posts) as vk:
        config = process_config(tmp_path, vk)
        db = tmp_path / "data" / "neurobugurt.sqlite3"
        gate = vk.hold_after(calls=2)  # wall.get(0) and one execute (2,600 posts), then a hang
        scraper = Child(tmp_path, "scraper", "--config", str(config), env=secrets())
        wait_until(lambda: len(stored_posts(db)) >= 2600, 60, "the first 2,600 posts")
        scraper.kill()  # SIGKILL: no cleanup of any kind
        gate.set()
        assert [row[1] for row in stored_posts(db)] == list(range(101, 2701))  # newest first
        for i in range(5):  # the wall grew while the scraper was down...
            vk.add_post(f"НОВЫЙ {i}\n@\nПОСТ {i}")
        for post_id in range(2000, 2030):  # ...and an admin cleaned up 30 posts meanwhile
            del vk.posts[post_id]
        vk.calls.clear()
        resumed = run("scraper", "--config", str(config), env=secrets(), timeout=180)
        offsets = vk.offsets()
        wall_ids = sorted(vk.posts)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.strip().startswith("fetched 105 new posts; corpus: 2705 bugurts")
    assert [row[1] for row in stored_posts(db)] == list(range(1, 2706))
    assert sorted(set(wall_ids) - {row[1] for row in stored_posts(db)}) == []
    # Caught up on the 5 new posts at offset 0; the probe at 2600 + 5 less the overlap finds a post
    # older than the oldest stored (30 deleted moved it up), so the restart steps back a page.
    assert offsets == [0, 2585, 2485, 2485, 2585]


# ----- kill -9 during training ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    write_corpus(path, made_up_bugurts(200, seed=7))
    return path


def train(corpus, out, *extra: str) -> list[str]:
    return ["generator", "train", "--corpus", str(corpus), "--out", str(out),
            "--max-steps", str(STEPS), "--no-bf16", *TINY_STEPS, *extra]


def progress(out) -> list[tuple]:
    """metrics.jsonl without its clock readings: (step, chars, train_bpc, val_bpc) a line."""
    rows = [json.loads(line) for line in (out / modeldir.METRICS_FILE).read_text().splitlines()]
    return [(r["step"], r["chars"], r["train_bpc"], r["val_bpc"]) for r in rows]


def metrics_lines(out) -> int:
    path = out / modeldir.METRICS_FILE
    return len(path.read_text().splitlines()) if path.exists() else 0


# Every AWD-LSTM switch on: their masks come from the saved RNG state, the average is saved.
AWD = ("--weight-drop", "0.3", "--locked-dropout", "0.2", "--embed-dropout", "0.1",
       "--tie-weights", "--ema-decay", "0.99")


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory, tiny_corpus):
    """flags → a run of them straight through (each trained once, when first asked for)."""
    runs: dict[tuple[str, ...], Path] = {}

    def reference(flags: tuple[str, ...]) -> Path:
        if flags not in runs:
            out = tmp_path_factory.mktemp("train") / "reference"
            done = run(*train(tiny_corpus, out, *flags), env=secrets(vk=False), timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]
            runs[flags] = out
        return runs[flags]

    return reference


@pytest.fixture(scope="module")
def reference_run(reference_runs):
    return reference_runs(())


@pytest.mark.parametrize(("seed", "flags"), [(SEEDS[0], ()), (SEEDS[1], ()), (SEEDS[2], AWD)],
                         ids=["plain-1", "plain-2", "awd+ema-3"])
def test_training_killed_at_a_random_step_resumes_to_the_same_weights(
    tmp_path, seed, flags, tiny_corpus, reference_runs
):
    reference_run = reference_runs(flags)
    rng = random.Random(seed)
    out = tmp_path / "model"
    env = secrets(vk=False)
    trainer = Child(tmp_path, *train(tiny_corpus, out, *flags), env=env)
    # A random point after the first checkpoint (step 20): between 5-step progress lines.
    lines = rng.randint(5, STEPS // 5 - 6)
    wait_until(lambda: metrics_lines(out) >= lines or not trainer.alive(), 120, "training")
    time.sleep(rng.uniform(0, 0.05))
    trainer.kill()
    assert trainer.proc.returncode == -9, "the run ended before the kill: make it longer"
    killed_at = torch.load(out / modeldir.CHECKPOINT_FILE, weights_only=True)["step"]
    assert 20 <= killed_at < STEPS

    resumed = run(*train(tiny_corpus, out, *flags, "--resume"), env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # batch 8 x seq 32 characters a step, counted over the whole run (the killed part included)
    summary = resumed.stdout.strip().splitlines()[-1]
    assert summary.startswith(f"train_summary: chars={STEPS * 8 * 32} "), summary
    again = run(*train(tiny_corpus, out), env=env, timeout=120)  # no --resume: it refuses
    assert again.returncode == 2 and "already holds a model" in one_clear_line(again.stderr)
    regrouped = run(*train(tiny_corpus, out, "--resume", "--layer-lr-decay", "0.5"), env=env,
                    timeout=120)  # the optimizer's groups are the run's: refused, not a trace
    assert regrouped.returncode == 2
    assert "cannot change on --resume" in one_clear_line(regrouped.stderr)
    ours = modeldir.load_checkpoint(out)
    theirs = modeldir.load_checkpoint(reference_run)
    assert ours["step"] == theirs["step"] == STEPS
    assert (ours["ema"] is None) == (not flags)
    for part in ("model", "ema") if flags else ("model",):
        for name, weight in theirs[part].items():
            assert torch.equal(ours[part][name], weight), f"{part} {name} differs after resume"
    best = modeldir.read_model(reference_run)["model"]  # the best (EMA) weights, as served
    for name, weight in modeldir.read_model(out)["model"].items():
        assert torch.equal(best[name], weight), f"model.pt {name} differs after the resume"
    ours, reference = progress(out), progress(reference_run)
    # A step's progress line is written before its checkpoint: none lost, repeated or changed.
    assert ours == reference
    assert Generator.load(out).info["params"] > 0  # the served form loads too


def kill_before_first_checkpoint(tmp_path, corpus, late: tuple[str, ...]):
    out = tmp_path / "model"
    trainer = Child(tmp_path, *train(corpus, out, *late), env=secrets(vk=False))
    wait_until(lambda: metrics_lines(out) >= 2 or not trainer.alive(), 120, "progress lines")
    trainer.kill()
    assert not (out / modeldir.CHECKPOINT_FILE).exists(), "killed too late: make it longer"
    return out


LATE = ("--eval-every", str(STEPS))  # the first checkpoint comes with the last step


def test_training_killed_before_its_first_checkpoint_says_what_to_do(tmp_path, tiny_corpus):
    out = kill_before_first_checkpoint(tmp_path, tiny_corpus, LATE)
    resumed = run(*train(tiny_corpus, out, *LATE, "--resume"), env=secrets(vk=False),
                  timeout=120)
    assert resumed.returncode == 2
    assert "checkpoint.pt not found" in one_clear_line(resumed.stderr)


def test_training_started_over_after_an_early_kill_keeps_clean_metrics(tmp_path, tiny_corpus):
    out = kill_before_first_checkpoint(tmp_path, tiny_corpus, LATE)
    fresh = run(*train(tiny_corpus, out, *LATE), env=secrets(vk=False), timeout=300)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    steps = [step for step, *_ in progress(out)]
    assert steps == sorted(set(steps)), "metrics.jsonl holds lines of the killed run"


def test_truncated_checkpoint_is_one_clear_line(tmp_path, tiny_corpus, reference_run):
    out = tmp_path / "model"
    shutil.copytree(reference_run, out)
    data = (out / modeldir.CHECKPOINT_FILE).read_bytes()
    (out / modeldir.CHECKPOINT_FILE).write_bytes(data[: len(data) // 2])  # a disk-full write
    resumed = run(*train(tiny_corpus, out, "--resume"), env=secrets(vk=False), timeout=120)
    assert resumed.returncode == 2
    assert "truncated or not a neurobugurt model file" in one_clear_line(resumed.stderr)


# ----- kill -9 of the bot between "stored as pending" and "sent" ------------------------------


@pytest.mark.parametrize(("seed", "lost"), [(1, "telegram"), (2, "vk"), (3, "vk")])
def test_bot_killed_between_pending_and_sent_publishes_each_post_once(
    tmp_path, servers, bot_model, seed, lost
):
    rng = random.Random(seed)
    telegram, vk = servers
    config = process_config(tmp_path, vk, telegram, model_dir=bot_model)
    db = tmp_path / "data" / "neurobugurt.sqlite3"
    bot = start_bot(tmp_path / "first", config, telegram)
    for _ in range(rng.randint(0, 1)):  # posts already sent before the crash
        assert "telegram: sent" in admin_post(telegram)
    posts = len(query(db, "SELECT id FROM outbox")) + 1
    if lost == "telegram":  # the request never gets an answer
        telegram.fail("sendMessage", hang=True)
        telegram.send_command("/post", user_id=ADMIN)
        wait_until(lambda: len(telegram.calls_of("sendMessage")) > 2 * (posts - 1), 90, "post")
    else:  # VK creates the post, but its answer is lost
        vk.fail("wall.post", delay=120)
        telegram.send_command("/post", user_id=ADMIN)
        wait_until(lambda: len(vk.published) == posts, 90, "wall.post")
    time.sleep(rng.uniform(0, 0.3))
    bot.kill()
    pending = query(db, "SELECT target FROM deliveries WHERE status = 'pending' ORDER BY target")
    assert pending == ([("telegram",), ("vk",)] if lost == "telegram" else [("vk",)])
    # Delivered before the crash: the earlier posts, and the lost post where its answer was lost.
    assert len(telegram.messages_in(CHANNEL_ID)) == posts - (lost == "telegram")
    assert len(vk.published) == posts - (lost == "telegram")

    bot = start_bot(tmp_path / "second", config, telegram)
    wait_until(lambda: query(db, "SELECT COUNT(*) FROM deliveries WHERE status = 'sent'")[0][0]
               == 2 * posts, 90, "the pending deliveries")
    time.sleep(1)  # a second delivery would arrive by now
    assert bot.stop() == 0, bot.stderr[-3000:]
    assert telegram.token not in bot.stderr and "Traceback" not in bot.stderr
    texts = [text for text, in query(db, "SELECT text FROM outbox ORDER BY id")]
    assert len(texts) == posts and all(t.endswith(TAG) for t in texts)
    assert [m["text"] for m in telegram.messages_in(CHANNEL_ID)] == texts
    assert sorted(p["message"] for p in vk.published) == sorted(texts)
    guids = [guid for guid, in query(db, "SELECT guid FROM outbox ORDER BY id")]
    assert sorted(p["guid"] for p in vk.published) == sorted(guids)
    assert integrity(db) == "ok"
