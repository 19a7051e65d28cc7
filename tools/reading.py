"""What readers judge: a blind reading sheet and its scoring, and the share of invented words.

    .venv/bin/python tools/reading.py prepare --model generator/bundled [--model runs/x@0.7 ...] \
        --real data/bugurt/corpus.val.txt -n 20 --out runs/reading
    .venv/bin/python tools/reading.py prepare --file likelihood=picks/likelihood.txt \
        --file combined=picks/combined.txt --real data/bugurt/corpus.val.txt -n 10 --out DIR
    # give runs/reading/sheet.txt (and nothing else) to a reader who is not told the sources;
    # they write runs/reading/ratings.jsonl: {"id": 7, "coherence": 1-5, "humour": 1-5,
    #                                          "readable": true|false} a line
    .venv/bin/python tools/reading.py score --dir runs/reading
    .venv/bin/python tools/reading.py words --model generator/bundled \
        --real data/bugurt/corpus.val.txt
    .venv/bin/python tools/reading.py judgements --dir runs/reading --sheet W \
        --ratings r1=runs/reading/ratings-1.jsonl --ratings r2=... --model generator/bundled \
        --out bench/readings/W/judgements.jsonl

`judgements` turns a reading's ratings into judgements (bot/judgements.py, kind "reading",
source `reading:SHEET:READER`, value the coherence grade) with the features a ranker reads, the
likelihood being the model's mean log-probability per character of the post: what
`python -m bot import-judgements` appends and bench/ranker_offline.py measures the ranker on.

`words` counts, over 64 sampled posts and over real validation posts, the Cyrillic words that are
neither a form in the Russian dictionary (pymorphy3, a development dependency) nor a word of
the training corpus: the model's invented words.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from common.corpus import parse_posts  # noqa: E402
from generator.sample import Generator  # noqa: E402
from generator.tag import TAG  # noqa: E402

WORD = re.compile(r"[А-ЯЁа-яё]+(?:-[А-ЯЁа-яё]+)*")


def sample_posts(model: str, n: int, seed: int) -> list[str]:
    """n gated posts of a model given as DIR (at its default temperature) or DIR@TEMPERATURE,
    without the tag line."""
    model_dir, _, temp = model.partition("@")
    temperature = float(temp) if temp else None
    gen = Generator.load(model_dir)
    posts: list[str] = []
    rounds = 0
    while len(posts) < n and rounds < 4 * n:
        batch = gen.generate(n=n - len(posts), temperature=temperature, seed=seed + rounds)
        posts.extend(p.removesuffix("\n" + TAG) for p in batch)
        rounds += 1
    return posts[:n]


def real_posts(path: str, n: int, seed: int) -> list[str]:
    posts = parse_posts(Path(path).read_text(encoding="utf-8"))
    return random.Random(seed).sample(posts, n)


def prepare(args) -> int:
    """The sheet holds each distinct post once: a post two sources share (the same pick from the
    same searches) is read once and counts for both, so readers see no repeats to recognise."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries = [(f"real:{args.real}#{i}", p)
               for i, p in enumerate(real_posts(args.real, args.n, args.seed))]
    for model in args.model or []:
        entries += [(f"model:{model}#{i}", p)
                    for i, p in enumerate(sample_posts(model, args.n, args.seed))]
    for spec in args.file or []:  # posts picked elsewhere, one a block; #i is a post's place
        label, path = spec.split("=", 1)
        entries += [(f"file:{label}#{i}", p)
                    for i, p in enumerate(parse_posts(Path(path).read_text("utf-8")))]
    sources: dict[str, list[str]] = defaultdict(list)  # text → its sources, first seen first
    for source, text in entries:
        sources[text].append(source)
    texts = list(sources)
    random.Random(args.seed).shuffle(texts)
    sheet = [f"### Post {i}\n{text}\n" for i, text in enumerate(texts, 1)]
    (out / "sheet.txt").write_text("\n".join(sheet), encoding="utf-8")
    key = {str(i): sources[text] for i, text in enumerate(texts, 1)}
    (out / "key.json").write_text(json.dumps(key, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"{len(texts)} posts ({len(entries)} with the shared ones) in {out / 'sheet.txt'}; "
          f"the key is {out / 'key.json'}")
    return 0


def read_ratings(folder: Path, ratings_file: str | None) -> list[tuple[str, dict]]:
    """(source, rating) for every source of each rated post ("file:LABEL#i"; an older key
    names one source a post, without its place)."""
    key = json.loads((folder / "key.json").read_text(encoding="utf-8"))
    rated: list[tuple[str, dict]] = []
    for line in Path(ratings_file or folder / "ratings.jsonl").read_text(
            encoding="utf-8").splitlines():
        if line.strip():
            rating = json.loads(line)
            sources = key[str(rating["id"])]
            for source in [sources] if isinstance(sources, str) else sources:
                rated.append((source, rating))
    return rated


def score(args) -> int:
    rated = read_ratings(Path(args.dir), args.ratings)
    by_source: dict[str, list[dict]] = defaultdict(list)
    for source, rating in rated:
        by_source[source.partition("#")[0]].append(rating)
    print("| source | posts | coherence 1–5 | humour 1–5 | readable |")
    print("|---|---|---|---|---|")
    for source, ratings in sorted(by_source.items()):
        readable = sum(bool(r["readable"]) for r in ratings)
        print(f"| {source} | {len(ratings)} "
              f"| {statistics.mean(r['coherence'] for r in ratings):.2f} "
              f"| {statistics.mean(r['humour'] for r in ratings):.2f} "
              f"| {readable}/{len(ratings)} ({100 * readable / len(ratings):.0f}%) |")
    for pair in args.pair or []:
        print(paired(dict(rated), *pair.split(",", 1)))
    return 0


def paired(rated: dict[str, dict], a: str, b: str) -> str:
    """Two file sources picked from the same searches, compared on the posts where their picks
    differ (post i of each): the shared picks add the same rating to both."""
    places = [source.rpartition("#")[2] for source in rated if source.startswith(f"file:{a}#")]
    both = [(rated[f"file:{a}#{i}"], rated.get(f"file:{b}#{i}")) for i in places]
    differ = [(ra, rb) for ra, rb in both if rb is not None and ra is not rb]
    if not differ:
        return f"{a} and {b}: no post differs"
    mean_a = statistics.mean(ra["coherence"] for ra, _ in differ)
    mean_b = statistics.mean(rb["coherence"] for _, rb in differ)
    wins = sum(ra["coherence"] > rb["coherence"] for ra, rb in differ)
    losses = sum(ra["coherence"] < rb["coherence"] for ra, rb in differ)
    return (f"{a} vs {b} on the {len(differ)} posts that differ: coherence {mean_a:.2f} vs "
            f"{mean_b:.2f} ({wins} higher, {losses} lower, {len(differ) - wins - losses} level)")


def invented_share(posts: list[str], corpus_words: set[str], morph) -> tuple[float, int]:
    """(share of words known to neither the dictionary nor the corpus, words counted)."""
    words = [w.lower() for p in posts for w in WORD.findall(p)]
    invented = sum(1 for w in words if w not in corpus_words and not morph.word_is_known(w))
    return invented / max(1, len(words)), len(words)


def words(args) -> int:
    import pymorphy3  # noqa: PLC0415 - a development dependency of this script only

    morph = pymorphy3.MorphAnalyzer()
    train = Path(args.real).with_name(Path(args.real).name.replace(".val.", ".train."))
    corpus_words = {w.lower() for w in WORD.findall(train.read_text(encoding="utf-8"))}
    real_share, real_n = invented_share(real_posts(args.real, args.n, args.seed), corpus_words,
                                        morph)
    print(f"| source | words | invented | vs real |\n|---|---|---|---|\n"
          f"| real validation posts | {real_n} | {100 * real_share:.1f}% | 1.00× |")
    for model in args.model:
        share, n = invented_share(sample_posts(model, args.n, args.seed), corpus_words, morph)
        print(f"| {model} | {n} | {100 * share:.1f}% | {share / real_share:.2f}× |")
    return 0


def sheet_posts(folder: Path) -> dict[int, str]:
    """The posts of a prepared sheet by their number."""
    blocks = (folder / "sheet.txt").read_text(encoding="utf-8").split("### Post ")[1:]
    return {int(b.split("\n", 1)[0]): b.split("\n", 1)[1].strip() for b in blocks}


def judgements(args) -> int:
    import math  # noqa: PLC0415

    from bot.features import features  # noqa: PLC0415
    from bot.judgements import Judgement  # noqa: PLC0415
    from generator.evaluate import text_bpc  # noqa: PLC0415

    folder = Path(args.dir)
    posts = sheet_posts(folder)
    key = json.loads((folder / "key.json").read_text(encoding="utf-8"))
    others = tuple(f"file:{label}#" for label in args.other)

    def written(number: int) -> str | None:
        """The model for a post it wrote; None for a real post or another system's (a review
        never shows those, so the ranker pairs only the model's: bot/ranker.py)."""
        labels = key[str(number)]
        return None if any(label.startswith(("real:", *others)) for label in labels) \
            else args.model

    gen = Generator.load(args.model)
    likelihood = {i: -text_bpc(gen.model, gen.vocab, text) * math.log(2)
                  for i, text in posts.items()}  # nats per character, the likelihood picks rank by
    lines = []
    for spec in args.ratings:
        reader, _, path = spec.partition("=")
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rating = json.loads(line)
                text = posts[rating["id"]]
                lines.append(json.dumps(asdict(Judgement(
                    "reading", f"reading:{args.sheet}:{reader}", float(rating["coherence"]),
                    text, written(rating["id"]), features(text, likelihood[rating["id"]],
                                                          None))),
                    ensure_ascii=False))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"{len(lines)} judgements of {len(posts)} posts in {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="a shuffled, unlabelled sheet of real and generated posts")
    p.add_argument("--model", action="append",
                   help="model directory, DIR@T to sample at temperature T (repeat)")
    p.add_argument("--file", action="append", metavar="LABEL=FILE",
                   help="posts picked elsewhere, blank-line separated (repeat)")
    p.add_argument("--real", required=True, help="validation split of the corpus")
    p.add_argument("-n", type=int, default=20, help="posts from each source")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", required=True)
    s = sub.add_parser("score", help="the ratings against the key, per source")
    s.add_argument("--dir", required=True)
    s.add_argument("--ratings", help="one reader's file (default: DIR/ratings.jsonl)")
    s.add_argument("--pair", action="append", metavar="A,B",
                   help="two --file labels picked from the same searches: compare them on the "
                        "posts where they differ (repeat)")
    w = sub.add_parser("words", help="share of invented words, generated vs real")
    w.add_argument("--model", action="append", required=True, help="DIR or DIR@T (repeat)")
    w.add_argument("--real", required=True)
    w.add_argument("-n", type=int, default=64)
    w.add_argument("--seed", type=int, default=7)
    j = sub.add_parser("judgements", help="a reading's ratings as judgements, with features")
    j.add_argument("--dir", required=True, help="the prepared sheet's folder")
    j.add_argument("--sheet", required=True, help="the sheet's name (in each judgement's source)")
    j.add_argument("--ratings", action="append", required=True, metavar="READER=FILE")
    j.add_argument("--model", required=True, help="the model whose likelihood is a feature")
    j.add_argument("--other", action="append", default=["markov"], metavar="LABEL",
                   help="a file's posts written by another system (markov always is): their "
                        "judgements name no model")
    j.add_argument("--out", required=True)
    args = parser.parse_args()
    return {"prepare": prepare, "score": score, "words": words,
            "judgements": judgements}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
