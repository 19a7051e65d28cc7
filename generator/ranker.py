"""The ranker: a "cooperative discriminator" (Holtzman et al., ACL 2018) that tells the training
posts from the model's own samples, cheap enough to train on one CPU thread in a minute or two.

It is logistic regression over
- hashed sparse features: character n-grams (1–4, the post framed by \\x02 … \\x03) and word
  uni- and bigrams, each block log(1 + count) weighted and L2-normalised, hashed by CRC-32 into
  DIM buckets (CRC-32, not Python's hash(): that is salted per process);
- a few dense structure features, standardised: log length, lines, mean and longest line, the
  share of distinct words (the model's loops repeat words).
Its score is the log-odds that a post is real. Real posts are taken only if they pass the gate's
form rules and fit in one sample's length, so it learns what the gate does not already enforce.

`combine` turns likelihoods and log-odds into one ranking score: both z-scored across the
candidates being ranked, the log-odds weighted by `generator.ranker_weight`.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
import zlib
from collections import Counter
from typing import TYPE_CHECKING

import torch

from generator import gate

if TYPE_CHECKING:
    from generator.sample import Generator

log = logging.getLogger(__name__)
DIM = 1 << 18  # hash buckets: 256k weights, 512 KB in fp16
CHAR_ORDERS = (1, 2, 3, 4)
WORD_ORDERS = (1, 2)
DENSE = 5  # structure features, see _dense
TEMPERATURES = (0.5, 0.6, 0.7)  # the bot's default arms: the ranker sees what it will rank
HELD_OUT = 0.2  # share of each class kept out of training to measure accuracy
EPOCHS = 15
BATCH = 128
MIN_POSTS = 10  # of each class: a held-out fifth of two posts at least
_WORD = re.compile(r"\w+")


class Ranker:
    """A trained scorer: `score(texts)` → log-odds "real" per text."""

    def __init__(self, weights: torch.Tensor, dense: torch.Tensor, bias: float,
                 dense_mean: torch.Tensor, dense_std: torch.Tensor, info: dict) -> None:
        self.weights = weights.float()  # (DIM,) one weight per hash bucket
        self.dense = dense.float()  # (DENSE,)
        self.bias = float(bias)
        self.dense_mean, self.dense_std = dense_mean.float(), dense_std.float()  # (DENSE,)
        self.info = info  # held_out_accuracy, posts per class, seconds

    def score(self, texts: list[str]) -> list[float]:
        if not texts:
            return []
        idx, offsets, values, dense = _batch(texts)
        sparse = torch.nn.functional.embedding_bag(idx, self.weights[:, None], offsets,
                                                   mode="sum", per_sample_weights=values)[:, 0]
        dense = (dense - self.dense_mean) / self.dense_std
        return (sparse + dense @ self.dense + self.bias).tolist()

    def to_state(self) -> dict:
        """The stored form (modeldir.save_ranker): fp16 bucket weights halve the file."""
        return {"weights": self.weights.half(), "dense": self.dense, "bias": self.bias,
                "dense_mean": self.dense_mean, "dense_std": self.dense_std, "info": self.info,
                "dim": DIM}

    @classmethod
    def from_state(cls, state: dict) -> Ranker:
        if state["dim"] != DIM:
            raise ValueError(f"{state['dim']} hash buckets, this code hashes into {DIM}")
        return cls(state["weights"], state["dense"], state["bias"], state["dense_mean"],
                   state["dense_std"], state["info"])


def combine(likelihoods: list[float], realness: list[float] | None,
            weight: float) -> list[float]:
    """Ranking scores of candidates: z(likelihood) + weight · z(ranker log-odds), z-scored across
    these candidates so that the weight means the same whatever the scales. No ranker (None) or
    weight 0: z(likelihood) alone, the likelihood's own order.

    The readers' 👍/👎 would enter here as a third z-scored term (a predicted rating per
    candidate) with its own weight."""
    scores = _z(likelihoods)
    if realness is not None and weight:
        scores = [s + weight * r for s, r in zip(scores, _z(realness), strict=True)]
    return scores


def _z(values: list[float]) -> list[float]:
    if not values:
        return []
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return [(v - mean) / std if std > 0 else 0.0 for v in values]


# ----- features -----
def _hash(gram: str) -> int:
    return zlib.crc32(gram.encode("utf-8")) % DIM


def _block(grams: list[str]) -> tuple[list[int], list[float]]:
    """Bucket ids and their log(1 + count) weights, L2-normalised over the block."""
    counts = Counter(_hash(g) for g in grams)
    values = [math.log1p(c) for c in counts.values()]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return list(counts), [v / norm for v in values]


def _dense(text: str) -> list[float]:
    body = [line for line in text.split("\n") if line != gate.SEPARATOR]
    words = _WORD.findall(text)
    lengths = [len(line) for line in body] or [0]
    return [math.log1p(len(text)), float(len(body)), sum(lengths) / len(lengths),
            float(max(lengths)), len(set(words)) / max(1, len(words))]


def _features(text: str) -> tuple[list[int], list[float]]:
    framed = f"\x02{text}\x03"
    chars = [f"c{n}{framed[i:i + n]}" for n in CHAR_ORDERS for i in range(len(framed) - n + 1)]
    words = _WORD.findall(text)
    grams = [f"w{n}{' '.join(words[i:i + n])}" for n in WORD_ORDERS
             for i in range(len(words) - n + 1)]
    c_idx, c_val = _block(chars)
    w_idx, w_val = _block(grams)
    return c_idx + w_idx, c_val + w_val


def _batch(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EmbeddingBag input: bucket ids (total,), offsets (texts,), weights (total,), and the raw
    dense features (texts, DENSE)."""
    return *_pack([_features(t) for t in texts]), torch.tensor([_dense(t) for t in texts])


