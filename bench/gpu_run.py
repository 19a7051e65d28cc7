"""The GPU run in one call of the device tool: train, prove resume and torchrun, pack the model.

On the device machine (its python3 has torch, numpy, PyYAML, tqdm, sentencepiece; no venv):

    python3 bench/gpu_run.py run --out "$OUT" --corpus data/gpu/corpus.txt --minutes 6.5 \
        -- --layers 3 --hidden 768 ...          # the recipe: any `generator train` flags

Back here, the files that came back (under the device reply's files_at) become a model directory:

    .venv/bin/python bench/gpu_run.py unpack FILES_AT/model runs/gpu

`run` does, in order, each step logged to OUT/run.log and summed up in OUT/summary.json:
1. a 5-step tiny run in bf16; should it fail (a cuDNN without bf16 LSTMs), fp32 from then on;
2. resume check at a tiny size: one run straight through, one killed (SIGKILL) once its first
   checkpoint is on disk and then resumed; the two must end with the same step and weights (on
   CUDA, where cuDNN is not bit-deterministic, the summary gives the largest weight difference);
3. a torchrun smoke test with one process (NCCL on CUDA, gloo on CPU);
4. train the recipe for --minutes on --device (default cuda) into a work directory;
5. export the trained model with bf16 weights and copy it to OUT/model, each file cut into parts
   of at most PART_BYTES (the device tool returns at most 8 files of 16 MiB, 64 MiB in all).
`--device cpu` with a tiny recipe runs the same script here: the test suite does that.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
PART_BYTES = 15 * 2**20  # under the device tool's 16 MiB a file
MAX_FILES = 8  # the device tool returns at most this many files
TINY = ["--tokenizer", "char", "--layers", "1", "--hidden", "32", "--embed", "8",
        "--batch-size", "8", "--seq-len", "32", "--eval-every", "20", "--log-every", "10"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train, check resume and torchrun, pack the model into --out")
    run.add_argument("--out", type=Path, required=True, help="folder that comes back ($OUT)")
    run.add_argument("--corpus", type=Path, required=True)
    run.add_argument("--minutes", type=float, default=6.5, help="training budget of step 1")
    run.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    run.add_argument("recipe", nargs=argparse.REMAINDER, help="-- then `generator train` flags")
    unpack = sub.add_parser("unpack", help="join the parts that came back into a model directory")
    unpack.add_argument("parts", type=Path, help="the folder that came back as OUT/model")
    unpack.add_argument("dest", type=Path)
    args = parser.parse_args()
    if args.command == "unpack":
        join_parts(args.parts, args.dest)
        print(f"model directory: {args.dest}")
        return 0
    recipe = [a for a in args.recipe if a != "--"]
    summary = run_all(args.out, args.corpus, args.minutes, args.device, recipe)
    print(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


def run_all(out: Path, corpus: Path, minutes: float, device: str, recipe: list[str]) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "run.log"
    summary: dict = {"device": device, "minutes": minutes, "recipe": recipe}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        precision = _precision(work / "probe", corpus, device, log)
        summary["precision"] = precision or ["bf16 where supported"]
        summary["resume"] = _resume_check(work, corpus, device, log, precision)
        summary["torchrun"] = _torchrun_smoke(work / "ddp", corpus, device, log, precision)
        summary["train"] = _train(work / "model", corpus, minutes, device,
                                  [*recipe, *precision], log)
        if summary["train"]["ok"]:
            exported = work / "export"
            _generator(["export", "--model", str(work / "model"), "--out", str(exported)], log)
            summary["files"] = split_parts(exported, out / "model")
    summary["ok"] = all(summary[k]["ok"] for k in ("train", "resume", "torchrun"))
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def _generator(args: list[str], log: Path, timeout: float | None = None,
               launcher: list[str] | None = None) -> subprocess.CompletedProcess:
    """`python -m generator ARGS` from the repository root; output appended to the log."""
    cmd = (launcher or [sys.executable, "-m"]) + ["generator", *args]
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(cmd)}\n")
        fh.flush()
        started = time.monotonic()
        done = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=fh, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        fh.write(done.stdout)
        fh.write(f"[exit {done.returncode} after {time.monotonic() - started:.1f} s]\n")
    return done


def result_fields(stdout: str, prefix: str) -> dict[str, float]:
    """The last `prefix a=1 b=2` line as {a: 1, b: 2} (`prefix 2.5` → {value: 2.5}); {} if none.

    The generator's result lines: `train_summary: chars=… seconds=…`, `bits_per_char: …`.
    """
    for line in reversed(stdout.splitlines()):
        if line.startswith(prefix):
            rest = line[len(prefix):].split()
            if len(rest) == 1 and "=" not in rest[0]:
                return {"value": float(rest[0])}
            return {k: float(v) for k, v in (kv.split("=") for kv in rest)}
    return {}


def _train(model_dir: Path, corpus: Path, minutes: float, device: str, recipe: list[str],
           log: Path) -> dict:
    done = _generator(["train", "--device", device, "--corpus", str(corpus), "--out",
                       str(model_dir), "--minutes", f"{minutes:g}", *recipe], log,
                      timeout=minutes * 60 * 1.5 + 120)
    return {"ok": done.returncode == 0, **result_fields(done.stdout, "train_summary:")}


def _precision(out: Path, corpus: Path, device: str, log: Path) -> list[str]:
    """[] when a tiny bf16 run trains on this device, else ["--no-bf16"]."""
    done = _generator(["train", "--device", device, "--corpus", str(corpus), "--out", str(out),
                       "--max-steps", "5", *TINY], log, timeout=300)
    return [] if done.returncode == 0 else ["--no-bf16"]


def _resume_check(work: Path, corpus: Path, device: str, log: Path,
                  precision: list[str]) -> dict:
    """Straight run vs killed-and-resumed run at a tiny size: same step, same weights?"""
    from generator.modeldir import ModelDirError, load_checkpoint  # noqa: PLC0415 - torch

    common = ["train", "--device", device, "--corpus", str(corpus), "--max-steps", "60", *TINY,
              *precision]
    straight, killed = work / "straight", work / "killed"
    _generator([*common, "--out", str(straight)], log, timeout=300)
    cmd = [sys.executable, "-m", "generator", *common, "--out", str(killed)]
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ {' '.join(cmd)}   (killed after its first checkpoint)\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=fh)
        deadline = time.monotonic() + 300
        while not (killed / "checkpoint.pt").exists() and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        was_running = proc.poll() is None
        if was_running:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    _generator([*common, "--out", str(killed), "--resume"], log, timeout=300)
    result: dict = {"killed_mid_run": was_running}
    try:
        a, b = load_checkpoint(straight), load_checkpoint(killed)
    except ModelDirError as exc:
        return {**result, "ok": False, "error": str(exc)[:200]}
    diff = max((a["model"][k].float() - b["model"][k].float()).abs().max().item()
               for k in a["model"])
    result.update(step=[a["step"], b["step"]], max_weight_diff=diff,
                  bit_identical=diff == 0.0)
    # cuDNN's LSTM backward is not bit-deterministic: there the check is that the run carried
    # on from its state (same step count, weights that agree to training noise).
    result["ok"] = a["step"] == b["step"] and (diff == 0.0 or (device == "cuda" and diff < 0.05))
    return result


def _torchrun_smoke(out: Path, corpus: Path, device: str, log: Path,
                    precision: list[str]) -> dict:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "1", "-m"]
    done = _generator(["train", "--device", device, "--corpus", str(corpus), "--out", str(out),
                       "--max-steps", "20", *TINY, *precision], log, timeout=300,
                      launcher=launcher)
    summary = result_fields(done.stdout, "train_summary:")
    return {"ok": done.returncode == 0 and bool(summary), **summary}


def split_parts(model_dir: Path, dest: Path) -> list[str]:
    """Copy every file of model_dir into dest, cut into NAME.partNN files of ≤ PART_BYTES."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(p for p in model_dir.iterdir() if p.is_file()):
        data = path.read_bytes()
        pieces = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]
        for n, piece in enumerate(pieces):
            name = f"{path.name}.part{n:02d}"
            (dest / name).write_bytes(piece)
            written.append(name)
    if len(written) + 2 > MAX_FILES:  # + run.log and summary.json
        raise SystemExit(f"{len(written)} model parts: more than the device tool returns")
    return written


def join_parts(parts: Path, dest: Path) -> None:
    """Inverse of split_parts: NAME.part00, NAME.part01, … → dest/NAME."""
    dest.mkdir(parents=True, exist_ok=True)
    names = sorted({p.name.rsplit(".part", 1)[0] for p in parts.glob("*.part[0-9][0-9]")})
    if not names:
        raise SystemExit(f"no *.partNN files in {parts}")
    for name in names:
        pieces = sorted(parts.glob(f"{name}.part[0-9][0-9]"))
        (dest / name).write_bytes(b"".join(p.read_bytes() for p in pieces))


if __name__ == "__main__":
    sys.exit(main())
