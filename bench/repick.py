"""Pick again among searched posts by other rules, for a blind reading beside the shipped pick.

    .venv/bin/python bench/selection.py --model generator/bundled -n 60 --seed 501 \
        --system search --pick-of 16 --out runs/len      # writes runs/len/search-searches.jsonl
    .venv/bin/python bench/repick.py --model generator/bundled \
        --searches runs/len/search-searches.jsonl --pick-of 8 --pick-of 16 --out runs/len

For each post's first N searches (N of each --pick-of) it writes OUT/RULE-pickN.txt, one rule a
file, in post order, so that `reading.py score --pair` compares two rules where they differ:
- likelihood: the highest mean log-likelihood per character (`Generator.score`, shipped);
- worst-line: the lowest bits per character of the post's worst line, read in context: a
  reader stops at the first line that makes no sense, which a post's mean can hide;
- short: the fewest lines, then likelihood (readers rated shorter posts more coherent: sheet
  M's coherence against characters, Spearman −0.40 / −0.47);
- after-opening: the mean log-likelihood per character of the lines after the first, for
  searches whose opening is drawn hot (`--opening-temperature`): scored with it, the pick
  would prefer the commonest openings again.
With `--second-model DIR` (another model, its own units; a base without a novelty index is read
too) two more rules read each search again under that model:
- second: its mean log-likelihood per character (another model's view, not the sampler's own
  view of its cooled draws);
- both: the sum of the two models' means per character (a product of the two experts).
With `--context K` one more:
- context: likelihood plus how much each line owes to the post's own earlier lines: the bits a
  character the lines after the first lose when read after K other posts' openings instead
  (pointwise mutual information of a line and its context: a stock line that could follow
  anything gains nothing). The two terms are put on one scale by their spread over all searches.
It also prints, over all searches, how the rules' quantities go together (Spearman).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.corpus import LINE_BREAK, format_posts  # noqa: E402
from generator import modeldir  # noqa: E402
from generator.gate import NoveltyIndex  # noqa: E402
from generator.sample import Generator  # noqa: E402
from generator.vocab import END  # noqa: E402

RULES = {  # rule → key to maximise over a post's searches
    "likelihood": lambda s: s["likelihood"],
    "worst-line": lambda s: -max(b / c for b, c in zip(s["bits"], s["chars"], strict=True)),
    "short": lambda s: (-len(s["bits"]), s["likelihood"]),
    "after-opening": lambda s: -sum(s["bits"][1:]) / sum(s["chars"][1:]),
}


def line_bits(gen: Generator, texts: list[str]) -> list[tuple[list[float], list[int]]]:
    """(bits of each line, its characters) of each post, read in context from the post's
    start through the sampler's cell, all posts side by side; a line's tokens and characters
    include what ends it (the line break, or the post's end)."""
    posts = [text.split(LINE_BREAK) for text in texts]
    line_of: list[list[int]] = []  # each token's line
    tokens: list[list[int]] = []
    for lines in posts:
        ids, where = [], []
        for i, line in enumerate(lines):
            last = i == len(lines) - 1
            piece = gen.vocab.encode(line) + ([END] if last else gen.vocab.encode(LINE_BREAK))
            ids += piece
            where += [i] * len(piece)
        tokens.append(ids)
        line_of.append(where)
    rows, steps = len(tokens), max(map(len, tokens))
    grid = torch.full((rows, steps), END)
    for r, ids in enumerate(tokens):
        grid[r, : len(ids)] = torch.tensor(ids)
    logp = torch.zeros(rows, steps)
    state = gen.start_state.repeat(rows)
    logits = gen.start_logits.expand(rows, -1)
    with torch.inference_mode():
        for t in range(steps):
            logp[:, t] = torch.log_softmax(logits.float(), -1).gather(1, grid[:, t : t + 1])[:, 0]
            logits = gen.cell.step(grid[:, t], state)
    out = []
    for r, lines in enumerate(posts):
        bits = [0.0] * len(lines)
        for t, i in enumerate(line_of[r]):
            bits[i] -= float(logp[r, t]) / math.log(2)
        chars = [len(line) + (1 if i == len(lines) - 1 else len(LINE_BREAK))
                 for i, line in enumerate(lines)]
        out.append((bits, chars))
    return out


def batched(score, gen: Generator, texts: list[str], size: int = 256) -> list:
    """score(gen, texts) a batch at a time: one grid of every search would hold their
    log-probabilities over the whole vocabulary at once."""
    return [out for i in range(0, len(texts), size) for out in score(gen, texts[i : i + size])]


def context_gain(gen: Generator, searches: list[dict], k: int, seed: int) -> list[float]:
    """Bits a character of each search's lines after the first, read after k openings of
    other posts' searches minus read in the post's own context (s["bits"] of line_bits). A
    line is read with what ends it in its post: the post's end, or a line break (a stand-in
    line follows)."""
    rng = random.Random(seed)
    others = {post: [o for o in searches if o["post"] != post] for post in
              dict.fromkeys(s["post"] for s in searches)}  # each post's, built once
    texts, where = [], []
    for j, s in enumerate(searches):
        lines = s["text"].split(LINE_BREAK)
        for i in range(1, len(lines)):
            tail = [] if i == len(lines) - 1 else ["."]
            for _ in range(k):
                opening = rng.choice(others[s["post"]])["text"].split(LINE_BREAK)[0]
                texts.append(LINE_BREAK.join([opening, lines[i], *tail]))
                where.append((j, i))
    gain = [0.0] * len(searches)
    for (j, i), (bits, _) in zip(where, batched(line_bits, gen, texts), strict=True):
        gain[j] += (bits[1] - searches[j]["bits"][i]) / k
    return [g / max(1, sum(s["chars"][1:])) for g, s in zip(gain, searches, strict=True)]


def load_scorer(model_dir: Path) -> Generator:
    """A model only read from: a base (`export --base`) has no novelty index, which reading
    needs none of, so an empty one stands in."""
    model, vocab, info = modeldir.load_model(model_dir)
    return Generator(model, vocab, NoveltyIndex.build([]), info)


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = (torch.tensor(x).argsort().argsort().float() for x in (a, b))
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="generator/bundled")
    parser.add_argument("--searches", type=Path, required=True, help="NAME-searches.jsonl")
    parser.add_argument("--pick-of", type=int, action="append", required=True)
    parser.add_argument("--second-model", type=Path,
                        help="read every search again under this model: rules second and both")
    parser.add_argument("--context", type=int, metavar="K",
                        help="rule context: each line read after K other openings too")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = Generator.load(args.model)
    searches = [json.loads(line) for line in args.searches.read_text("utf-8").splitlines()]
    texts = [s["text"] for s in searches]
    for s, (bits, chars) in zip(searches, batched(line_bits, gen, texts), strict=True):
        s["bits"], s["chars"] = bits, chars
    rules = dict(RULES)
    if args.second_model:
        second = load_scorer(args.second_model)
        for s, (bits, chars) in zip(searches, batched(line_bits, second, texts), strict=True):
            s["second"] = -sum(bits) * math.log(2) / sum(chars)  # nats a character
        rules["second"] = lambda s: s["second"]
        rules["both"] = lambda s: s["likelihood"] + s["second"]
        pairs = [s["likelihood"] for s in searches], [s["second"] for s in searches]
        print(f"Spearman: likelihood–second {spearman(*pairs):+.2f}")
    if args.context:
        for s, gain in zip(searches, context_gain(gen, searches, args.context, 0), strict=True):
            s["context"] = gain
        spread = [statistics.stdev(s[key] for s in searches) for key in ("likelihood", "context")]
        rules["context"] = lambda s: s["likelihood"] / spread[0] + s["context"] / spread[1]
        pairs = [s["likelihood"] for s in searches], [s["context"] for s in searches]
        print(f"context gain: mean {statistics.mean(pairs[1]):.3f} bits a character, spread "
              f"{spread[1]:.3f} (likelihood {spread[0]:.3f} nats); Spearman with likelihood "
              f"{spearman(*pairs):+.2f}")
    groups: dict[int, list[dict]] = defaultdict(list)
    for s in searches:
        groups[s["post"]].append(s)
    args.out.mkdir(parents=True, exist_ok=True)
    for pick in args.pick_of:
        for rule, key in rules.items():
            picked = [max(groups[post][:pick], key=key)["text"] for post in sorted(groups)]
            (args.out / f"{rule}-pick{pick}.txt").write_text(format_posts(picked), "utf-8")
    likelihood = [s["likelihood"] for s in searches]
    worst = [-RULES["worst-line"](s) for s in searches]
    lines = [len(s["bits"]) for s in searches]
    print(f"{len(searches)} searches of {len(groups)} posts; lines a search "
          f"{sum(lines) / len(lines):.2f}; Spearman: likelihood–worst line "
          f"{spearman(likelihood, worst):+.2f}, likelihood–lines "
          f"{spearman(likelihood, lines):+.2f}, "
          f"worst line–lines {spearman(worst, lines):+.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
