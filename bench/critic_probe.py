"""Probe: can a linear critic over the language model's own states tell a real next line from
one the model drew in the same context? (A residual discriminator, as in Deng et al. 2020,
"Residual Energy-Based Models for Text Generation"; tried for issue 17, not kept.)

    .venv/bin/python bench/critic_probe.py --model generator/bundled --temperature 1.0

For every line of every validation post (text the model never trained on, so a real line is
not favoured for being remembered) the model draws one line from the state after the lines
before it. Each line, real or drawn, is read in its context through the model's `nn.LSTM`;
its features are the mean, the max and the last of the top-layer states over its tokens
(3 × H) and its bits per character and log length. Logistic regressions (L2) on a fifth of
the posts held out report accuracy and AUC for three feature sets.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.corpus import parse_posts  # noqa: E402
from generator import gate  # noqa: E402
from generator.judge import post_lines  # noqa: E402
from generator.sample import Generator  # noqa: E402
from generator.search import LineSearch, SearchConfig  # noqa: E402


def pairs(gen: Generator, search: LineSearch, posts: list[list[str]], seed: int) -> list[tuple]:
    """(post index, lines before, line, whether it ends the post, 1 real / 0 drawn)."""
    rng = torch.Generator().manual_seed(seed)
    out = []
    for pid, lines in enumerate(posts):
        state, logits = gen.start_state.repeat(1), gen.start_logits
        for j, line in enumerate(lines):
            with torch.inference_mode():
                if j:  # the real line before this one, read into the state
                    for t in search.reader.line_ids(lines[j - 1], False):
                        logits = gen.cell.step(torch.tensor([t]), state)
                drawn, _, last, *_ = search._draw_lines(state.repeat(1), logits.clone(), 1,
                                                        rng, True)
            out.append((pid, lines[:j], line, j == len(lines) - 1, 1))
            made = gen.vocab.decode(drawn[0])
            if (last[0] is not None and made.strip() and "\n" not in made
                    and len(made) <= gate.MAX_LINE and made != gate.SEPARATOR):
                out.append((pid, lines[:j], made, bool(last[0]), 0))
    return out


def features(gen: Generator, reader, examples: list[tuple]) -> torch.Tensor:
    """(N, 3H + 2): mean, max and last top state over the line's tokens, bits/char, log length."""
    model, rows = gen.model, []
    for _, before, line, last, _ in examples:
        context = [t for b in before for t in reader.line_ids(b, False)]
        tokens = torch.tensor([context + reader.line_ids(line, last)])
        h, c = (s.contiguous() for s in reader.start)
        with torch.no_grad():
            top, _ = model.lstm(model.embed(tokens), (h, c))  # (1, T, H)
            prior = torch.cat([h[-1][:, None], top[:, :-1]], 1)
            logits = model.head(model.proj(prior) if model.proj is not None else prior)
            logp = torch.log_softmax(logits.float(), -1).gather(2, tokens[:, :, None])[0, :, 0]
        mine = top[0, len(context):]
        bits = -logp[len(context):].sum() / math.log(2) / (len(line) + 1)
        rows.append(torch.cat([mine.mean(0), mine.max(0).values, mine[-1],
                               torch.tensor([bits, math.log(len(line) + 1)])]))
    return torch.stack(rows)


def held_out(x: torch.Tensor, y: torch.Tensor, held: torch.Tensor, decay: float
             ) -> tuple[float, float]:
    """(accuracy, AUC) on the held-out rows of a logistic regression fitted on the rest."""
    train, test = x[~held], x[held]
    mean, spread = train.mean(0), train.std(0).clamp_min(1e-4)
    train, test = (train - mean) / spread, (test - mean) / spread
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def loss():
        opt.zero_grad()
        value = F.binary_cross_entropy_with_logits(train @ w + b, y[~held]) + decay * (w * w).sum()
        value.backward()
        return value

    opt.step(loss)
    with torch.no_grad():
        score = test @ w + b
        truth = y[held]
        auc = (score[truth == 1][:, None] > score[truth == 0][None, :]).float().mean()
        return ((score > 0).float() == truth).float().mean().item(), auc.item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="generator/bundled")
    parser.add_argument("--val", default="data/bugurt/corpus.val.txt")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = Generator.load(args.model)
    search = LineSearch(gen, None, SearchConfig(temperature=args.temperature))
    posts = post_lines(parse_posts(Path(args.val).read_text(encoding="utf-8")))
    posts = random.Random(args.seed).sample(posts, min(args.posts, len(posts)))
    started = time.process_time()
    examples = pairs(gen, search, posts, args.seed)
    x = features(gen, search.reader, examples)
    y = torch.tensor([e[4] for e in examples]).float()
    held = torch.tensor([e[0] for e in examples]) % 5 == 0  # a fifth of the posts, whole
    print(f"CPU: {platform.processor() or platform.machine()}; {int(y.sum())} real lines, "
          f"{int(len(y) - y.sum())} drawn at {args.temperature}; "
          f"{time.process_time() - started:.0f} CPU s")
    width = gen.model.config.hidden
    for name, cols in (("bits and length", [3 * width, 3 * width + 1]),
                       ("states", list(range(3 * width))), ("both", list(range(3 * width + 2)))):
        for decay in (1e-3, 1e-2):
            accuracy, auc = held_out(x[:, cols], y, held, decay)
            print(f"{name}, L2 {decay}: held-out accuracy {accuracy:.3f}, AUC {auc:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
