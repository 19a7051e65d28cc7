"""Posts of a plan-and-write model (bench/plan_corpus.py): a plan line drawn first, then the
line search from the state after it; for a blind reading beside the bundle's searches.

    .venv/bin/python bench/planned.py --model runs/plan -n 60 --seed 800 --pick-of 16 \
        --plan-temperature 0.6 --out runs/planned

For each post: with --plan-per post, one plan is drawn and each of the N searches writes it out;
the pick is the best by the post's likelihood given the plan. With --plan-per search, every
search draws its own plan; the pick is the best by the likelihood of plan and post together (a
post of an easy plan is likelier given it, so the plan's own bits are counted). Writes
OUT/NAME-pickN.txt (posts without their plan) and OUT/NAME-plans.txt (the picks with theirs).
CPU seconds are the process's own, one thread.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.corpus import LINE_BREAK, format_posts  # noqa: E402
from generator.sample import Generator  # noqa: E402
from generator.search import LineSearch, SearchConfig, draw  # noqa: E402
from generator.vocab import END  # noqa: E402

PLAN = "ПЛАН:"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("-n", type=int, default=60)
    parser.add_argument("--seed", type=int, default=800)
    parser.add_argument("--pick-of", type=int, default=16)
    parser.add_argument("--plan-temperature", type=float, default=0.6)
    parser.add_argument("--plan-per", choices=["post", "search"], default="post")
    parser.add_argument("--name", default="planned")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = Generator.load(args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {platform.processor() or platform.machine()}, model {args.model}")
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
          f"(best of {args.pick_of}), {lines:.1f} lines a post")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