# ----- training -----
def fit(real: list[str], generated: list[str], seed: int = 0) -> Ranker:
    """Train on two classes (balanced by the caller or not), keep HELD_OUT of each aside and
    record the accuracy there in `info["held_out_accuracy"]`."""
    started = time.perf_counter()
    rng = random.Random(seed)
    real, generated = rng.sample(real, len(real)), rng.sample(generated, len(generated))
    cut_r, cut_g = int(len(real) * HELD_OUT), int(len(generated) * HELD_OUT)
    train = real[cut_r:] + generated[cut_g:]
    labels = torch.tensor([1.0] * (len(real) - cut_r) + [0.0] * (len(generated) - cut_g))
    test, test_labels = real[:cut_r] + generated[:cut_g], [1] * cut_r + [0] * cut_g
    rows = [_features(t) for t in train]
    dense = torch.tensor([_dense(t) for t in train])
    dense_mean, dense_std = dense.mean(0), dense.std(0).clamp(min=1e-6)
    dense = (dense - dense_mean) / dense_std
    torch.manual_seed(seed)
    bag = torch.nn.EmbeddingBag(DIM, 1, mode="sum")
    torch.nn.init.zeros_(bag.weight)
    linear = torch.nn.Linear(DENSE, 1)
    # Adagrad: a per-bucket step size suits sparse features seen at very different rates.
    opt = torch.optim.Adagrad([*bag.parameters(), *linear.parameters()], lr=0.2)
    for _ in range(EPOCHS):
        order = torch.randperm(len(train)).tolist()
        for start in range(0, len(order), BATCH):
            chosen = order[start:start + BATCH]
            idx, offsets, values = _pack([rows[i] for i in chosen])
            logits = (bag(idx, offsets, per_sample_weights=values)[:, 0]
                      + linear(dense[chosen])[:, 0])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[chosen])
            loss = loss + 1e-5 * bag.weight.square().sum()  # L2: many buckets hold one post
            opt.zero_grad()
            loss.backward()
            opt.step()
    ranker = Ranker(bag.weight.detach()[:, 0], linear.weight.detach()[0],
                    float(linear.bias.detach()), dense_mean, dense_std, {})
    hits = sum((s > 0) == bool(y) for s, y in zip(ranker.score(test), test_labels, strict=True))
    ranker.info = {"held_out_accuracy": hits / max(1, len(test)), "held_out": len(test),
                   "real": len(real), "generated": len(generated),
                   "seconds": round(time.perf_counter() - started, 1)}
    return ranker


def _pack(rows: list[tuple[list[int], list[float]]]
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows of (bucket ids, weights) as EmbeddingBag input: ids, offsets, weights."""
    idx, values, offsets = [], [], []
    for i, v in rows:
        offsets.append(len(idx))
        idx += i
        values += v
    return torch.tensor(idx), torch.tensor(offsets), torch.tensor(values)


def sample_posts(generator: Generator, count: int, seed: int = 0) -> list[str]:
    """`count` gated samples of the model (about equal shares at each of TEMPERATURES), as
    drawn; fewer if the gate keeps refusing."""
    rng = torch.Generator().manual_seed(seed)
    posts: list[str] = []
    for k, temperature in enumerate(TEMPERATURES):
        want = count * (k + 1) // len(TEMPERATURES) - len(posts)
        mine: list[str] = []
        for _ in range(4 * math.ceil(want / 64) + 4):  # tries: a quarter of a batch passing
            if len(mine) >= want:
                break
            mine += [c.text for c in generator.gated(64, temperature, rng)]
        posts += mine[:want]
    return posts


def train(generator: Generator, real_posts: list[str], samples: int = 2000,
          seed: int = 0) -> Ranker | None:
    """A ranker for `generator`'s model: `samples` of its gated posts against as many training
    posts of the forms it can write; None when either class has fewer than MIN_POSTS (a corpus
    of other texts, a model that writes nothing the gate passes)."""
    from generator.sample import MAX_CHARS  # noqa: PLC0415 - sample imports modeldir imports us

    real = [p for p in real_posts if len(p) <= MAX_CHARS and gate.form_reason(p) is None]
    samples = min(samples, len(real))
    if samples < MIN_POSTS:
        return None
    started = time.perf_counter()
    generated = sample_posts(generator, samples, seed)
    if len(generated) < MIN_POSTS:
        return None
    log.info("ranker: %d samples of the model drawn in %.0f s", len(generated),
             time.perf_counter() - started)
    ranker = fit(random.Random(seed).sample(real, samples), generated, seed)
    log.info("ranker: held-out accuracy %.3f (%d posts), trained in %.0f s",
             ranker.info["held_out_accuracy"], ranker.info["held_out"], ranker.info["seconds"])
    return ranker
