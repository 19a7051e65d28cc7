"""The GPU run in one call of the device tool: train, prove resume and torchrun, pack the model.

Two kinds of run. With --mixture FOLDER (ru-pretrain's .xz files), two stages: pretraining on
the Russian mixture, then fine-tuning on --corpus, in the units of --base (tools/gpu_mix.py says
each step). Without it, one stage: any `generator train` recipe on --corpus, as below.

On the device machine (its python3 has torch, numpy, PyYAML, tqdm, sentencepiece; no venv):

    python3 tools/gpu_run.py run --out "$OUT" --corpus data/gpu/corpus.txt --minutes 6.5 \
        -- --layers 3 --hidden 768 ...          # the recipe: any `generator train` flags

Back here, the files that came back (under the device reply's files_at) become a model directory:

    .venv/bin/python tools/gpu_run.py unpack FILES_AT/model runs/gpu

`run` does, in order, each step logged to OUT/run.log and summed up in OUT/summary.json:
1. a 5-step tiny run in bf16; should it fail (a cuDNN without bf16 LSTMs), fp32 from then on;
2. resume check at a tiny size: one run straight through, one killed (SIGKILL) once its first
   checkpoint is on disk and then resumed; the two must end with the same step and weights (on
   CUDA, where cuDNN is not bit-deterministic, the summary gives the largest weight difference);
3. a torchrun smoke test with one process (NCCL on CUDA, gloo on CPU);
4. train the recipe for --minutes on --device (default cuda) into a work directory;
5. export the trained model with bf16 weights and pack it into OUT/model: one tar cut into parts
   of at most PART_BYTES (gpu_steps.py; the device tool returns at most 8 files of 16 MiB, 64 MiB
   in all).
`--device cpu` with a tiny recipe runs the same script here: the test suite does that.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from generator.result import TRAIN_SUMMARY, read_result  # noqa: E402
from tools.gpu_steps import TINY, pack, resume_check, run_generator, unpack  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train, check resume and torchrun, pack the model into --out")
    run.add_argument("--out", type=Path, required=True, help="folder that comes back ($OUT)")
    run.add_argument("--corpus", type=Path, required=True)
    run.add_argument("--minutes", type=float, default=6.5, help="training budget of step 1")
    run.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    mix = run.add_argument_group("two stages (--mixture)")
    mix.add_argument("--mixture", type=Path, metavar="FOLDER",
                     help="folder of ru-pretrain's informal.txt.xz and literature.txt.xz: "
                          "pretrain on them (upper-cased) and the bugurts, then fine-tune")
    mix.add_argument("--base", type=Path, default=REPO / "generator" / "bundled",
                     help="model directory whose units both stages use, measured beside the "
                          "result (default: the bundle)")
    mix.add_argument("--sizes", default=None,
                     help="LAYERSxHIDDENxEMBED,... probed largest first (default: gpu_mix.SIZES)")
    mix.add_argument("--batch", default=None, help="ROWSxWINDOW (default: gpu_mix.BATCH)")
    mix.add_argument("--bugurt-repeats", type=int, default=3)
    mix.add_argument("--feed-posts", type=int, default=30)
    mix.add_argument("--feed-searches", type=int, default=1,
                     help="searches a feed post is the best of (1: the model's own posts)")
    mix.add_argument("--feed-seconds", type=float, default=240, help="the feed's time limit")
    run.add_argument("recipe", nargs=argparse.REMAINDER,
                     help="-- then `generator train` flags (one stage only)")
    unpacking = sub.add_parser("unpack", help="join the parts that came back and unpack them "
                                              "into a model directory")
    unpacking.add_argument("parts", type=Path, help="the folder that came back as OUT/model")
    unpacking.add_argument("dest", type=Path)
    args = parser.parse_args()
    if args.command == "unpack":
        unpack(args.parts, args.dest)
        print(f"model directory: {args.dest}")
        return 0
    recipe = [a for a in args.recipe if a != "--"]
    if args.mixture is None:
        summary = run_all(args.out, args.corpus, args.minutes, args.device, recipe)
    else:
        summary = _run_mixture(args, recipe)
    print(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


def _run_mixture(args, recipe: list[str]) -> dict:
    from tools import gpu_mix  # noqa: PLC0415 - torch, and only for this kind of run

    if recipe:
        raise SystemExit("error: with --mixture the recipe comes from the throughput probe: "
                         "drop the flags after --, or use --sizes and --batch")
    for needed in (args.corpus, args.mixture / "literature.txt.xz",
                   args.mixture / "informal.txt.xz", args.base / "model.pt"):
        if not needed.exists():
            raise SystemExit(f"error: {needed} not found: carry it with the call (README, "
                             "\"Training on a lent GPU in one call\")")
    try:
        sizes = [gpu_mix.Size.parse(s) for s in (args.sizes or gpu_mix.SIZES).split(",")]
        rows, window = (int(v) for v in (args.batch or gpu_mix.BATCH).lower().split("x"))
    except ValueError:
        raise SystemExit("error: --sizes takes LAYERSxHIDDENxEMBED,... (3x1024x400) and "
                         "--batch ROWSxWINDOW (256x128)") from None
    opts = {"sizes": sizes, "batch": (rows, window), "bugurt_repeats": args.bugurt_repeats,
            "feed_posts": args.feed_posts, "feed_searches": args.feed_searches,
            "feed_seconds": args.feed_seconds}
    return gpu_mix.run_mixture(args.out, args.corpus, args.mixture, args.base, args.minutes,
                               args.device, opts)


def run_all(out: Path, corpus: Path, minutes: float, device: str, recipe: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "run.log"
    summary: dict = {"device": device, "minutes": minutes, "recipe": recipe}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        precision = _precision(work / "probe", corpus, device, log)
        summary["precision"] = precision or ["bf16 where supported"]
        summary["resume"] = resume_check(work, corpus, device, log, precision)
        summary["torchrun"] = _torchrun_smoke(work / "ddp", corpus, device, log, precision)
        summary["train"] = _train(work / "model", corpus, minutes, device,
                                  [*recipe, *precision], log)
        if summary["train"]["ok"]:
            exported = work / "export"
            run_generator(["export", "--model", str(work / "model"), "--out", str(exported)], log)
            summary["files"] = pack(exported, out / "model")
    summary["ok"] = all(summary[k]["ok"] for k in ("train", "resume", "torchrun"))
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def _train(model_dir: Path, corpus: Path, minutes: float, device: str, recipe: list[str],
           log: Path) -> dict:
    done = run_generator(["train", "--device", device, "--corpus", str(corpus), "--out",
                       str(model_dir), "--minutes", f"{minutes:g}", *recipe], log,
                      timeout=minutes * 60 * 1.5 + 120)
    return {"ok": done.returncode == 0, **read_result(done.stdout, TRAIN_SUMMARY)}


def _precision(out: Path, corpus: Path, device: str, log: Path) -> list[str]:
    """[] when a tiny bf16 run trains on this device, else ["--no-bf16"]."""
    done = run_generator(["train", "--device", device, "--corpus", str(corpus), "--out", str(out),
                       "--max-steps", "5", *TINY], log, timeout=300)
    return [] if done.returncode == 0 else ["--no-bf16"]


def _torchrun_smoke(out: Path, corpus: Path, device: str, log: Path,
                    precision: list[str]) -> dict:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "1", "-m"]
    done = run_generator(["train", "--device", device, "--corpus", str(corpus), "--out", str(out),
                       "--max-steps", "20", *TINY, *precision], log, timeout=300,
                      launcher=launcher)
    summary = read_result(done.stdout, TRAIN_SUMMARY)
    return {"ok": done.returncode == 0 and bool(summary), **summary}


if __name__ == "__main__":
    sys.exit(main())
