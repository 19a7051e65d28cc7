"""Posts of each selection system, for a blind reading, with the CPU seconds each post took.

    .venv/bin/python tools/selection.py --model generator/bundled --corpus data/bugurt/corpus.txt \
        -n 15 --out runs/selection [--system likelihood64 --system search ...]
    .venv/bin/python tools/reading.py prepare --real data/bugurt/corpus.val.txt -n 15 \
        --out runs/selection/sheet --file likelihood64=runs/selection/likelihood64.txt ...

Systems (each writes OUT/NAME.txt, posts blank-line separated, no tag):
- likelihood64: best of 64 whole posts by mean log-likelihood per character;
- search: line-by-line search (generator/search.py), what the pool serves;
- markov: a word Markov chain (markovify, state 2) over the corpus lines, as many lines as a
  real training post has (drawn at random): the peer to beat.
With `--pick-of N` every search system also writes NAME-pickN.txt: each post the best of N
searched posts by likelihood, as the channel picks among its gathered searches. Given
several times (`--pick-of 8 --pick-of 32`), each post's searches are drawn once, as many as the
largest N, and pickN is the best of the first N of them: the sizes compare on the same draws.
NAME-searches.jsonl keeps every search (post, text, likelihood), for picking again by another
rule.
CPU seconds are the process's own (time.process_time), so other load on the machine does not
count; run it on one thread (it sets one) and name the CPU when reporting.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from common.corpus import LINE_BREAK, format_posts, read_split  # noqa: E402
from generator.gate import form_reason  # noqa: E402
from generator.sample import Candidate, Generator  # noqa: E402
from generator.search import LineSearch, SearchConfig  # noqa: E402
from generator.tag import TAG  # noqa: E402
from harness.report import machine  # noqa: E402

SYSTEMS = ("likelihood64", "search", "markov")


def likelihood_posts(gen: Generator, n: int, seed: int) -> tuple[list[str], float]:
    started = time.process_time()
    posts = []
    for i in range(n):
        ranked = gen.ranked(1, candidates=64, seed=seed + i)
        if ranked:
            posts.append(ranked[0].text.removesuffix("\n" + TAG))
    return posts, time.process_time() - started


def timed_posts(search: LineSearch, n: int, seed: int
                ) -> tuple[list[tuple[str, float]], float]:
    """n searched posts as `LineSearch.post` gives them (searches that found none are run
    again, up to 3n in all), and the CPU seconds they took, the failed searches' included."""
    rng = torch.Generator().manual_seed(seed)
    started = time.process_time()
    posts = []
    for _ in range(3 * n):
        if (found := search.post(rng)) is not None:
            posts.append(found)
        if len(posts) == n:
            break
    return posts, time.process_time() - started


def markov_posts(train: list[str], n: int, seed: int) -> tuple[list[str], float]:
    import markovify  # noqa: PLC0415 - a development dependency of this script only

    started = time.process_time()
    lines = [line for post in train for line in post.split(LINE_BREAK)]
    chain = markovify.NewlineText("\n".join(lines), state_size=2, well_formed=False)
    rng = random.Random(seed)
    random.seed(seed)  # markovify draws from the global generator
    shapes = [len(p.split(LINE_BREAK)) for p in train if form_reason(p) is None]
    posts = []
    while len(posts) < n:
        made = [chain.make_sentence(tries=100) for _ in range(rng.choice(shapes))]
        post = LINE_BREAK.join(m for m in made if m)
        if form_reason(post) is None:
            posts.append(post)
    return posts, time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="generator/bundled")
    parser.add_argument("--corpus", default="data/bugurt/corpus.txt")
    parser.add_argument("--system", action="append", choices=SYSTEMS)
    parser.add_argument("-n", type=int, default=15)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--lines-drawn", type=int, default=SearchConfig.lines_drawn)
    parser.add_argument("--beam", type=int, default=SearchConfig.beam)
    parser.add_argument("--temperature", type=float, default=SearchConfig.temperature)
    parser.add_argument("--top-p", type=float, default=SearchConfig.top_p)
    parser.add_argument("--cohesion-weight", type=float, default=SearchConfig.cohesion_weight)
    parser.add_argument("--cool-end", action="store_true",
                        help="cool the post's end like every other unit (SearchConfig.cool_end; "
                             "the search's default until sheets J and K)")
    parser.add_argument("--pick-of", type=int, action="append",
                        help="searches a post; with N > 1 also write NAME-pickN.txt, each post the "
                             "best of N searches by likelihood (the channel's choice), and "
                             "NAME.txt the first of each N; repeatable, sizes nested")
    parser.add_argument("--name", help="file name of the search's posts (default: search)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    picks = sorted(set(args.pick_of or [1]))
    searches = picks[-1]  # a post's searches; each pick size reads the first of them
    gen = Generator.load(args.model)
    train, _, _ = read_split(args.corpus)
    args.out.mkdir(parents=True, exist_ok=True)
    config = SearchConfig(lines_drawn=args.lines_drawn, beam=args.beam,
                          temperature=args.temperature, top_p=args.top_p,
                          cohesion_weight=args.cohesion_weight,
                          cool_end=args.cool_end)
    print(f"CPU: {machine()}, model {args.model}")
    for system in args.system or SYSTEMS:
        if system == "likelihood64":
            posts, cpu = likelihood_posts(gen, args.n, args.seed)
        elif system == "markov":
            posts, cpu = markov_posts(train, args.n, args.seed)
        else:
            found, cpu = timed_posts(LineSearch(gen, config), args.n * searches, args.seed)
            groups = [found[i : i + searches] for i in range(0, len(found), searches)]
            posts = [group[0][0] for group in groups]
            stem = args.name or system
            with (args.out / f"{stem}-searches.jsonl").open("w", encoding="utf-8") as out:
                for post, group in enumerate(groups):
                    for text, likelihood in group:
                        out.write(json.dumps({"post": post, "text": text, "likelihood": likelihood},
                                             ensure_ascii=False) + "\n")
            for pick in (k for k in picks if k > 1):
                picked = [gen.best_first([Candidate(*f) for f in g[:pick]])[0] for g in groups]
                (args.out / f"{stem}-pick{pick}.txt").write_text(
                    format_posts([c.text for c in picked]), encoding="utf-8")
            cpu /= searches  # a post's share; a pick of N costs N times that
            if len(found) > 1:
                spread = torch.tensor([f[1] for f in found]).std()
                print(f"{system}: likelihood spread across searches {spread:.4f} nats/char")
        name = args.name if args.name and system == "search" else system
        (args.out / f"{name}.txt").write_text(format_posts(posts), encoding="utf-8")
        lines = sum(len(p.split(LINE_BREAK)) for p in posts) / max(1, len(posts))
        print(f"{system}: {len(posts)} posts, {cpu / max(1, len(posts)):.2f} CPU s a post, "
              f"{lines:.1f} lines a post")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
