"""The coherence judge and the line-by-line search, at tiny sizes, offline."""

from __future__ import annotations

import math
import random

import pytest
import torch

from common.cli import UserError
from common.corpus import read_split
from generator import gate, judge, modeldir
from generator import search as search_module
from generator.judge import (
    FEATURES,
    LINE_BREAK,
    Example,
    LineReader,
    corrupt,
    fit,
    lstm_state,
    train_judge,
)
from generator.sample import Generator
from generator.search import LineSearch, SearchConfig
from generator.vocab import END
from tests import pipeline

torch.set_num_threads(1)
POSTS = [[f"СТРОКА {p} {i}" for i in range(2 + p % 4)] for p in range(40)]


@pytest.mark.parametrize("seed", range(20))
def test_each_corruption_changes_the_post_from_the_line_it_names(seed):
    rng = random.Random(seed)
    lines = POSTS[seed % 7 + 10]
    made = corrupt(lines, POSTS, rng)
    if made is None:  # a kind that cannot apply to these lines (a cut of a two-word line)
        return
    kind, new, first_bad = made
    assert kind in judge.CORRUPTIONS and new != lines
    assert new[:first_bad] == lines[:first_bad]
    assert new[first_bad] != lines[first_bad]


def test_a_post_of_one_line_repeated_gets_no_shuffled_copy():
    """The corpus has such posts; shuffling one never changes it (this once hung the judge)."""
    same = ["ААААА", "ААААА", "ААААА"]
    for seed in range(40):
        made = corrupt(same, POSTS, random.Random(seed))
        assert made is None or (made[0] != "shuffle" and made[1] != same)


def test_fit_learns_a_separable_signal_and_keeps_its_best_epoch():
    rng = random.Random(0)

    def example(real: bool) -> Example:
        n = rng.randint(2, 5)
        features = torch.randn(n, FEATURES)
        features[:, 2] += 3.0 if real else -3.0  # the gap between bits alone and in context
        return Example(features, n if real else 0, "real" if real else "swap")

    train = [example(i % 2 == 0) for i in range(400)]
    val = [example(i % 2 == 0) for i in range(100)]
    net, info = fit(train, val, epochs=5)
    assert info["held_out_accuracy"]["all"] > 0.9
    assert judge.accuracy(net, val)["all"] == info["held_out_accuracy"]["all"]


@pytest.fixture(scope="module")
def tiny(bot_model):
    return Generator.load(bot_model)


def test_line_reader_reads_the_first_line_the_same_in_context_and_alone(tiny):
    reader = LineReader(tiny.model, tiny.vocab, lstm_state(tiny.start_state))
    posts = [p.split(LINE_BREAK) for p in pipeline.made_up_bugurts(6, seed=5)]
    features = reader.features(posts)
    assert [f.shape for f in features] == [(len(p), FEATURES) for p in posts]
    for f in features:
        assert torch.isfinite(f).all()
        # the first line is read from a post's start either way: same bits, no gap
        assert f[0, 0].item() == pytest.approx(f[0, 1].item(), abs=1e-4)
        assert f[0, 2].item() == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("cool_end", [True, False])
def test_search_builds_gated_posts_line_by_line_with_the_trained_judge(tiny, bot_model,
                                                                        cool_end):
    found = modeldir.load_judge(bot_model)  # `generator train` trains one after the model
    assert found is not None
    search = LineSearch(tiny, found, SearchConfig(lines_drawn=6, beam=2, min_lines=3,
                                                  cool_end=cool_end))
    rng = torch.Generator().manual_seed(3)
    posts = []
    with torch.inference_mode():
        for _ in range(3):
            made = search.post(rng)
            if made is not None:
                posts.append(made)
    assert posts, "no search passed the gate on the tiny model"
    for text, likelihood, odds in posts:
        lines = text.split(LINE_BREAK)
        assert gate.form_reason(text) is None
        assert len(lines) >= 3 and len(set(lines)) == len(lines)
        assert likelihood < 0 and math.isfinite(odds)


def test_judge_command_retrains_and_bad_judge_files_get_one_line(bot_model, tmp_path):
    corpus = bot_model.parent / "corpus.txt"
    done = pipeline.run("generator", "judge", "--model", str(bot_model), "--corpus", str(corpus),
                        "--judge-posts", "60", env=pipeline.secrets(vk=False), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("judge_summary: held_out_accuracy=")
    assert 0.0 <= float(summary.split("=")[1].split()[0]) <= 1.0
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / modeldir.JUDGE_FILE).write_bytes(b"not a judge")
    with pytest.raises(UserError, match="judge.pt"):
        modeldir.load_judge(bad)
    assert modeldir.load_judge(tmp_path) is None  # none there: the search goes by fluency


