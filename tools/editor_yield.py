"""The editor's yield, read blind (issue 32): channel slots as review mode shows them, an
editor's choices, and the sheet of what was published.

    .venv/bin/python tools/editor_yield.py slots --out runs/editor/slots.jsonl -n 20 --seed 7
    .venv/bin/python tools/editor_yield.py order --slots runs/editor/slots.jsonl \
        --judgements bench/readings/*/judgements.jsonl --out runs/editor/ranked.jsonl
    .venv/bin/python tools/editor_yield.py pages --slots runs/editor/slots.jsonl --out DIR
    .venv/bin/python tools/editor_yield.py files --slots runs/editor/slots.jsonl \
        --choices DIR/choices.jsonl --out runs/editor
    .venv/bin/python tools/editor_yield.py report --slots runs/editor/slots.jsonl \
        --choices DIR/choices.jsonl

`slots` gathers each slot's candidates as the channel does (`pool.channel_searches` searches
under the feed's rules at a temperature drawn from `bot.temperatures`), ordered as a review shows
them where no ranker is used (by likelihood), and remembers the automatic pick (the first) for the
next slot; the memory follows the automatic feed, not the editor's choices. `order` puts each
slot's candidates in a ranker's order (fitted on committed judgements), for an editor who reads
the same slots as a review ranked by it would show them. `pages` writes one
file for the editor: each slot's first `review.choices` candidates, then the next pages, the
editor told to read a page only after passing on the one before (at most `--pages`). `files`
writes the published posts and the automatic pick of the same slots in the sample format, for
`tools/reading.py prepare`. `report` prints the slots filled and the posts read per slot;
`interleave` takes odd slots from one order and even slots from another; `judgements` writes
the editor's decisions as the judgements review mode would store (the pick
over each candidate shown and passed over).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from dataclasses import asdict
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bot import judgements, ranker  # noqa: E402
from bot.features import features  # noqa: E402
from bot.judgements import Judgement  # noqa: E402
from common.config import load_config  # noqa: E402
from generator.feed import FeedMemory, FeedRules, searched  # noqa: E402
from generator.sample import Generator  # noqa: E402
from harness.report import machine  # noqa: E402


def slots(args) -> int:
    """Write each slot's candidates, best first, one JSON object a line."""
    config = load_config(args.config)
    gen = Generator.load(args.model or config.generator.model_dir)
    memory = FeedMemory(FeedRules(memory=config.pool.memory), gen.novelty)
    pick = random.Random(args.seed)
    rng = torch.Generator().manual_seed(args.seed)
    began = time.process_time()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        for slot in range(args.n):
            temperature = pick.choice(config.bot.temperatures)
            found = searched(gen, memory, config.pool.channel_searches, temperature, rng)
            if found:
                memory.add(found[0].text)
            out.write(json.dumps({"slot": slot + 1, "temperature": temperature,
                                  "candidates": [c.text for c in found],
                                  "likelihoods": [c.likelihood for c in found]},
                                 ensure_ascii=False) + "\n")
            out.flush()
    print(f"{args.out}: {args.n} slots, best of {config.pool.channel_searches} searches, "
          f"{(time.process_time() - began) / args.n:.1f} CPU s a slot on {machine()}")
    return 0


def read_slots(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip()]


def pages(args) -> int:
    """The editor's file: each slot's candidates in pages of `choices`, at most `pages` pages."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    blocks, slots_ = [], read_slots(args.slots)
    for slot in slots_:
        shown = slot["candidates"][: args.choices * args.pages]
        for page in range(0, len(shown), args.choices):
            blocks.append(f"=== SLOT {slot['slot']} · PAGE {page // args.choices + 1} ===")
            for number, text in enumerate(shown[page : page + args.choices], page + 1):
                blocks.append(f"--- {number} ---\n{text}")
    (out / "slots.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    print(f"{out / 'slots.txt'}: {len(slots_)} slots")
    return 0


def order(args) -> int:
    """The same slots with each slot's candidates in the order a fitted ranker gives them, as
    review mode shows them where its ranker is used: a ranker fitted (bot/ranker.py) on the
    judgements' files, refused when it does not beat likelihood on its held-out pairs."""
    judged = [j for path in args.judgements for j in judgements.load(Path(path))]
    fitted = ranker.fit(judged)
    print(f"ranker: {fitted.accuracy:.1%} against likelihood's {fitted.likelihood_accuracy:.1%}"
          f" on {fitted.held_out} held-out pairs ({fitted.trained} trained on)")
    if not fitted.used:
        print("the ranker does not beat likelihood: review mode would order by likelihood",
              file=sys.stderr)
        return 1
    slots_ = read_slots(args.slots)
    with open(args.out, "w", encoding="utf-8") as out:
        for slot in slots_:
            scored = sorted(zip(slot["candidates"], slot["likelihoods"], strict=True),
                            key=lambda c: -fitted.score(features(c[0], c[1], slot["temperature"])))
            out.write(json.dumps({**slot, "candidates": [text for text, _ in scored],
                                  "likelihoods": [ll for _, ll in scored]},
                                 ensure_ascii=False) + "\n")
    print(f"{args.out}: {len(slots_)} slots in the ranker's order")
    return 0


