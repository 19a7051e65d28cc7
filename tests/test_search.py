"""The line-by-line search and its parts, at tiny sizes, offline."""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from common.corpus import LINE_BREAK
from generator import gate, sampling, words
from generator import search as search_module
from generator.sample import Generator
from generator.search import LineSearch, SearchConfig
from generator.tag import TAG
from generator.tokenizer import END

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(bot_model):
    return Generator.load(bot_model)


@pytest.mark.parametrize("cool_end", [True, False])
def test_search_builds_gated_posts_line_by_line(tiny, cool_end):
    search = LineSearch(tiny, SearchConfig(lines_drawn=6, beam=2, min_lines=3, cool_end=cool_end))
    rng = torch.Generator().manual_seed(3)
    posts = []
    with torch.inference_mode():
        for _ in range(3):
            made = search.post(rng)
            if made is not None:
                posts.append(made)
    assert posts, "no search passed the gate on the tiny model"
    for text, likelihood in posts:
        lines = text.split(LINE_BREAK)
        assert gate.form_reason(text) is None
        assert len(lines) >= 3 and len(set(lines)) == len(lines)
        assert likelihood < 0


def test_nucleus_keeps_the_smallest_set_of_units_reaching_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = sampling.nucleus(logits, 0.75)
    assert (kept[0] > 0).tolist() == [True, True, False, False]
    assert torch.allclose(sampling.nucleus(logits, 1.0), logits.softmax(-1))


def test_end_at_rate_gives_the_end_its_own_mass_and_the_rest_keep_their_ratios():
    cooled = torch.zeros(2, 6)
    cooled[:, 3:] = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
    cooled[:, END] = torch.tensor([0.0, 0.2])  # cooled END: nothing, and part of a nucleus
    out = sampling.end_at_rate(cooled, torch.tensor([0.3, 0.1]))
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
    assert words.cohesion(lines) == pytest.approx(2 / 3)
    assert words.cohesion(["ОДНА СТРОКА"]) == 0.0
    assert words.cohesion(["ПОТОМ ОКНО", "ПОТОМ ДВЕРЬ"]) == 0.0  # a function word only


def test_the_search_draws_at_its_temperature_or_else_the_models(tiny):
    """A search given no temperature draws at the model's (sampling.TEMPERATURE); a hot one
    draws other, less likely posts."""
    def posts(temperature: float | None) -> list[tuple[str, float]]:
        search = LineSearch(tiny, SearchConfig(lines_drawn=4, beam=2, min_lines=2,
                                               temperature=temperature))
        rng = torch.Generator().manual_seed(11)
        with torch.inference_mode():
            return [made for _ in range(6) if (made := search.post(rng)) is not None]

    same = posts(tiny.temperature)
    assert len(same) >= 3, "the tiny model's searches found too few posts at its temperature"
    assert posts(None) == same
    hot = posts(3.0)
    assert hot, "no hot search passed the gate"
    assert hot != same
    mean = lambda found: sum(likelihood for _, likelihood in found) / len(found)  # noqa: E731
    assert mean(hot) < mean(same)


def test_a_model_directory_with_an_old_judge_still_serves(bot_model, tmp_path):
    """judge.pt, written by versions that had a coherence judge, is left unread."""
    old = tmp_path / "old"
    shutil.copytree(bot_model, old)
    (old / "judge.pt").write_bytes(b"a judge of an older version")
    gen = Generator.load(old)
    made = [gen.searched(seed=seed, config=SearchConfig(lines_drawn=6, beam=2))
            for seed in range(4)]
    assert any(made), "no search passed the gate on the tiny model"
    assert all(m.text.endswith("\n" + TAG) for m in made if m)


def test_draw_follows_the_probabilities_and_never_draws_a_unit_of_none():
    probs = torch.tensor([[0.0, 5.0, 3.0, 0.0, 1.5, 0.5, 0.0]])  # unnormalised, zeros inside
    rng = torch.Generator().manual_seed(0)
    drawn = sampling.draw(probs.expand(100_000, -1).contiguous(), rng)
    share = torch.bincount(drawn, minlength=7) / len(drawn)
    assert share[[0, 3, 6]].tolist() == [0.0, 0.0, 0.0]
    assert share.tolist() == pytest.approx((probs[0] / probs.sum()).tolist(), abs=0.01)
    one = torch.zeros(3, 5)
    one[torch.arange(3), torch.tensor([4, 0, 2])] = 1.0  # a single unit left: always it
    assert sampling.draw(one, rng).tolist() == [4, 0, 2]


