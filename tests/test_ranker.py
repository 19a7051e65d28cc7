"""The ranker (generator/ranker.py): it separates two distributions, round-trips through the model
directory, is optional, tips ties of likelihood in the pool's channel ranking, and `generator
train` writes it — at tiny sizes."""

from __future__ import annotations

import random
import shutil

import pytest
import torch

from bot.pool import PoolStore
from common import db
from generator import modeldir, ranker
from generator.sample import Candidate, Generator
from tests.pipeline import TINY_TRAIN, train_model, write_tiny_corpus
from tests.test_generator import run_generator

torch.set_num_threads(1)
CALM = "КОТ ДОМ ЧАЙ СОК ЛЕС МЕЛ".split()
WILD = "ЫЫЖ ЪЩФ ЁПРСТ ГХЦЧ ЭЮЯ ЖЖУХ".split()


def _posts(words: list[str], count: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return ["\n@\n".join(" ".join(rnd.choices(words, k=rnd.randint(2, 5)))
                         for _ in range(rnd.randint(2, 4))) for _ in range(count)]


@pytest.fixture(scope="module")
def trained() -> ranker.Ranker:
    return ranker.fit(_posts(CALM, 100, 0), _posts(WILD, 100, 1), seed=0)


def test_separates_two_obviously_different_distributions(trained):
    assert trained.info["held_out_accuracy"] > 0.9 and trained.info["held_out"] == 40
    fresh = trained.score(_posts(CALM, 20, 7) + _posts(WILD, 20, 8))  # never seen in training
    assert sum(s > 0 for s in fresh[:20]) >= 18 and sum(s < 0 for s in fresh[20:]) >= 18


def test_round_trip_through_the_model_directory(tmp_path, trained):
    assert modeldir.load_ranker(tmp_path) is None  # optional: no file, no ranker
    modeldir.save_ranker(tmp_path, trained)
    loaded = modeldir.load_ranker(tmp_path)
    texts = _posts(CALM, 3, 9) + _posts(WILD, 3, 9)
    # fp16 bucket weights in the file: scores agree to about 1e-3
    assert loaded.score(texts) == pytest.approx(trained.score(texts), abs=1e-2)
    assert loaded.info == trained.info
    (tmp_path / modeldir.RANKER_FILE).write_bytes(b"cut short")
    with pytest.raises(modeldir.ModelFormatError):
        modeldir.load_ranker(tmp_path)


def test_combined_score_follows_the_ranker_when_likelihoods_tie():
    tied = ranker.combine([-1.0, -1.0, -2.0], [0.5, 3.0, 9.0], 1.0)
    assert tied[1] > tied[0]
    # without a ranker, or at weight 0, the likelihood's order
    for realness, weight in ((None, 1.0), ([0.5, 3.0, 9.0], 0.0)):
        scores = ranker.combine([-1.0, -1.5, -2.0], realness, weight)
        assert scores == sorted(scores, reverse=True)


def test_pool_channel_pick_combines_likelihood_and_ranker(tmp_path):
    store = PoolStore(db.connect(tmp_path / "pool.sqlite3"))
    tied = [Candidate("ПЕРВЫЙ", -1.0, -2.0), Candidate("ВТОРОЙ", -1.0, 4.0),
            Candidate("ТРЕТИЙ", -3.0, 0.0)]
    store.add("m", "channel", 0.85, tied)
    assert store.best_channel("m", 1.0) == ("ВТОРОЙ", 0.85)
    assert store.gathered("m") == (0, None)  # the rest are dropped
    # no ranker (realness NULL): the likelihood alone, the first gathered of a tie
    store.add("m", "channel", 0.7, [Candidate(c.text, c.likelihood) for c in tied])
    assert store.best_channel("m", 1.0) == ("ПЕРВЫЙ", 0.7)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny model trained without a ranker (`train_model` trains none)."""
    root = tmp_path_factory.mktemp("ranker-model")
    return train_model(write_tiny_corpus(root / "corpus.txt"), root / "model", steps=150)


def test_model_directory_without_ranker_samples_and_ranks_by_likelihood(tiny_model):
    assert not (tiny_model / modeldir.RANKER_FILE).exists()
    gen = Generator.load(tiny_model)
    assert gen.ranker is None
    ranked = gen.ranked(n=3, seed=0, candidates=16)
    assert ranked and all(c.realness is None for c in ranked)
    likelihoods = [c.likelihood for c in ranked]
    assert likelihoods == sorted(likelihoods, reverse=True)


def test_too_few_posts_of_the_gate_forms_give_no_ranker(tiny_model):
    """A corpus of other texts (one-line posts, no @): nothing to learn from, no ranker."""
    assert ranker.train(Generator.load(tiny_model), ["ОДНА СТРОКА"] * 50) is None


def test_generator_with_ranker_ranks_by_the_combination(tmp_path, tiny_model, trained):
    shutil.copytree(tiny_model, tmp_path / "m")
    modeldir.save_ranker(tmp_path / "m", trained)
    gen = Generator.load(tmp_path / "m", ranker_weight=5.0)
    ranked = gen.ranked(n=4, seed=0, candidates=16)
    assert all(c.realness is not None for c in ranked)
    scores = gen.combined([c._replace(text="") for c in ranked])
    assert scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_generator_train_writes_the_ranker_and_the_ranker_command_rewrites_it(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "corpus.txt")
    out = tmp_path / "model"
    tiny = [*TINY_TRAIN, "--ranker"]  # the bot tests' sizes, ranker on
    done = run_generator("train", "--corpus", str(corpus), "--out", str(out), "--max-steps",
                         "150", *tiny, "--ranker-samples", "40")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ranker_summary: held_out_accuracy=" in done.stdout
    first = modeldir.load_ranker(out)
    assert first is not None and first.info["generated"] > 0
    (out / modeldir.RANKER_FILE).unlink()
    again = run_generator("ranker", "--model", str(out), "--corpus", str(corpus),
                          "--threads", "1", "--ranker-samples", "40")
    assert again.returncode == 0, again.stderr[-3000:]
    assert Generator.load(out).ranker is not None
