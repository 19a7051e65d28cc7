"""/retrain end to end: real scraper and trainer processes, swap only when better, rollback."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from bot.retrain import prune
from common.corpus import split_paths
from generator.evaluate import text_bpc
from generator.loss_plot import loss_curves
from generator.modeldir import LOSS_PLOT_FILE, load_model, load_starter, read_metrics
from harness.fakes.telegram import FakeTelegram
from harness.fakes.vk import TOKEN as VK_TOKEN
from harness.fakes.vk import FakeVk, make_item
from harness.pipeline import (
    ADMIN,
    TINY_TRAIN,
    AppThread,
    ask,
    bot_config,
    made_up_bugurts,
    train_model,
    write_config,
    write_tiny_corpus,
)


def _retrain(telegram: FakeTelegram, fails_at_once: bool = False) -> tuple[list[str], str]:
    """Run /retrain; (progress texts of the edited message, the final text)."""
    start = len(telegram.calls)
    first = ask(telegram, "/retrain", ADMIN)
    assert first == "Retrain: starting…"
    if not fails_at_once:
        assert ask(telegram, "/retrain", ADMIN).startswith("A retrain is already running")
        assert "Retrain: running:" in ask(telegram, "/status", ADMIN)
    final = telegram.wait_for(
        "editMessageText",
        lambda p: p["text"].startswith(("Retrain done", "Retrain failed")),
        timeout=300,  # a minute's training, two evaluations and the starter feed, on a busy machine
        after=start,
    )
    edits = [c.params["text"] for c in telegram.calls[start:] if c.method == "editMessageText"]
    return edits, final.params["text"]


def _app(tmp_path, bot_model, telegram, vk=None, train_args=("--max-steps", "3"), **bot):
    """A bot serving `bot_model` whose /retrain trains from scratch (by default 3 steps: surely
    worse)."""
    write_tiny_corpus(tmp_path / "data" / "corpus.txt")
    raw = bot_config(tmp_path, bot_model, telegram, channel=False, retrain_minutes=1,
                     retrain_warm_start=False, **bot)
    if vk is not None:
        raw["vk"].update(token="refused-token", api_url=vk.api_url)
    config_path = str(write_config(tmp_path, raw))
    options = {"train_args": (*TINY_TRAIN, *train_args), "retrain_poll_seconds": 0.2}
    return AppThread(raw, config_path, **options)


def _finished(telegram: FakeTelegram, start: int) -> str:
    """The final text of the retrain begun after call `start`."""
    call = telegram.wait_for(
        "editMessageText", lambda p: p["text"].startswith(("Retrain done", "Retrain failed")),
        timeout=90, after=start,
    )
    return call.params["text"]


def _idle(telegram: FakeTelegram) -> str:
    """/status once no retrain is running (the job ends shortly after its last message). A
    message the job sends meanwhile (a rejected model's samples) is not the status: ask again."""
    deadline = time.monotonic() + 120  # generous: a loaded machine
    while ("Retrain: running" in (status := ask(telegram, "/status", ADMIN))
           or "Model: " not in status):
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    return status


@pytest.mark.slow  # real trainer processes
def test_retrain_twice_in_a_row_then_rollback_after_a_rejected_one(tmp_path, bot_model, telegram):
    with _app(tmp_path, bot_model, telegram):
        for _ in range(2):
            start = len(telegram.calls)
            assert ask(telegram, "/retrain", ADMIN) == "Retrain: starting…"
            assert ask(telegram, "/retrain", ADMIN).startswith("A retrain is already running")
            assert ask(telegram, "/rollback", ADMIN).startswith("A retrain is already running")
            final = _finished(telegram, start)
            assert "not better: keeping the served model" in final, final
            samples = telegram.wait_for(
                "sendMessage", lambda p: "the rejected model (not served)" in p["text"],
                after=start,
            ).params["text"]
            assert "new model" not in samples and "Three" not in samples
            telegram.wait_for("sendMessage", lambda p: p["text"].startswith(
                "Ranker not fitted: the judgements make 0 pairs"), after=start)
            edits = [c.params["text"] for c in telegram.calls[start:]
                     if c.method == "editMessageText"]
            percents = [int(p) for e in edits for p in re.findall(r"training (\d+)%", e)]
            assert percents and max(percents) <= 100
            status = _idle(telegram)
            assert f"Model: {bot_model} " in status and "not better" in status
        # Nothing was swapped in: there is nothing to roll back to, and the model stays.
        assert ask(telegram, "/rollback", ADMIN) == "There is no previous model to go back to."
        assert f"Model: {bot_model} " in ask(telegram, "/status", ADMIN)
        models = tmp_path / "data" / "models"
        assert len(list(models.iterdir())) == 1  # the latest rejected one only: pruned


@pytest.mark.slow  # a real trainer process
def test_the_retrain_picture_of_a_unigram_model_draws_training_in_bits_per_character(
        tmp_path, bot_model, telegram):
    """Units of ~2.9 characters: training logged in nats (or bits) per token would sit ~3x
    above what the trained model scores on its own training text; in bits per character, with
    no regulariser or averaging to tell the two apart, it sits beside it."""
    unigram = ("--tokenizer", "unigram", "--vocab-size", "400", "--ema-decay", "0",
               "--weight-drop", "0", "--locked-dropout", "0", "--dropout", "0")
    with _app(tmp_path, bot_model, telegram, train_args=("--max-steps", "30", *unigram)):
        start = len(telegram.calls)
        final = _retrain(telegram)[1]
        assert final.startswith("Retrain done"), final
        photo = telegram.wait_for("sendPhoto", after=start)
        _idle(telegram)
    model = Path(final.split("New model ", 1)[1].split(": ", 1)[0])
    assert photo.params["photo"] == (model / LOSS_PLOT_FILE).read_bytes()
    curves = loss_curves(model)
    records = read_metrics(model)
    assert curves["train"] == [(r["chars"], r["train_bpc"]) for r in records
                               if r["train_bpc"] is not None] and len(curves["train"]) == 3
    assert curves["validation"] == [(records[-1]["chars"], records[-1]["val_bpc"])]
    net, vocab, _ = load_model(model)
    corpus = split_paths(tmp_path / "data" / "corpus.txt")[0].read_text(encoding="utf-8")
    assert vocab.kind == "unigram" and len(corpus) / len(vocab.encode(corpus)) > 2.5
    trained = text_bpc(net, vocab, corpus)  # the model after the last step
    assert trained < curves["train"][-1][1] < 1.3 * trained  # steps 21-30: a little higher


@pytest.mark.slow  # real trainer processes
def test_retrain_during_a_failing_scrape_says_so_once(tmp_path, bot_model, telegram):
    with FakeVk() as vk, _app(tmp_path, bot_model, telegram, vk=vk):
        for _ in range(2):  # the flag is cleared: a second /retrain starts (and fails) again
            start = len(telegram.calls)
            assert ask(telegram, "/retrain", ADMIN) == "Retrain: starting…"
            final = _finished(telegram, start)
            assert final.startswith("Retrain failed at scrape: python -m scraper: error: "), final
            assert final.endswith("\nThe served model is unchanged.")
            status = _idle(telegram)
            assert f"Model: {bot_model} " in status and "Retrain: failed at scrape" in status
            texts = [str(c.params.get("text")) for c in telegram.calls[start:]]
            assert [t for t in texts if t.startswith("Retrain failed")] == [final]
        assert not (tmp_path / "data" / "models").exists()  # no training ran


@pytest.mark.slow  # real trainer processes
def test_an_unexpected_error_ends_the_retrain_with_one_message(tmp_path, bot_model, telegram):
    with _app(tmp_path, bot_model, telegram):
        # Telegram refuses the progress message itself: not a stage failure, an exception from
        # the chat. The retrain stops there and says so in a message of its own.
        telegram.fail("sendMessage", status=400, description="Bad Request: chat not found")
        start = len(telegram.calls)
        assert ask(telegram, "/retrain", ADMIN) == "Retrain: starting…"  # refused
        final = telegram.wait_for("sendMessage", lambda p: p["text"].startswith("Retrain fail"),
                                  90, start).params["text"]
        assert final.startswith("Retrain failed at starting: BadRequest"), final
        assert final.endswith("\nThe served model is unchanged.")
        status = _idle(telegram)
        assert "Retrain: failed at starting: BadRequest" in status
        assert f"Model: {bot_model} " in status
        time.sleep(0.5)  # nothing more comes: no training, no samples, no second failure
        later = [c.params.get("text") for c in telegram.calls[start:]
                 if c.method in ("sendMessage", "editMessageText", "sendPhoto")]
        assert [t for t in later if t and t.startswith(("Retrain", "Samples"))] == [
            "Retrain: starting…", final]
        assert not (tmp_path / "data" / "models").exists()


@pytest.mark.slow  # real scraper and trainer processes
def test_retrain_swaps_only_a_better_model_and_keeps_the_previous(tmp_path, telegram):
    weak = train_model(write_tiny_corpus(tmp_path / "weak" / "corpus.txt", seed=9),
                       tmp_path / "weak" / "model", steps=1)
    wall = [make_item(i + 1, 1_600_000_000 + i * 3600, text)
            for i, text in enumerate(made_up_bugurts(300, seed=1))]
    raw = bot_config(tmp_path, weak, telegram, channel=False, retrain_minutes=1)
    raw["pool"]["reply_searches"] = 2  # the starter feed's posts: quick on a loaded machine
    with FakeVk(posts=wall) as vk:
        raw["vk"].update(token=VK_TOKEN, api_url=vk.api_url, community="bugurt_thread")
        config_path = str(write_config(tmp_path, raw))
        options = {"train_args": (*TINY_TRAIN, "--max-steps", "300"), "retrain_poll_seconds": 0.2}
        with AppThread(raw, config_path, **options):
            start = len(telegram.calls)
            edits, final = _retrain(telegram)
            assert "Retrain: scraping new posts" in edits  # the scrape stage ran (VK token set)
            assert any(e.startswith("Retrain: training") and "%" in e for e in edits)
            assert "Retrain: evaluating both models" in edits
            assert "Retrain: writing the new model's first ready posts" in edits
            assert "better: now serving it" in final, final
            photo = telegram.wait_for("sendPhoto", after=start)
            assert photo.params["photo"].startswith(b"\x89PNG")
            samples = telegram.wait_for(
                "sendMessage", lambda p: "from the new model (now served):" in p["text"],
                after=start,
            )
            assert "#neurobugurt" in samples.params["text"]
            status = _idle(telegram)
            assert str(weak) not in status and "models/" in status
            assert "better: now serving it" in status  # the last retrain's result
            new_model = status.split("Model: ", 1)[1].split(" (", 1)[0]
            # fine-tuned from the served model's weights, not trained from scratch
            assert load_model(new_model)[2]["init_from"] == str(weak)
            # its starter feed was written before the swap: its pool had posts at once
            assert len(load_starter(new_model)) == 8
        assert any(method == "execute" or method == "wall.get" for method, _ in vk.calls)

    # A restart keeps serving the swapped-in model; a worse one is trained but not served.
    raw["vk"]["token"] = ""  # no scrape: the corpus from the first run is used
    raw["bot"]["retrain_warm_start"] = False  # 3 steps from scratch: surely worse
    write_config(tmp_path, raw)
    options = {"train_args": (*TINY_TRAIN, "--max-steps", "3"), "retrain_poll_seconds": 0.2}
    with AppThread(raw, config_path, **options):
        assert f"Model: {new_model} " in ask(telegram, "/status", ADMIN)
        edits, final = _retrain(telegram)
        assert "Retrain: scraping new posts" not in edits
        assert "not better: keeping the served model" in final, final
        assert f"Model: {new_model} " in _idle(telegram)  # samples come after "done"

        assert ask(telegram, "/rollback", ADMIN) == f"Serving the previous model again: {weak}."
        assert f"Model: {weak} " in ask(telegram, "/status", ADMIN)

        # A failing stage leaves the served model alone and says what failed.
        (tmp_path / "data" / "corpus.val.txt").unlink()
        edits, final = _retrain(telegram, fails_at_once=True)
        assert final.startswith(
            "Retrain failed at corpus check: the corpus has no validation split"
        ) and "python -m scraper --config" in final
        assert final.endswith("The served model is unchanged.")
        assert f"Model: {weak} " in ask(telegram, "/status", ADMIN)


def test_prune_keeps_the_given_model_dirs(tmp_path):
    models = tmp_path / "models"
    names = ["20260101-000000", "20260102-000000", "20260103-000000", "20260104-000000", "pinned"]
    for name in names:
        (models / name).mkdir(parents=True)
        (models / name / "model.pt").write_bytes(b"weights")
    keep = {str(models / "20260102-000000"), str(models / "20260104-000000"), "",
            str(models / "pinned")}
    removed = prune(models, keep)
    assert [p.name for p in removed] == ["20260101-000000", "20260103-000000"]
    left = sorted(p.name for p in models.iterdir())
    assert left == ["20260102-000000", "20260104-000000", "pinned"]