def test_the_two_level_draw_of_a_large_vocabulary_follows_the_probabilities():
    """Over BLOCK × 4 units the draw picks a block, then a unit inside it: units of the last,
    partial block, units of zero probability and blocks of none all come out right."""
    units = sampling.BLOCK * 5 + 7  # a partial block at the end
    probs = torch.zeros(units)
    kept = torch.tensor([0, 3, sampling.BLOCK - 1, sampling.BLOCK * 3 + 10, units - 2, units - 1])
    probs[kept] = torch.tensor([1.0, 4.0, 2.0, 6.0, 3.0, 0.5])  # block 1, 2 and 4 hold none
    rng = torch.Generator().manual_seed(1)
    drawn = sampling.draw(probs.expand(200_000, -1).contiguous(), rng)
    share = torch.bincount(drawn, minlength=units) / len(drawn)
    assert share.sum().item() == pytest.approx(1.0) and len(share) == units
    assert share[kept].tolist() == pytest.approx((probs[kept] / probs.sum()).tolist(), abs=0.01)
    single = torch.zeros(4, units)
    single[torch.arange(4), torch.tensor([units - 1, 0, sampling.BLOCK, 200])] = 1.0
    assert sampling.draw(single, rng).tolist() == [units - 1, 0, sampling.BLOCK, 200]


def test_draw_own_draws_what_the_unfused_draw_of_a_search_step_drew():
    """The fused draw against the draw it replaced (end_at_rate over the tempered softmax),
    on a 300-unit vocabulary with an END of 5%: the same shares of every unit."""
    rng = torch.Generator().manual_seed(3)
    logits = torch.randn(300, generator=rng) * 2
    logits[END] = math.log(0.05 / 0.95 * logits.exp().sum().item())  # END: 5% of the model's
    rows, t = 200_000, 0.45
    fused, _ = sampling.draw_own(logits.expand(rows, -1).clone(), t, rng, end_rate=True)
    own = torch.softmax(logits, 0)
    probs = sampling.end_at_rate(torch.softmax(logits / t, 0).expand(rows, -1),
                                 own[END].expand(rows))
    unfused = sampling.draw(probs, rng)
    a, b = (torch.bincount(x, minlength=300) / rows for x in (fused, unfused))
    assert a[END].item() == pytest.approx(0.05, abs=0.003)
    assert (a - b).abs().max().item() < 0.006  # ~4 standard errors of a share near one half


def test_draw_own_draws_the_ends_at_the_models_rate_and_gives_its_own_log_probabilities():
    """draw_own: END at softmax(logits)'s rate, the rest at the temperature, and every unit's
    log-probability under the model's own softmax."""
    logits = torch.log(torch.tensor([0.2, 0.5, 0.25, 0.05]))  # END (0) is 0.2 of the model's
    rows = 200_000
    rng = torch.Generator().manual_seed(2)
    token, logp = sampling.draw_own(logits.expand(rows, -1).clone(), 0.5, rng, end_rate=True)
    share = torch.bincount(token, minlength=4) / rows
    cooled = torch.softmax(logits[1:] / 0.5, 0) * 0.8  # the rest at T 0.5, in the other 0.8
    assert share[END].item() == pytest.approx(0.2, abs=0.005)
    assert share[1:].tolist() == pytest.approx(cooled.tolist(), abs=0.005)
    assert torch.allclose(logp, logits[token], atol=1e-5)
    token, _ = sampling.draw_own(logits.expand(rows, -1).clone(), 1.0, rng, end_rate=False)
    share = torch.bincount(token, minlength=4) / rows
    assert share.tolist() == pytest.approx([0.2, 0.5, 0.25, 0.05], abs=0.005)
