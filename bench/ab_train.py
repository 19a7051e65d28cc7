"""A/B training at equal compute: arms trained side by side (same minutes, one thread each).

    .venv/bin/python bench/ab_train.py --corpus data/bugurt/corpus.txt --minutes 20 \
        --arm plain="" --arm awd="--weight-drop 0.25 --locked-dropout 0.2 --tie-weights"

Each arm is a real `python -m generator train --threads 1` process started at the same moment,
so the arms share the machine's load evenly; then each model is scored by `generator eval` on the
validation split. The table gives characters trained, chars/s, the best validation bits per
character and its ratio to the character 13-gram (bench/ngram.py; 2.2557 bpc on this split).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from generator.result import BITS_PER_CHAR, TRAIN_SUMMARY, read_result  # noqa: E402
from harness.report import machine  # noqa: E402

NGRAM13_BPC = 2.2557  # character 13-gram Kneser–Ney on data/bugurt's validation split


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--out", default="runs/ab", help="folder of the arms' model directories")
    parser.add_argument("--arm", action="append", required=True, metavar="NAME=FLAGS")
    args = parser.parse_args()
    arms = dict(a.split("=", 1) for a in args.arm)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    print(f"# {machine()}; {args.minutes:g} minutes an arm, side by side", flush=True)
    procs = {}
    for name, flags in arms.items():
        out = Path(args.out) / f"{stamp}-{name}"
        cmd = [sys.executable, "-m", "generator", "train", "--threads", "1", "--corpus",
               args.corpus, "--out", str(out), "--minutes", f"{args.minutes:g}",
               *shlex.split(flags)]
        out.parent.mkdir(parents=True, exist_ok=True)
        log = open(out.with_suffix(".log"), "w", encoding="utf-8")  # the arm's progress
        procs[name] = (out, subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=log,
                                             text=True), flags)
    val = Path(args.corpus).with_name(Path(args.corpus).stem + ".val.txt")
    print("| arm | flags | chars trained | chars/s | val bpc (eval) | vs 13-gram |")
    print("|---|---|---|---|---|---|")
    for name, (out, proc, flags) in procs.items():
        stdout, _ = proc.communicate()
        summary = read_result(stdout, TRAIN_SUMMARY)
        done = subprocess.run([sys.executable, "-m", "generator", "eval", "--threads", "1",
                               "--model", str(out), "--text", str(val)], cwd=REPO,
                              capture_output=True, text=True)
        bpc = read_result(done.stdout, BITS_PER_CHAR).get(BITS_PER_CHAR, float("nan"))
        print(f"| {name} | `{flags or '(defaults)'}` | {summary.get('chars', 0):,.0f} "
              f"| {summary.get('chars_per_sec', 0):,.0f} | {bpc:.4f} "
              f"| {bpc / NGRAM13_BPC:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
