"""Posts of a plan-and-write model (bench/plan_corpus.py): a plan line drawn first, then the
line search from the state after it; for a blind reading beside the bundle's searches.

    .venv/bin/python bench/planned.py --model runs/plan -n 60 --seed 800 --pick-of 16 \
        --plan-temperature 0.6 --out runs/planned

For each post: with --plan-per post, one plan is drawn and each of the N searches writes it out;
the pick is the best by the post's likelihood given the plan. With --plan-per search, every
search draws its own plan; the pick is the best by the likelihood of plan and post together (a
post of an easy plan is likelier given it, so the plan's own bits are counted). Writes
OUT/NAME-pickN.txt (posts without their plan) and OUT/NAME-plans.txt (the picks with theirs),
and prints the share of plan words the picks use (stems; 100% in the corpus by construction).

With `--val-bits CORPUS` it first prints whether the model reads its plan at all: the bits a
character of the lines after the first of CORPUS's validation posts (the plan corpus's), read
after their own plan, after another post's, and after an empty one.
CPU seconds are the process's own, one thread.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_generator import machine  # noqa: E402
from bench.plan_corpus import PLAN, stem  # noqa: E402
from bench.repick import batched, line_bits  # noqa: E402
from common.corpus import LINE_BREAK, format_posts, read_split  # noqa: E402
from generator.sample import Generator  # noqa: E402
from generator.sampling import draw  # noqa: E402
from generator.search import LineSearch, SearchConfig  # noqa: E402
from generator.vocab import END  # noqa: E402

MAX_PLAN_TOKENS = 40


def draw_plan(gen: Generator, temperature: float, rng: torch.Generator):
    """(plan text, its log-likelihood in nats, its characters, the generator started after
    it): `ПЛАН:` read, key words drawn until the newline that ends the plan line."""
    newline = gen.vocab.encode("\n")[0]
    banned = [END, *gen.vocab.encode(LINE_BREAK)[:1]]
    state = gen.start_state.repeat(1)
    logits = gen.start_logits
    loglik, ids = 0.0, []
    with torch.inference_mode():
        for token in gen.vocab.encode(PLAN):
            loglik += float(torch.log_softmax(logits, -1)[0, token])
            logits = gen.cell.step(torch.tensor([token]), state)
        for _ in range(MAX_PLAN_TOKENS):
            logits = logits.clone()
            logits[:, banned] = -torch.inf
            token = int(draw((logits / temperature).softmax(-1), rng)[0])
            loglik += float(torch.log_softmax(logits, -1)[0, token])
            logits = gen.cell.step(torch.tensor([token]), state)
            if token == newline:
                break
            ids.append(token)
    text = PLAN + gen.vocab.decode(ids)
    started = copy.copy(gen)  # the same model, its posts starting after the plan
    started.start_state, started.start_logits = state, logits
    return text, loglik, len(text) + 1, started


def plan_bits(gen: Generator, corpus: Path, n: int = 400) -> dict[str, float]:
    """Bits a character of the lines after the first of n validation posts (three lines or
    more) after their own plan, another post's (shuffled), and an empty one."""
    _, val, _ = read_split(corpus)
    posts = [p.split("\n", 1) for p in val if p.count(LINE_BREAK) >= 2][:n]
    plans, bodies = [p[0] for p in posts], [p[1] for p in posts]
    shuffled = plans[1:] + plans[:1]

    def after_first(texts: list[str]) -> float:
        read = batched(line_bits, gen, texts)
        return sum(sum(b[1:]) for b, _ in read) / sum(sum(c[1:]) for _, c in read)

    return {name: after_first([f"{plan}\n{body}" for plan, body in zip(ps, bodies, strict=True)])
            for name, ps in (("own", plans), ("another", shuffled),
                             ("empty", [PLAN] * len(plans)))}


def plan_words_used(shown: list[str]) -> float:
    """The share of the picks' plan words whose stem is a stem of their post."""
    used = total = 0
    for text in shown:
        plan, post = text.split("\n", 1)
        stems = {stem(w) for w in post.split()}
        keys = plan.split()[1:]
        used += sum(stem(k) in stems for k in keys)
        total += len(keys)
    return used / max(1, total)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("-n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=800)
    parser.add_argument("--pick-of", type=int, default=16)
    parser.add_argument("--plan-temperature", type=float, default=0.6)
    parser.add_argument("--plan-per", choices=["post", "search"], default="post")
    parser.add_argument("--name", default="planned")
    parser.add_argument("--val-bits", type=Path, metavar="CORPUS",
                        help="first print the bits of CORPUS's validation posts after own, "
                             "another and empty plans")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = Generator.load(args.model)
    if args.val_bits:
        bits = plan_bits(gen, args.val_bits)
        print("bits a character after the first line: " +
              ", ".join(f"{name} plan {value:.4f}" for name, value in bits.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {machine()}, model {args.model}")
    started = time.process_time()
    picks, shown = [], []
    for i in range(args.n):
        rng = torch.Generator().manual_seed(args.seed + i)
        found = []  # (score, plan, post)
        plan = None
        for _ in range(3 * args.pick_of):
            if plan is None or args.plan_per == "search":
                plan = draw_plan(gen, args.plan_temperature, rng)
            text, loglik, chars, after = plan
            result = LineSearch(after, SearchConfig()).post(rng)
            if result is not None:
                post, per_char = result
                post_chars = len(post) + 1
                score = per_char if args.plan_per == "post" else \
                    (loglik + per_char * post_chars) / (chars + post_chars)
                found.append((score, text, post))
            if len(found) == args.pick_of:
                break
        if found:
            _, text, post = max(found)
            picks.append(post)
            shown.append(f"{text}\n{post}")
    cpu = time.process_time() - started
    (args.out / f"{args.name}-pick{args.pick_of}.txt").write_text(format_posts(picks), "utf-8")
    (args.out / f"{args.name}-plans.txt").write_text(format_posts(shown), "utf-8")
    lines = sum(len(p.split(LINE_BREAK)) for p in picks) / max(1, len(picks))
    print(f"{args.name}: {len(picks)} posts, {cpu / max(1, len(picks)):.1f} CPU s a post "
          f"(best of {args.pick_of}), {lines:.1f} lines a post, plan words used "
          f"{plan_words_used(shown):.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
