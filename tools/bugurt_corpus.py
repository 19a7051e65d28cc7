"""Build the real bugurt corpus: the shared posts served by the fake VK server, scraped for real.

    .venv/bin/python tools/bugurt_corpus.py [--out data/bugurt/corpus.txt] [--jsonl FILE]
                                            [--no-execute]

Serves ../shared/data/bugurtthread/messages-2020-2022.jsonl as the wall of `bugurt_thread`
(harness/fakes/vk.py), runs the real `python -m scraper` against it with a temporary config,
leaves the corpus (and its .train/.val split files) at --out, and reports how long the scrape
took and what share of the posts the cleaner kept, with the reason each other post went.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from common.db import open_database, storage_url  # noqa: E402
from harness.fakes.vk import TOKEN, FakeVk, items_from_jsonl  # noqa: E402
from harness.paths import REAL_WALL  # noqa: E402
from scraper.clean import DROP_REASONS, build_corpus  # noqa: E402
from scraper.store import PostStore  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jsonl", type=Path, default=REAL_WALL)
    parser.add_argument("--out", type=Path, default=Path("data/bugurt/corpus.txt"))
    parser.add_argument(
        "--no-execute", action="store_true",
        help="refuse execute as VK does for a service token: measures plain wall.get paging",
    )
    args = parser.parse_args()
    if not args.jsonl.exists():
        print(f"error: {args.jsonl} not found (shared data): pass --jsonl FILE", file=sys.stderr)
        return 2
    items = items_from_jsonl(args.jsonl)
    out = args.out.resolve()
    fake = FakeVk(items, execute_allowed=not args.no_execute)
    with tempfile.TemporaryDirectory() as tmp, fake as vk:
        db = Path(tmp) / "wall.sqlite3"
        config = Path(tmp) / "config.yaml"
        config.write_text(
            f"vk:\n  api_url: {vk.api_url}\n  token: ${{VK_TOKEN}}\n  community: bugurt_thread\n"
            f"storage:\n  db: {db}\ncorpus:\n  path: {out}\n",
            encoding="utf-8",
        )
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "scraper", "--config", str(config)],
            cwd=REPO, env={**os.environ, "VK_TOKEN": TOKEN}, text=True, capture_output=True,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        database = open_database(storage_url(str(db)))
        result = build_corpus(PostStore(database).raw_posts())
        database.close()
        calls = [name for name, _ in vk.calls]
    n = len(items)
    print(f"scraper: {done.stdout.strip()}")
    print(f"scrape: {n} posts in {seconds:.1f} s ({len(calls)} API calls: "
          f"{calls.count('execute')} execute, {calls.count('wall.get')} wall.get)")
    print(f"kept: {result.kept_posts} of {n} posts ({result.kept_posts / n:.1%}), "
          f"{len(result.bugurts)} bugurts, {result.characters} characters")
    for reason, count in result.dropped.most_common():
        print(f"dropped {reason}: {count} ({count / n:.1%}): {DROP_REASONS[reason]}")
    print(f"duplicate bugurts removed: {result.duplicates}")
    print(f"corpus: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
