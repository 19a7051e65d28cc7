"""The coherence judge: does each line of a post follow from the lines before it?

Likelihood scores every token against its context but never asks whether a line belongs after
the ones before it; a post of fluent lines on five subjects scores as well as a story. The judge
is trained for that question alone, with no generated text: it tells real posts from real posts
made incoherent (`corrupt`: a line swapped in from another post, the lines shuffled, the ending
of another post, a line cut short), after Holtzman et al. 2018 ("Learning to Write with
Cooperative Discriminators"), whose relevance and entailment modules were trained the same way.

It reads a post through the frozen language model, line by line (`LineReader`): for each line
the model's top-layer state at its end in context and when read alone, and its bits per
character in context and alone; the gap between the last two is how much the earlier lines
made this one expected. A GRU over those line features (`JudgeNet`) gives, after every line,
the log-odds that the post so far is real. It is causal, so the line-by-line search (search.py)
scores a post it is still building one line at a time, and it is trained on every prefix: the
lines before the first corrupted one are labelled real, the rest not.

Training and validation are split by source post (the corpus's own train/validation split): a
post and its corrupted copies are always on the same side.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from common.corpus import SEPARATOR
from generator.gate import form_reason
from generator.model import CellState, LSTMModel
from generator.vocab import END, Tokenizer

log = logging.getLogger("generator")

LINE_BREAK = f"\n{SEPARATOR}\n"
FEATURES = 5  # a line's: bits/char in context and alone, their gap, log characters, direction
CORRUPTIONS = ("swap", "shuffle", "ending", "cut")


# ----- corruptions -----
def corrupt(lines: list[str], others: list[list[str]], rng: random.Random
            ) -> tuple[str, list[str], int] | None:
    """(kind, corrupted lines, index of the first line that makes it incoherent) of a post of
    ≥ 2 lines, drawing foreign lines from `others`; None when the kind drawn cannot apply."""
    kind = rng.choice(CORRUPTIONS)
    n = len(lines)
    j = rng.randrange(1, n)  # a line after the first: the first alone is never incoherent
    other = rng.choice(others)
    if kind == "swap":
        new = [*lines[:j], rng.choice(other), *lines[j + 1:]]
    elif kind == "ending":
        new = lines[:j] + other[rng.randrange(1, len(other)):]
    elif kind == "shuffle":
        if len(set(lines)) < 2:  # every line the same: no order to break (and no end to trying)
            return None
        new = lines[:]
        while new == lines:
            rng.shuffle(new)
        j = next(i for i, (a, b) in enumerate(zip(new, lines, strict=True)) if a != b)
    else:  # cut: a line loses its last words
        words = lines[j].split()
        if len(words) < 3:
            return None
        new = [*lines[:j], " ".join(words[: rng.randrange(1, len(words) - 1)]), *lines[j + 1:]]
    return (kind, new, j) if new != lines else None


# ----- the language model's view of lines -----
def line_scalars(bits_context: torch.Tensor, bits_alone: torch.Tensor, chars: torch.Tensor,
                 alone: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """The judge's features of L lines, (L, FEATURES): bits per character in context and alone
    (L,), characters (L,), and how far the line read alone (alone: its top states, (L, H))
    points the way the post before it does (before: the top state before each line, (L, H))."""
    toward = F.cosine_similarity(alone, before, dim=-1)
    return torch.stack([bits_context, bits_alone, bits_alone - bits_context,
                        chars.float().log(), toward], 1)


class LineReader:
    """Reads posts line by line through a language model, teacher-forced, many posts at once.

    It runs the model's `nn.LSTM` over whole sequences (one batched kernel a layer), several
    times faster per token than stepping the sampler's cell; the states it gives differ from the
    cell's int8 ones by rounding only.
    """

    def __init__(self, model: LSTMModel, vocab: Tokenizer, start: tuple[torch.Tensor, ...]):
        self.model, self.vocab = model.eval(), vocab
        self.start = start  # (h, c), each (layers, 1, H): the state at a post's start
        self.line_break = vocab.encode(LINE_BREAK)

    def line_ids(self, line: str, last: bool) -> list[int]:
        """The tokens of a line and what ends it: a line break, or END after the last line."""
        return self.vocab.encode(line) + ([END] if last else self.line_break)

    def read(self, sequences: list[list[list[int]]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each sequence of lines (token lists), read from a post's start: (top state after
        each line (L, H), bits of each line (L,))."""
        flat = [[t for line in seq for t in line] for seq in sequences]
        rows, steps = len(flat), max(map(len, flat))
        tokens = torch.full((rows, steps), END)
        for r, ids in enumerate(flat):
            tokens[r, : len(ids)] = torch.tensor(ids)
        h, c = (s.expand(-1, rows, -1).contiguous() for s in self.start)
        model = self.model
        with torch.no_grad():
            top, _ = model.lstm(model.embed(tokens), (h, c))  # (N, T, H): state after token t
            before = torch.cat([h[-1][:, None], top[:, :-1]], 1)  # state token t is drawn from
            logits = model.head(model.proj(before) if model.proj is not None else before)
            logp = torch.log_softmax(logits.float(), -1).gather(2, tokens[:, :, None])[:, :, 0]
        out = []
        for r, seq in enumerate(sequences):
            ends = torch.tensor([len(line) for line in seq]).cumsum(0)
            cum = torch.cat([torch.zeros(1), logp[r].cumsum(0)])
            bits = -(cum[ends] - cum[torch.cat([torch.zeros(1, dtype=torch.long), ends[:-1]])])
            out.append((top[r, ends - 1], bits / math.log(2)))
        return out

    def read_sorted(self, sequences: list[list[list[int]]], tokens_per_batch: int = 8192
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """`read` in batches of sequences of similar length (little padding), in input order."""
        order = sorted(range(len(sequences)), key=lambda i: sum(map(len, sequences[i])))
        out: list = [None] * len(sequences)
        start = 0
        while start < len(order):
            longest = sum(map(len, sequences[order[start]]))
            end = start + 1
            while end < len(order) and (end - start + 1) * max(
                    longest, sum(map(len, sequences[order[end]]))) <= tokens_per_batch:
                longest = max(longest, sum(map(len, sequences[order[end]])))
                end += 1
            chunk = order[start:end]
            for i, result in zip(chunk, self.read([sequences[i] for i in chunk]), strict=True):
                out[i] = result
            start = end
        return out

    def features(self, posts: list[list[str]]) -> list[torch.Tensor]:
        """The judge's features of posts given as lists of lines."""
        ids = [[self.line_ids(line, i == len(p) - 1) for i, line in enumerate(p)] for p in posts]
        context = self.read_sorted(ids)
        lines = list({tuple(line): None for seq in ids for line in seq})  # each line once
        alone = dict(zip(lines, self.read_sorted([[list(line)] for line in lines]), strict=True))
        start_top = self.start[0][-1]  # (1, H)
        out = []
        for p, seq, (top, bits) in zip(posts, ids, context, strict=True):
            mine = [alone[tuple(line)] for line in seq]
            chars = torch.tensor([len(line) + (1 if i == len(p) - 1 else len(LINE_BREAK))
                                  for i, line in enumerate(p)])
            out.append(line_scalars(bits / chars, torch.cat([a[1] for a in mine]) / chars, chars,
                                    torch.cat([a[0] for a in mine]),
                                    torch.cat([start_top, top[:-1]])))
        return out


def lstm_state(state: CellState) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampler's cell state as nn.LSTM's (h, c), each (layers, N, H)."""
    return (torch.stack([w[0] for w in state.writes]), torch.stack(state.c))


# ----- the judge network -----
@dataclass
class JudgeConfig:
    width: int = 16  # the GRU's state


class JudgeNet(nn.Module):
    """Line features → log-odds after each line that the post so far is real."""

    def __init__(self, config: JudgeConfig):
        super().__init__()
        self.config = config
        # mean and spread of the features, set from the training data
        self.register_buffer("shift", torch.zeros(FEATURES))
        self.register_buffer("scale", torch.ones(FEATURES))
        self.gru = nn.GRU(FEATURES, config.width, batch_first=True)
        self.out = nn.Linear(config.width, 1)

    def forward(self, features: torch.Tensor, state: torch.Tensor | None = None):
        """features (N, L, FEATURES) → log-odds (N, L) after every line, and the GRU state
        (1, N, W) after the last."""
        out, state = self.gru((features - self.shift) / self.scale, state)
        return self.out(out)[..., 0], state


def _pad(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of posts as one padded (N, L, FEATURES) tensor, and their lengths (N,)."""
    lengths = torch.tensor([len(f) for f in features])
    return nn.utils.rnn.pad_sequence(features, batch_first=True), lengths


@dataclass
class Example:
    features: torch.Tensor  # (L, FEATURES)
    first_bad: int  # index of the first incoherent line; the line count for a real post
    kind: str  # "real" or a corruption


def examples(reader: LineReader, posts: list[list[str]], rng: random.Random) -> list[Example]:
    """Each post (≥ 2 lines) real, and one corrupted copy of it."""
    posts = [p for p in posts if len(p) >= 2]
    made = [(p, len(p), "real") for p in posts]
    for p in posts:
        bad = corrupt(p, posts, rng)
        if bad is not None:
            kind, lines, j = bad
            made.append((lines, j, kind))
    features = reader.features([m[0] for m in made])
    return [Example(f, j, kind) for f, (_, j, kind) in zip(features, made, strict=True)]


def _labels(batch: list[Example], steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, mask), both (N, L): 1 for the lines before the first bad one, 0 from it on."""
    pos = torch.arange(steps)[None, :]
    lengths = torch.tensor([len(e.features) for e in batch])[:, None]
    first_bad = torch.tensor([e.first_bad for e in batch])[:, None]
    return (pos < first_bad).float(), pos < lengths


def accuracy(net: JudgeNet, data: list[Example]) -> dict[str, float]:
    """Share of posts judged right after their last line (real > 0 > corrupted), by kind."""
    right: dict[str, list[bool]] = {}
    with torch.no_grad():
        features, lengths = _pad([e.features for e in data])
        logits, _ = net(features)
        last = logits.gather(1, (lengths - 1)[:, None])[:, 0]
    for e, score in zip(data, last.tolist(), strict=True):
        right.setdefault(e.kind, []).append((score > 0) == (e.kind == "real"))
    out = {kind: sum(v) / len(v) for kind, v in right.items()}
    out["all"] = sum(sum(v) for v in right.values()) / max(1, len(data))
    return out


def fit(train: list[Example], val: list[Example], epochs: int = 30,
        seed: int = 0) -> tuple[JudgeNet, dict]:
    """Train a judge on every prefix; keeps the epoch with the best held-out accuracy."""
    torch.manual_seed(seed)
    net = JudgeNet(JudgeConfig())
    all_scalars = torch.cat([e.features for e in train])
    net.shift.copy_(all_scalars.mean(0))
    net.scale.copy_(all_scalars.std(0).clamp_min(1e-3))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.01)
    rng = random.Random(seed)
    best, best_state, started = None, None, time.perf_counter()
    for epoch in range(epochs):
        net.train()
        order = list(range(len(train)))
        rng.shuffle(order)
        for i in range(0, len(order), 64):
            batch = [train[k] for k in order[i : i + 64]]
            features, _ = _pad([e.features for e in batch])
            logits, _ = net(features)
            labels, mask = _labels(batch, logits.shape[1])
            loss = F.binary_cross_entropy_with_logits(logits[mask], labels[mask])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        held_out = accuracy(net, val)
        log.info("judge epoch %d: held-out accuracy %.3f %s", epoch + 1, held_out["all"],
                 {k: round(v, 3) for k, v in held_out.items() if k != "all"})
        if best is None or held_out["all"] > best["all"]:
            best = held_out
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    info = {"held_out_accuracy": best, "train_posts": len(train), "val_posts": len(val),
            "seconds": round(time.perf_counter() - started, 1), "config": asdict(net.config)}
    return net, info


def post_lines(posts: list[str]) -> list[list[str]]:
    """The lines of the posts of the forms the gate lets through (what the judge will see)."""
    return [p.split(LINE_BREAK) for p in posts if form_reason(p) is None]


def train_judge(reader: LineReader, train_posts: list[str], val_posts: list[str],
                max_posts: int = 4000, seed: int = 0) -> tuple[JudgeNet, dict] | None:
    """A judge for the model behind `reader`, from up to `max_posts` training posts (and as
    many corrupted copies), checked on the validation posts; None when too few posts."""
    rng = random.Random(seed)
    train_lines, val_lines = post_lines(train_posts), post_lines(val_posts)
    if len(train_lines) < 20 or len(val_lines) < 5:
        return None
    train_lines = rng.sample(train_lines, min(max_posts, len(train_lines)))
    val_lines = rng.sample(val_lines, min(max(200, max_posts // 8), len(val_lines)))
    started = time.perf_counter()
    train, val = examples(reader, train_lines, rng), examples(reader, val_lines, rng)
    read_seconds = time.perf_counter() - started
    net, info = fit(train, val, seed=seed)
    info["read_seconds"] = round(read_seconds, 1)
    return net, info