def test_too_few_posts_train_no_judge(tiny, bot_model):
    train, val, _ = read_split(bot_model.parent / "corpus.txt")
    reader = LineReader(tiny.model, tiny.vocab, lstm_state(tiny.start_state))
    assert train_judge(reader, train[:5], val) is None


def test_nucleus_keeps_the_smallest_set_of_units_reaching_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = search_module.nucleus(logits, 0.75)
    assert (kept[0] > 0).tolist() == [True, True, False, False]
    assert torch.allclose(search_module.nucleus(logits, 1.0), logits.softmax(-1))


def test_typical_keeps_the_units_whose_surprisal_is_nearest_the_entropy():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])  # entropy 1.14 nats; 0.3's surprisal is 1.20
    assert (search_module.typical(probs, 0.2)[0] > 0).tolist() == [False, True, False, False]
    assert (search_module.typical(probs, 0.5)[0] > 0).tolist() == [True, True, False, False]
    assert torch.equal(search_module.typical(probs, 1.0), probs)
    cut = torch.tensor([[0.6, 0.4, 0.0, 0.0]])  # a nucleus cut first: those units stay out
    assert (search_module.typical(cut, 1.0)[0] > 0).tolist() == [True, True, False, False]


def test_end_at_rate_gives_the_end_its_own_mass_and_the_rest_keep_their_ratios():
    cooled = torch.zeros(2, 6)
    cooled[:, 3:] = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    cooled[:, END] = torch.tensor([0.0, 0.2])  # cooled END: nothing, and part of a nucleus
    out = search_module.end_at_rate(cooled, torch.tensor([0.3, 0.1]))
    assert torch.allclose(out.sum(-1), torch.ones(2))
    assert out[:, END].tolist() == pytest.approx([0.3, 0.1])
    assert out[0, 3:].tolist() == pytest.approx([0.49, 0.14, 0.07])  # 0.7 of the other 0.7
    assert out[1, 3].item() == 0.0  # a unit cooled (or cut) to nothing stays nothing


def test_a_line_that_repeats_the_post_is_refused():
    earlier = ["ТЫ ИДЕШЬ В ШКОЛУ", "КАЗАЛОСЬ БЫ"]
    assert search_module._repeats("КАЗАЛОСЬ БЫ", earlier)
    assert search_module._repeats("ЗАВТРА ЗАВТРА", earlier)
    assert search_module._repeats("И СНОВА ТЫ ИДЕШЬ В ШКОЛУ", earlier)  # a 3-word phrase again
    assert not search_module._repeats("НО ШКОЛА ЗАКРЫТА", earlier)


def test_cohesion_counts_lines_that_reuse_a_content_word_of_an_earlier_one():
    lines = ["ТЫ ПОКУПАЕШЬ ХОЛОДИЛЬНИК", "ПРИВОЗИШЬ ХОЛОДИЛЬНИКИ ДОМОЙ", "ПОТОМ ИДЕШЬ СПАТЬ",
             "ПОТОМ ПРИВОЗИШЬ"]
    # line 2 reuses ХОЛОД-; line 3 reuses nothing; line 4 reuses ПРИВО- (ПОТОМ ties nothing)
    assert search_module.cohesion(lines) == pytest.approx(2 / 3)
    assert search_module.cohesion(["ОДНА СТРОКА"]) == 0.0
    assert search_module.cohesion(["ПОТОМ ОКНО", "ПОТОМ ДВЕРЬ"]) == 0.0  # a function word only



def test_the_opening_is_drawn_at_its_own_temperature(tiny):
    """The first line alone is drawn at `opening_temperature`: equal to the search's, it changes
    nothing; hot, the openings are less likely and the posts' likelihood falls."""
    def posts(**config) -> list[tuple[str, float, float]]:
        search = LineSearch(tiny, None, SearchConfig(lines_drawn=4, beam=2, min_lines=2,
                                                     temperature=0.5, **config))
        rng = torch.Generator().manual_seed(11)
        with torch.inference_mode():
            return [made for _ in range(6) if (made := search.post(rng)) is not None]

    same = posts()
    assert len(same) >= 3, "the tiny model's searches found too few posts at 0.5"
    assert posts(opening_temperature=0.5) == same
    hot = posts(opening_temperature=3.0)
    assert hot, "no search with a hot opening passed the gate"
    assert {t.split(LINE_BREAK)[0] for t, _, _ in hot}.isdisjoint(
        t.split(LINE_BREAK)[0] for t, _, _ in same)
    mean = lambda found: sum(likelihood for _, likelihood, _ in found) / len(found)  # noqa: E731
    assert mean(hot) < mean(same)
