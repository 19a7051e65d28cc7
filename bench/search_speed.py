"""CPU seconds of a pooled post: its searches one after another against side by side in a batch.

    .venv/bin/python bench/search_speed.py [--posts 4] [--searches 32] [--model generator/bundled] \
        [--against ec45152]

A pooled reply is the best of `pool.reply_searches` (32) line searches. Both ways run in one
process on one thread, alternating post by post from the same seeds, so the machine's load falls
on both alike; CPU seconds are the process's own (time.process_time). Run one after another, a
search's rows are its beams × lines drawn (32); side by side, every token step of all of them is
one batch through the cell. The two ways draw other random numbers, so each reports the lines
its posts have: longer posts would cost more steps, not less. `--against COMMIT` adds a third
way: that commit's generator/search.py and inference cell (read with `git show`, loaded beside
today's, over the same weights), its searches one after another, as the pool ran them then.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from common.corpus import LINE_BREAK  # noqa: E402
from generator.sample import Generator  # noqa: E402
from generator.search import LineSearch, SearchConfig  # noqa: E402
from generator.tokenizer import UNK  # noqa: E402
from harness.report import machine  # noqa: E402


def _load(name: str, path: Path, text: str):
    """`text` as a module called `name`, registered in sys.modules (its dataclasses look their
    module up there)."""
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def search_of(commit: str, folder: Path, gen: Generator):
    """That commit's generator/search.py over that commit's inference cell (generator/model.py)
    with today's weights, loaded under other names beside that commit's generator/gate.py (whose
    helpers have since moved to other modules); the tokenizer module then called
    generator.vocab is today's generator.tokenizer. Returns (module, generator): a shallow copy
    of `gen` whose cell and start state are that commit's."""
    def then(path: str) -> str:
        return subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True,
                              text=True, check=True, cwd=REPO).stdout
    _load("gate_then", folder / "gate_then.py", then("generator/gate.py"))
    model = _load("model_then", folder / "model_then.py", then("generator/model.py"))
    text = (then("generator/search.py")
            .replace("from generator import gate\n", "import gate_then as gate\n")
            .replace("from generator.model import", "from model_then import")
            .replace("from generator.vocab import", "from generator.tokenizer import"))
    module = _load("search_then", folder / "search_then.py", text)
    old = copy.copy(gen)
    old.cell = model.FastLSTM(gen.model, banned=(UNK,))
    old.start_state = old.cell.zero_state(1)
    for mine, theirs in zip(gen.start_state.c + gen.start_state.buffers,
                            old.start_state.c + old.start_state.buffers, strict=True):
        theirs.copy_(mine)
    return module, old


def pooled(search, searches: int, seed: int, batched: bool) -> tuple[float, float]:
    """(CPU seconds, mean lines of the finished posts) of one pooled post's searches."""
    rng = torch.Generator().manual_seed(seed)
    started = time.process_time()
    found = search.posts(rng, searches) if batched else \
        [search.post(rng) for _ in range(searches)]
    seconds = time.process_time() - started
    lines = [len(text.split(LINE_BREAK)) for text, _ in filter(None, found)]
    return seconds, statistics.mean(lines) if lines else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="generator/bundled")
    parser.add_argument("--posts", type=int, default=4)
    parser.add_argument("--searches", type=int, default=32)
    parser.add_argument("--against", metavar="COMMIT", help="also that commit's search")
    args = parser.parse_args()
    gen = Generator.load(args.model)  # sets one thread
    search = LineSearch(gen, SearchConfig())
    print(f"machine: {machine()}")
    pooled(search, 2, -1, True)  # warm-up
    ways = {"one after another": (search, False), "side by side": (search, True)}
    if args.against:
        with tempfile.TemporaryDirectory() as folder:  # the module is loaded: its file may go
            then, old = search_of(args.against, Path(folder), gen)
        ways = {f"{args.against}, one after another": (then.LineSearch(old, then.SearchConfig()),
                                                        False), **ways}
    spent: dict[str, list[float]] = {name: [] for name in ways}
    lines: dict[str, list[float]] = {name: [] for name in ways}
    for seed in range(args.posts):
        for name, (way, batched) in ways.items():
            seconds, mean_lines = pooled(way, args.searches, seed, batched)
            spent[name].append(seconds)
            lines[name].append(mean_lines)
    print(f"| {args.searches} searches a post | CPU s a post (mean of {args.posts}) | "
          "lines a post |\n|---|---:|---:|")
    for name in ways:
        print(f"| {name} | {statistics.mean(spent[name]):.2f} | "
              f"{statistics.mean(lines[name]):.2f} |")
    first = statistics.mean(spent[next(iter(ways))])
    for name in list(ways)[1:]:
        print(f"{name}: {statistics.mean(spent[name]) / first:.2f}× the CPU of the first")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