def judged(args) -> int:
    """The editor's decisions as judgements, as review mode stores them: in each slot the post
    published over every candidate shown and passed over (slots filled with none give passes
    only). Slots written before likelihoods were kept get none, so the ranker pairs none of
    theirs."""
    chosen, slots_ = choices_of(args.choices), read_slots(args.slots)
    lines = []
    for slot in slots_:
        decision = chosen.get(slot["slot"], {})
        shown = posts_read(slot, decision, args.shown)
        likelihoods = slot.get("likelihoods") or [None] * len(slot["candidates"])
        review = zlib.crc32(f"{args.sheet}:{slot['slot']}".encode())
        for number, (text, ll) in enumerate(zip(slot["candidates"][:shown],
                                                likelihoods[:shown], strict=True), 1):
            picked = number == decision.get("pick")
            lines.append(json.dumps(asdict(Judgement(
                "pick" if picked else "pass", f"editor:{args.sheet}", float(picked), text,
                args.model, features(text, ll, slot["temperature"]), review_id=review)),
                ensure_ascii=False))
    Path(args.out).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    print(f"{len(lines)} judgements of {len(slots_)} slots in {args.out}")
    return 0


def interleave(args) -> int:
    """Odd slots as ordered in one file, even slots as in the other: one editor reads both
    orders, so the editor's strictness falls on both alike."""
    first, second = read_slots(args.odd), read_slots(args.even)
    with open(args.out, "w", encoding="utf-8") as out:
        for a, b in zip(first, second, strict=True):
            assert a["slot"] == b["slot"], "the two files hold other slots"
            chosen = a if a["slot"] % 2 else b
            out.write(json.dumps({**chosen, "order": args.odd if a["slot"] % 2 else args.even},
                                 ensure_ascii=False) + "\n")
    print(f"{args.out}: odd slots from {args.odd}, even from {args.even}")
    return 0


def posts_read(slot: dict, decision: dict, per_page: int) -> int:
    """The candidates an editor read in a slot: the pages read, `per_page` each, as far as the
    slot has candidates."""
    return min(len(slot["candidates"]), decision.get("pages_read", 1) * per_page)


def choices_of(path: str) -> dict[int, dict]:
    """The editor's decisions: {"slot": n, "pick": candidate number or null, "pages_read": k}."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return {c["slot"]: c for c in (json.loads(line) for line in lines if line.strip())}


def files(args) -> int:
    """The published posts and the automatic pick of the same slots, in the sample format."""
    chosen = choices_of(args.choices)
    published, automatic = [], []
    for slot in read_slots(args.slots):
        if not slot["candidates"]:
            continue
        automatic.append(slot["candidates"][0])
        pick = chosen.get(slot["slot"], {}).get("pick")
        if pick:
            published.append(slot["candidates"][pick - 1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, posts in (("editor", published), ("auto", automatic)):
        (out / f"{name}.txt").write_text("".join(p + "\n\n" for p in posts), encoding="utf-8")
        print(f"{out / name}.txt: {len(posts)} posts")
    return 0


def report(args) -> int:
    """Slots filled and posts read per slot (a page read is `choices` posts read)."""
    chosen = choices_of(args.choices)
    slots_ = read_slots(args.slots)
    filled = [s for s in slots_ if chosen.get(s["slot"], {}).get("pick")]
    read = [posts_read(s, chosen.get(s["slot"], {}), args.shown) for s in slots_]
    print(f"slots filled: {len(filled)} of {len(slots_)} ({len(filled) / len(slots_):.0%}); "
          f"posts read per slot: {sum(read) / len(slots_):.1f}; "
          f"per published post: {sum(read) / max(1, len(filled)):.1f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("slots")
    s.add_argument("--out", required=True)
    s.add_argument("-n", type=int, default=20)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--config", default="config.yaml")
    s.add_argument("--model", default=None, help="model directory (default: generator.model_dir)")
    s.set_defaults(run=slots)
    p = sub.add_parser("pages")
    p.add_argument("--slots", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--choices", type=int, default=5)
    p.add_argument("--pages", type=int, default=4, help="the first page and up to three more")
    p.set_defaults(run=pages)
    o = sub.add_parser("order")
    o.add_argument("--slots", required=True)
    o.add_argument("--judgements", nargs="+", required=True, help="JSON lines of judgements")
    o.add_argument("--out", required=True)
    o.set_defaults(run=order)
    i = sub.add_parser("interleave")
    i.add_argument("--odd", required=True, help="slots file whose odd slots are taken")
    i.add_argument("--even", required=True, help="slots file whose even slots are taken")
    i.add_argument("--out", required=True)
    i.set_defaults(run=interleave)
    j = sub.add_parser("judgements")
    j.add_argument("--slots", required=True)
    j.add_argument("--choices", required=True)
    j.add_argument("--sheet", required=True, help="the sheet's name (in each judgement's source)")
    j.add_argument("--model", default="generator/bundled", help="the model that wrote them")
    j.add_argument("--shown", type=int, default=5, help="candidates a page shows")
    j.add_argument("--out", required=True)
    j.set_defaults(run=judged)
    f = sub.add_parser("files")
    f.add_argument("--slots", required=True)
    f.add_argument("--choices", required=True)
    f.add_argument("--out", required=True)
    f.set_defaults(run=files)
    r = sub.add_parser("report")
    r.add_argument("--slots", required=True)
    r.add_argument("--choices", required=True)
    r.add_argument("--shown", type=int, default=5, help="candidates a page shows")
    r.set_defaults(run=report)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
