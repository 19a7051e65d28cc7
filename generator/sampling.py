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


def draw(probs: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """One unit a row, (rows,), from (rows, V) probabilities (unnormalised allowed): the first
    unit whose cumulative probability passes a uniform draw, one uniform number a row.
    torch.multinomial draws the same but took 2.2 ms a call at 32 rows × 4k units, 60% of a
    search's CPU; this takes 0.08 ms. A unit of probability 0 adds no step to the cumulative
    sum, so it is never the first to pass."""
    cdf = probs.cumsum(-1)
    total = cdf[:, -1:]
    u = torch.rand(len(probs), 1, generator=rng, dtype=cdf.dtype) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))  # rounding may reach it
    return torch.searchsorted(cdf, u, right=True)[:, 0]


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
