"""Drawing one unit a row from (rows, V) logits or probabilities: the temperature a model is
sampled at, the top-k and nucleus cuts, the end of a post at the model's own rate, and the draw
itself. The whole-post sampler (sample.py) and the line search (search.py) both draw through
these."""

from __future__ import annotations

import math

import torch

from generator.tokenizer import END

# The temperature a model is sampled at when its caller gives none, by the units it writes: the
# middle of the bot's temperatures (config `bot.temperatures`, the arms its ratings choose among),
# where blind readers rated searched posts best. A character model reads best warmer: at each
# step the sampler sharpens the distribution anew, and a character model takes ~3 steps where a
# subword model takes one (BENCHMARKS.md#decisions).
TEMPERATURE = {"char": 0.85, "unigram": 0.45}


def nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(rows, V) probabilities of softmax(logits) kept to each row's top-p nucleus (the
    smallest set of units reaching top_p; the rest 0); top_p ≥ 1 keeps every unit."""
    probs = logits.softmax(-1)
    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(-1, descending=True)
    drop = sorted_probs.cumsum(-1) - sorted_probs >= top_p  # keep the smallest set reaching it
    return probs.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), 0.0)


BLOCK = 64  # units a block of the two-level draw
LOG2E = 1 / math.log(2)


def draw(probs: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """One unit a row, (rows,), from (rows, V) probabilities (unnormalised allowed): the first
    unit whose cumulative probability passes a uniform draw, one uniform number a row.
    torch.multinomial draws the same but took 2.2 ms a call at 32 rows × 4k units, 60% of a
    search's CPU. A cumulative sum over the whole vocabulary is a serial pass and cost 8% of a
    batched search, so it runs in two levels: over the sums of blocks of BLOCK units, then within
    the block drawn. A unit of probability 0 adds no step to a cumulative sum, so it is never
    the first to pass."""
    rows, units = probs.shape
    whole = units // BLOCK * BLOCK
    if whole < 4 * BLOCK:
        cdf = probs.cumsum(-1)
        u = torch.rand(rows, 1, generator=rng, dtype=probs.dtype) * cdf[:, -1:]
        return _first_past(cdf, u)
    sums = probs[:, :whole].unflatten(1, (-1, BLOCK)).sum(-1)  # (rows, blocks)
    if whole < units:
        sums = torch.cat([sums, probs[:, whole:].sum(-1, keepdim=True)], 1)
    cdf = sums.cumsum(-1)
    u = torch.rand(rows, 1, generator=rng, dtype=probs.dtype) * cdf[:, -1:]
    block = _first_past(cdf, u)  # (rows,)
    before = torch.where(block > 0, cdf.gather(1, (block - 1).clamp_min(0)[:, None])[:, 0], 0.0)
    index = block[:, None] * BLOCK + torch.arange(BLOCK)  # (rows, BLOCK)
    inside = probs.gather(1, index.clamp_max(units - 1)) * (index < units)
    # the rest of u inside the block (rounding may take it past the block's own sum, which
    # _first_past caps)
    rest = (u[:, 0] - before).clamp_min(0.0)[:, None]
    return block * BLOCK + _first_past(inside.cumsum(-1), rest)


def _first_past(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """(rows,): each row's first column whose cumulative probability in cdf (rows, n) passes
    u (rows, 1), u kept below the row's total (rounding may reach it). A row of total 0 gets n."""
    total = cdf[:, -1:]
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True)[:, 0]


def draw_own(logits: torch.Tensor, temperature: float, rng: torch.Generator,
             end_rate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One unit a row from softmax(logits / temperature), and its log-probability under the
    model's own softmax(logits): ((rows,) units, (rows,) natural log-probabilities). With
    `end_rate`, END is drawn at its own rate and the temperature cools only the choice among the
    rest: the distribution of draw(end_at_rate(nucleus(logits / t, 1), softmax(logits)[:, END])),
    in about half the passes over the vocabulary, which took a third of a batched search's CPU.
    The logits are overwritten (shifted by each row's maximum)."""
    # log2 units throughout: torch's exp2 runs 2.7× as fast as its exp on these CPUs
    shifted = logits.sub_(logits.amax(1, keepdim=True)).mul_(LOG2E)  # (rows, V), ≤ 0
    own = torch.exp2(shifted)  # the model's probabilities times each row's 1 / Σ
    total = own.sum(1)  # (rows,)
    probs = torch.exp2(shifted * (1 / temperature))  # tempered, unnormalised
    if end_rate:
        ended = torch.rand(len(probs), generator=rng) * total < own[:, END]
        probs[:, END] = 0.0
        drawn = draw(probs, rng)  # ≥ V where every other unit's tempered probability underflowed
        token = torch.where(ended | (drawn >= probs.shape[1]), END, drawn)
    else:
        token = draw(probs, rng)
    return token, (shifted.gather(1, token[:, None])[:, 0] - total.log2()) * math.log(2)


def end_at_rate(probs: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """(rows, V) probabilities with END's set to `end` (rows,) and the rest rescaled to fill
    the remaining mass (probs may be unnormalised)."""
    probs = probs / probs.sum(-1, keepdim=True)
    rest = (1 - probs[:, END]).clamp_min(1e-12)
    out = probs * ((1 - end) / rest)[:, None]
    out[:, END] = end
    return out


def draw_cut(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None,
             rng: torch.Generator) -> torch.Tensor:
    """One unit a row, (rows,), from softmax(logits / temperature) restricted to the top-k
    units and the top-p nucleus (None: no cut)."""
    logits = logits / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.shape[1]), dim=1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    return draw(nucleus(logits, 1.0 if top_p is None else top_p), rng)
